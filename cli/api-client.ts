/**
 * The rollout API client: every request is SigV4-signed (service `lambda`, as a Function URL with AWS_IAM
 * auth expects). Against AWS it uses the default credential chain and the stack's outputs; with `--local`
 * it reads `.keel/local.json` and signs with LOCAL_CREDENTIALS.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { Sha256 } from "@aws-crypto/sha256-js";
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { z } from "zod";
import { describeError, KeelError } from "../core/errors.ts";
import { parseWith } from "../core/parse.ts";
import {
  type AuditEntry,
  AuditListSchema,
  ErrorBodySchema,
  type FleetStatus,
  FleetStatusSchema,
  type Rollout,
  RolloutListSchema,
  type RolloutView,
  RolloutViewSchema,
} from "../functions/rollout-api/contract.ts";
import { LOCAL_CREDENTIALS } from "../local/contracts.ts";
import { CliUsageError } from "./errors.ts";
import { readJsonFile } from "./inputs.ts";

// Keel supports Node 20 (package.json engines); the SDK's notice about its own future Node 22 requirement
// would be printed on every cloud command's stderr and tells the operator nothing actionable here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

/** `.keel/local.json` as the local cloud writes it (local/contracts.ts LocalCloudInfo). */
export const LocalInfoSchema = z.object({
  region: z.string(),
  account: z.string(),
  s3: z.url(),
  dynamodb: z.url(),
  iot: z.url(),
  mqtt: z.string(),
  caFile: z.string(),
  api: z.url(),
  bucket: z.string(),
  table: z.string(),
});
export type LocalInfo = z.infer<typeof LocalInfoSchema>;

export interface CloudTarget {
  kind: "aws" | "local";
  apiUrl: string;
  region: string;
  bucket: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Local only: S3 endpoint, broker URL and CA file for device configs. */
  local?: LocalInfo;
}

export interface TargetFlags {
  local?: boolean | undefined;
  stack?: string | undefined;
  region?: string | undefined;
  /** Folder holding local.json (default `.keel` in the working directory). */
  keelDir?: string | undefined;
}

export const DEFAULT_STACK = "Keel";

/** The stack outputs the CLI reads (infra/keel-stack.ts OUTPUTS). */
const OutputsSchema = z.object({
  ApiUrl: z.url(),
  BucketName: z.string().min(1),
  Region: z.string().optional(),
});

export async function resolveTarget(flags: TargetFlags): Promise<CloudTarget> {
  if (flags.local) {
    const file = join(flags.keelDir ?? ".keel", "local.json");
    const info = parseWith(LocalInfoSchema, await readJsonFile(file, "local cloud info"), file);
    return {
      kind: "local",
      apiUrl: info.api,
      region: info.region,
      bucket: info.bucket,
      credentials: LOCAL_CREDENTIALS,
      local: info,
    };
  }
  const region = flags.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new CliUsageError("no AWS region: pass --region or set AWS_REGION (or use --local)");
  const credentials = fromNodeProviderChain();
  const stack = flags.stack ?? DEFAULT_STACK;
  const cfn = new CloudFormationClient({ region, credentials });
  try {
    const r = await cfn.send(new DescribeStacksCommand({ StackName: stack }));
    const outputs = Object.fromEntries(
      (r.Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey ?? "", o.OutputValue ?? ""]),
    );
    const o = parseWith(OutputsSchema, outputs, `outputs of stack ${stack}`);
    return { kind: "aws", apiUrl: o.ApiUrl, region: o.Region ?? region, bucket: o.BucketName, credentials };
  } catch (err) {
    if (err instanceof KeelError) throw err;
    throw new CliUsageError(
      `cannot read stack ${stack} in ${region}: ${describeError(err)} (deployed? see \`npx cdk deploy\`)`,
      { cause: err },
    );
  } finally {
    cfn.destroy();
  }
}

/** A non-2xx answer from the API; `issues` carries the field paths of a 400. */
export class ApiError extends KeelError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly issues: ReadonlyArray<{ path: string; message: string }> = [],
  ) {
    super(message);
  }
}

export class ApiClient {
  private readonly signer: SignatureV4;
  private readonly base: URL;

  constructor(readonly target: Pick<CloudTarget, "apiUrl" | "region" | "credentials">) {
    this.base = new URL(target.apiUrl);
    this.signer = new SignatureV4({
      credentials: target.credentials,
      region: target.region,
      service: "lambda",
      sha256: Sha256,
    });
  }

  async request(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<unknown> {
    const url = new URL(
      path.replace(/^\//, ""),
      this.base.href.endsWith("/") ? this.base : `${this.base.href}/`,
    );
    const text = body === undefined ? "" : JSON.stringify(body);
    const signed = await this.signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { host: url.host, ...(text ? { "content-type": "application/json" } : {}) },
      ...(text ? { body: text } : {}),
    });
    const { status, payload } = await send(url, method, signed.headers, text);
    let parsed: unknown = null;
    try {
      parsed = payload ? JSON.parse(payload) : null;
    } catch {
      parsed = null;
    }
    if (status >= 200 && status < 300) return parsed;
    const e = ErrorBodySchema.safeParse(parsed);
    const message = (e.success && (e.data.error ?? e.data.Message)) || payload || `HTTP ${status}`;
    throw new ApiError(
      status,
      `API ${method} ${url.pathname}: ${status} ${message}`,
      e.success ? (e.data.issues ?? []) : [],
    );
  }

  get(path: string): Promise<unknown> {
    return this.request("GET", path);
  }

  /**
   * Every page of a paginated listing, in order: `path` is asked again with `cursor` set to each answer's
   * `nextCursor` until an answer has none.
   */
  async pages<T extends { nextCursor?: string | undefined }>(
    path: string,
    schema: z.ZodType<T>,
    query: Record<string, string> = {},
  ): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    // A cursor repeated would loop forever; the API never hands one out twice.
    const seen = new Set<string>();
    do {
      const q = new URLSearchParams({ ...query, ...(cursor ? { cursor } : {}) }).toString();
      const page = parseWith(schema, await this.get(q ? `${path}?${q}` : path), `API answer for ${path}`);
      out.push(page);
      cursor = page.nextCursor;
      if (cursor !== undefined && seen.has(cursor)) {
        throw new ApiError(0, `API ${path}: the same cursor was handed out twice`);
      }
      if (cursor !== undefined) seen.add(cursor);
    } while (cursor !== undefined);
    return out;
  }

  post(path: string, body?: unknown): Promise<unknown> {
    return this.request("POST", path, body);
  }

  put(path: string, body?: unknown): Promise<unknown> {
    return this.request("PUT", path, body);
  }
}

/** GET /rollouts, every page: all rollouts, newest first. */
export async function listAllRollouts(api: ApiClient): Promise<Rollout[]> {
  return (await api.pages("/rollouts", RolloutListSchema)).flatMap((p) => p.rollouts);
}

/** GET /rollouts/{id}, every page of its devices merged into one view (totals come with the first). */
export async function getRolloutView(api: ApiClient, id: string): Promise<RolloutView> {
  const [first, ...rest] = await api.pages(`/rollouts/${encodeURIComponent(id)}`, RolloutViewSchema);
  if (!first) throw new ApiError(0, `API GET /rollouts/${id}: no answer`);
  const { nextCursor: _done, ...view } = first;
  return { ...view, devices: [first, ...rest].flatMap((p) => p.devices) };
}

/** GET /fleets/{fleet}, every page of its things merged into one status (the summary is the first page's). */
export async function getFleetStatus(api: ApiClient, fleet: string): Promise<FleetStatus> {
  const [first, ...rest] = await api.pages(`/fleets/${encodeURIComponent(fleet)}`, FleetStatusSchema);
  if (!first) throw new ApiError(0, `API GET /fleets/${fleet}: no answer`);
  const { nextCursor: _done, ...status } = first;
  return { ...status, things: [first, ...rest].flatMap((p) => p.things) };
}

export interface AuditFilterFlags {
  rollout?: string | undefined;
  fleet?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

/** GET /audit, every page: the entries that match, newest first. */
export async function listAudit(api: ApiClient, filter: AuditFilterFlags = {}): Promise<AuditEntry[]> {
  const query = Object.fromEntries(
    Object.entries(filter).filter((e): e is [string, string] => typeof e[1] === "string"),
  );
  return (await api.pages("/audit", AuditListSchema, query)).flatMap((p) => p.entries);
}

/** node:http rather than fetch: the signed `host` header must go out exactly as signed. */
function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; payload: string }> {
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

/** Common target options for every cloud command. */
export function addTargetOptions<T extends { option(flags: string, description: string): T }>(cmd: T): T {
  return cmd
    .option("--local", "use the local cloud (reads .keel/local.json)")
    .option("--stack <name>", `CloudFormation stack to read outputs from (default ${DEFAULT_STACK})`)
    .option("--region <region>", "AWS region (default: AWS_REGION)");
}
