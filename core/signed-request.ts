/**
 * One SigV4-signed HTTP request to a Lambda Function URL with AWS_IAM auth (service `lambda`): what the
 * operator CLI sends to the rollout API (cli/api-client.ts) and what a node sends when it enrols itself
 * with its own AWS identity (device/enrol/api.ts). In core/ so both share the one signer and transport.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { KeelError } from "./errors.ts";

export type Credentials = AwsCredentialIdentity | AwsCredentialIdentityProvider;

export interface SignedAnswer {
  status: number;
  payload: string;
}

/** A Function URL's signer: service `lambda` in the URL's region. */
export function functionUrlSigner(credentials: Credentials, region: string): SignatureV4 {
  return new SignatureV4({ credentials, region, service: "lambda", sha256: Sha256 });
}

/** `path` (with its query) resolved under `base`, keeping the base's own path prefix. */
export function urlUnder(base: URL, path: string): URL {
  return new URL(path.replace(/^\//, ""), base.href.endsWith("/") ? base : `${base.href}/`);
}

/** Signs and sends one request; `body` is the JSON text (empty for none). */
export async function sendSigned(
  signer: SignatureV4,
  url: URL,
  method: string,
  body: string,
): Promise<SignedAnswer> {
  const signed = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: { host: url.host, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body } : {}),
  });
  return send(url, method, signed.headers, body);
}

/** node:http rather than fetch: the signed `host` header must go out exactly as signed. */
function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string,
): Promise<SignedAnswer> {
  const fn = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = fn(
      url,
      {
        method,
        headers: { ...headers, ...(body ? { "content-length": String(Buffer.byteLength(body)) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, payload: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", (err) =>
      reject(new KeelError(`cannot reach the rollout API at ${url.origin}: ${err.message}`, { cause: err })),
    );
    req.end(body || undefined);
  });
}
