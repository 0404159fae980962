/**
 * The Lambda wiring of the local cloud (docs/local-cloud.md): the same handler code as in AWS, invoked
 * the way AWS invokes it —
 *   - s3rver ObjectCreated on `releases/<v>/release.json` → register-release, with a real S3 event;
 *   - a fast schedule on the cloud's (scaled) clock, and the stand-in's job events → advance-rollout;
 *   - the rollout API served on 127.0.0.1 as a Function URL with AWS_IAM auth: the SigV4 signature is
 *     verified with the secret of the access key it names, from the local IAM table (local/iam.ts; an
 *     unknown key or a bad signature is a 403), and the event is payload format 2.0 carrying that
 *     principal in requestContext.authorizer.iam.
 */
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { describeError } from "../core/errors.ts";
import { parseJsonWith } from "../core/parse.ts";
import { createAdvanceRolloutHandler } from "../functions/advance-rollout/app.ts";
import { createClients, destroyClients } from "../functions/clients.ts";
import { type Env, parseEnv } from "../functions/env.ts";
import { PayloadTooLargeError } from "../functions/errors.ts";
import { createProvisioningHookHandler } from "../functions/provisioning-hook/app.ts";
import { createRegisterReleaseHandler } from "../functions/register-release/app.ts";
import { MANIFEST_KEY } from "../functions/register-release/register.ts";
import { createRolloutApiHandler } from "../functions/rollout-api/app.ts";
import { LocalCloudInfoSchema } from "./cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "./contracts.ts";
import { LOCAL_OPERATOR, LocalIam, type LocalPrincipal } from "./iam.ts";

/** The ARN the local cloud serves the pre-provisioning hook under (docs/fleets.md#fleet-provisioning-by-claim). */
export const localHookArn = (info: { region: string; account: string }): string =>
  `arn:aws:lambda:${info.region}:${info.account}:function:keel-provisioning-hook`;

export interface FunctionsWiringOptions {
  /** Schedule period in scaled seconds (AWS: every minute). */
  tickSeconds?: number;
  /** Port for the rollout API; 0 (default) picks a free one. */
  apiPort?: number;
  /** Fleets the API accepts (the FLEETS variable); default any. */
  fleets?: string[];
  logLevel?: Env["LOG_LEVEL"];
  /**
   * `local.json` to record the API URL in (its `api` field), so `keel … --local` finds the API. The local
   * cloud removes the file when it stops.
   */
  infoFile?: string;
  /** Access keys and role tags the API's IAM auth knows; default the operator and the local node role. */
  iam?: LocalIam;
}

export interface FunctionsWiring {
  apiUrl: string;
  /** Runs one schedule tick now and resolves when it is done (tests, `keel dev` on demand). */
  tick(): Promise<void>;
  /** Resolves once every handler invocation started so far (events, ticks) has finished. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** The service name in the SigV4 scope of a Function URL request. */
export const FUNCTION_URL_SERVICE = "lambda";
/** SigV4 allows 15 minutes of clock skew between signer and service. */
const MAX_SKEW_MS = 15 * 60_000;
const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

export class SignatureError extends Error {
  override name = "SignatureError";
}

export interface IncomingSigned {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: Buffer;
}

function amzDate(text: string | undefined): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text ?? "");
  if (!m) throw new SignatureError("x-amz-date is missing or malformed");
  return new Date(
    Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])),
  );
}

/** What the Authorization header claims, checked before the body is read. */
export interface SigV4Claim {
  accessKey: string;
  /** Whom the access key belongs to; its secret is what the signature must be made with. */
  principal: LocalPrincipal;
  signedHeaders: string[];
  signature: string;
  date: Date;
}

/**
 * Checks everything a SigV4 request claims that does not need the body: the Authorization header's form,
 * the access key, the credential scope, the signed headers and the clock skew. A request that fails here
 * is refused before a byte of its body is read. Wall-clock time on purpose: signatures carry real time.
 */
export function checkSigV4Headers(
  headers: Readonly<Record<string, string>>,
  region: string,
  realNow = Date.now(),
  iam: Pick<LocalIam, "principal"> = DEFAULT_IAM,
): SigV4Claim {
  const m = AUTH.exec(headers.authorization ?? "");
  if (!m) throw new SignatureError("missing or malformed SigV4 Authorization header");
  const [, accessKey, , scopeRegion, service, signedList, signature] = m as unknown as string[];
  const principal = iam.principal(accessKey ?? "");
  if (!principal) throw new SignatureError(`unknown access key ${accessKey}`);
  if (scopeRegion !== region || service !== FUNCTION_URL_SERVICE) {
    throw new SignatureError(
      `credential scope ${scopeRegion}/${service} is not ${region}/${FUNCTION_URL_SERVICE}`,
    );
  }
  const signedHeaders = (signedList ?? "").split(";");
  if (!signedHeaders.includes("host") || !signedHeaders.includes("x-amz-date"))
    throw new SignatureError("host and x-amz-date must be signed");
  for (const h of signedHeaders) {
    if (headers[h] === undefined) throw new SignatureError(`signed header ${h} is missing`);
  }
  const date = amzDate(headers["x-amz-date"]);
  if (Math.abs(realNow - date.getTime()) > MAX_SKEW_MS)
    throw new SignatureError("request time is more than 15 minutes off");
  return { accessKey: accessKey ?? "", principal, signedHeaders, signature: signature ?? "", date };
}

const DEFAULT_IAM = new LocalIam([LOCAL_OPERATOR]);

/**
 * Verifies a SigV4 signature by signing the same canonical request again with the secret of the access
 * key it names. Returns the access key that signed.
 */
export async function verifySigV4(
  req: IncomingSigned,
  region: string,
  claim: SigV4Claim = checkSigV4Headers(req.headers, region),
): Promise<{ accessKey: string }> {
  const bodyHash = createHash("sha256").update(req.body).digest("hex");
  const claimed = req.headers["x-amz-content-sha256"];
  if (claimed !== undefined && claimed !== bodyHash)
    throw new SignatureError("x-amz-content-sha256 does not match the body");
  const headers: Record<string, string> = {};
  for (const h of claim.signedHeaders) headers[h] = req.headers[h] ?? "";
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(req.query)) query[k] = v;
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: claim.principal.accessKeyId,
      secretAccessKey: claim.principal.secretAccessKey,
    },
    region,
    service: FUNCTION_URL_SERVICE,
    sha256: Sha256,
    applyChecksum: false,
  });
  const again = await signer.sign(
    {
      method: req.method,
      protocol: "http:",
      hostname: headers.host ?? "",
      path: req.path,
      query,
      headers,
      body: req.body,
    },
    { signingDate: claim.date, signableHeaders: new Set(claim.signedHeaders) },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(again.headers.authorization))?.[1] ?? "";
  if (expected.length !== 64 || !timingSafeEqual(Buffer.from(expected), Buffer.from(claim.signature))) {
    throw new SignatureError("signature does not match");
  }
  return { accessKey: claim.accessKey };
}

/** A Lambda Function URL event, payload format 2.0, for an IAM-authenticated caller. */
export function functionUrlEvent(
  req: IncomingSigned,
  principal: Pick<LocalPrincipal, "accessKeyId" | "arn" | "account" | "userId">,
  sourceIp: string,
  nowMs: number,
) {
  const text = req.body.toString("utf8");
  const isText = Buffer.from(text, "utf8").equals(req.body);
  const host = req.headers.host ?? "127.0.0.1";
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: req.path,
    rawQueryString: req.query,
    headers: req.headers,
    ...(req.query ? { queryStringParameters: Object.fromEntries(new URLSearchParams(req.query)) } : {}),
    requestContext: {
      accountId: "anonymous",
      apiId: "keel-local",
      authorizer: {
        iam: {
          accessKey: principal.accessKeyId,
          accountId: principal.account,
          callerId: principal.userId,
          cognitoIdentity: null,
          principalOrgId: null,
          userArn: principal.arn,
          userId: principal.userId,
        },
      },
      domainName: host,
      domainPrefix: host.split(".")[0] ?? host,
      http: {
        method: req.method,
        path: req.path,
        protocol: "HTTP/1.1",
        sourceIp,
        userAgent: req.headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: new Date(nowMs).toUTCString(),
      timeEpoch: nowMs,
    },
    ...(req.body.length > 0 ? { body: isText ? text : req.body.toString("base64") } : {}),
    isBase64Encoded: req.body.length > 0 && !isText,
  };
}

/** A Function URL's request payload limit. */
export const MAX_BODY_BYTES = 6 * 1024 * 1024;

/** Reads the body, refusing it (PayloadTooLargeError) as soon as it passes MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new PayloadTooLargeError(tooLarge(declared));
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new PayloadTooLargeError(tooLarge(size));
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const tooLarge = (n: number) =>
  `request body is ${n} bytes or more; a Function URL takes at most ${MAX_BODY_BYTES} bytes (6 MB)`;

const JSON_HEADERS = { "content-type": "application/json" };

/**
 * Answers a refused request and closes the connection: whatever is left of its body is not read (a
 * client still sending gets a reset, not a server that waits for 6 MB it will throw away).
 */
function refuse(res: ServerResponse, req: IncomingMessage, status: number, message: string): void {
  res.setHeader("connection", "close");
  send(res, status, JSON_HEADERS, JSON.stringify({ Message: message }));
  req.resume();
}

/** The path part of a request target, exactly as sent (the WHATWG URL parser would re-encode it). */
export function rawPathOf(target: string): string {
  const q = target.indexOf("?");
  return q < 0 ? target : target.slice(0, q);
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

export async function startFunctionsWiring(
  cloud: LocalCloud,
  options: FunctionsWiringOptions = {},
): Promise<FunctionsWiring> {
  const info = cloud.info;
  const env = parseEnv({
    TABLE_NAME: info.table,
    BUCKET_NAME: info.bucket,
    PRESIGN_ROLE_ARN: `arn:aws:iam::${info.account}:role/keel-local-presign`,
    PROVISIONING_HOOK_ARN: localHookArn(info),
    PROVISIONING_ROLE_ARN: `arn:aws:iam::${info.account}:role/keel-local-provisioning`,
    FLEETS: (options.fleets ?? []).join(","),
    AWS_REGION: info.region,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    S3_ENDPOINT: info.s3,
    DYNAMODB_ENDPOINT: info.dynamodb,
    IOT_ENDPOINT: info.iot,
    LOG_LEVEL: options.logLevel ?? "warn",
  });
  const clients = createClients(env);
  const iam = options.iam ?? new LocalIam();
  const handlerOptions = {
    now: () => cloud.clock.now(),
    clients,
    roleTags: (account: string, role: string) => iam.roleTags(account, role),
  };
  const register = createRegisterReleaseHandler(env, handlerOptions);
  const advance = createAdvanceRolloutHandler(env, handlerOptions);
  const api = createRolloutApiHandler(env, handlerOptions);
  // Fleet provisioning's pre-provisioning hook, which the stand-in invokes in-process by its ARN.
  const offHook = cloud.iot.registerLambda?.(
    localHookArn(info),
    createProvisioningHookHandler(env, handlerOptions),
  );
  const inFlight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    const q = p.catch((err: unknown) => {
      // The handlers log their own failures as JSON; AWS would retry the event, the next tick does here.
      if (env.LOG_LEVEL !== "silent")
        console.error(JSON.stringify({ level: "error", service: "local-wiring", msg: String(err) }));
    });
    inFlight.add(q);
    void q.finally(() => inFlight.delete(q));
    return q;
  };

  const offObject = cloud.onObjectCreated(({ bucket, key, size }) => {
    if (bucket !== info.bucket || !MANIFEST_KEY.test(key)) return;
    const now = new Date(cloud.clock.now()).toISOString();
    track(
      register({
        Records: [
          {
            eventVersion: "2.1",
            eventSource: "aws:s3",
            awsRegion: info.region,
            eventTime: now,
            eventName: "ObjectCreated:Put",
            userIdentity: { principalId: "keel-local" },
            s3: {
              s3SchemaVersion: "1.0",
              configurationId: "keel-register-release",
              bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
              // S3 URL-encodes keys in events (spaces as +); the handler decodes them.
              object: { key: encodeURIComponent(key).replace(/%2F/g, "/").replace(/%20/g, "+"), size },
            },
          },
        ],
      }),
    );
  });

  const offEvents = cloud.iot.onEvent((e) => {
    if (!e.topic.startsWith("$aws/events/job")) return;
    track(advance(e.payload));
  });

  // The schedule: one tick at a time (a slow tick is not overlapped), every tickSeconds of scaled time.
  const tickMs = (options.tickSeconds ?? 5) * 1000;
  let running: Promise<unknown> | null = null;
  let timer: { cancel(): void } | null = null;
  let stopped = false;
  const tick = async () => {
    if (!running)
      running = track(
        advance({
          source: "aws.events",
          "detail-type": "Scheduled Event",
          time: new Date(cloud.clock.now()).toISOString(),
        }),
      ).finally(() => {
        running = null;
      });
    await running;
  };
  const arm = () => {
    timer = cloud.clock.setTimeout(() => {
      if (stopped) return;
      void tick().finally(() => {
        if (!stopped) arm();
      });
    }, tickMs);
  };
  arm();

  // As a Function URL with AWS_IAM auth does: the signature is checked before the function runs (403),
  // and the headers are checked before the body is read, so an unsigned request cannot make the
  // server read 6 MB; an oversized body is refused (413) without being kept.
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? "/", "http://127.0.0.1");
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(",") : v;
        let claim: SigV4Claim;
        try {
          claim = checkSigV4Headers(headers, info.region, Date.now(), iam);
        } catch (err) {
          return refuse(res, req, 403, `Forbidden: ${describeError(err)}`);
        }
        let body: Buffer;
        try {
          body = await readBody(req);
        } catch (err) {
          if (err instanceof PayloadTooLargeError) return refuse(res, req, 413, err.message);
          throw err;
        }
        const incoming: IncomingSigned = {
          method: req.method ?? "GET",
          // Raw, as received: the function decodes (and refuses a malformed %-escape with a 400).
          path: rawPathOf(req.url ?? "/"),
          query: url.search.slice(1),
          headers,
          body,
        };
        try {
          await verifySigV4(incoming, info.region, claim);
        } catch (err) {
          return refuse(res, req, 403, `Forbidden: ${describeError(err)}`);
        }
        const out = await api(
          functionUrlEvent(incoming, claim.principal, req.socket.remoteAddress ?? "127.0.0.1", Date.now()),
        );
        send(res, out.statusCode, out.headers, out.body);
      } catch (err) {
        send(res, 500, JSON_HEADERS, JSON.stringify({ Message: describeError(err) }));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.apiPort ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const apiUrl = `http://127.0.0.1:${port}`;
  if (options.infoFile) {
    const current = parseJsonWith(
      LocalCloudInfoSchema,
      await readFile(options.infoFile, "utf8"),
      options.infoFile,
    );
    await writeFile(`${options.infoFile}.tmp`, `${JSON.stringify({ ...current, api: apiUrl }, null, 2)}\n`);
    await rename(`${options.infoFile}.tmp`, options.infoFile);
  }

  return {
    apiUrl,
    tick,
    async idle() {
      await Promise.allSettled([...inFlight]);
    },
    async stop() {
      stopped = true;
      timer?.cancel();
      offObject();
      offEvents();
      offHook?.();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.allSettled([...inFlight]);
      destroyClients(clients);
    },
  };
}
