/**
 * What every control-plane route module shares: the request and route shapes, the dependencies, and the
 * parsers for path labels, query values and bodies (each failure an InvalidRequestException naming the
 * field). The limits themselves come from core/aws-limits.ts and are enforced before any handler runs.
 */
import type http from "node:http";
import { z } from "zod";
import { issuesOf } from "../../../core/parse.ts";
import type { CertificateAuthority } from "../../contracts.ts";
import type { ArnContext } from "../arns.ts";
import { IotServiceError } from "../errors.ts";
import type { FleetProvisioning } from "../fleet-provisioning.ts";
import type { JobsEngine } from "../jobs-engine.ts";
import type { ControlPlaneOperation } from "../limits.ts";
import type { Registry } from "../registry.ts";

export interface Req {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  headers: http.IncomingHttpHeaders;
}
export type Handler = (r: Req) => Promise<unknown> | unknown;
export interface Route {
  method: string;
  segments: string[];
  op: ControlPlaneOperation;
  handler: Handler;
}

export interface ControlPlaneDeps {
  ctx: ArnContext;
  registry: Registry;
  engine: JobsEngine;
  ca: CertificateAuthority;
  /** `host:port` of the broker devices connect to (DescribeEndpoint). */
  brokerAddress: () => string;
  setEventConfig: (c: { JOB?: boolean; JOB_EXECUTION?: boolean }) => void;
  /** Counts a control-plane call; `jobId` when the path names a job (benchmarks and tests attribute calls). */
  countCall: (op: string, jobId?: string) => void;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Fleet provisioning by claim (templates, policies); docs/fleets.md#fleet-provisioning-by-claim. */
  provisioning?: FleetProvisioning;
}

/** One route: `path` uses `{label}` segments, as the service model writes them. */
export function route(method: string, path: string, op: ControlPlaneOperation, handler: Handler): Route {
  return { method, segments: path.split("/").slice(1), op, handler };
}

// Lengths, patterns and ranges are core/aws-limits.ts's, checked before any handler runs (limits.ts); these
// schemas give each value its type (and decode query text), so no limit is written twice.
export const ThingName = z.string();
export const JobId = z.string();
export const Attributes = z.record(z.string(), z.string());
export const QueryBool = z.enum(["true", "false"]).transform((v) => v === "true");
export const QueryInt = z
  .string()
  .regex(/^-?\d+$/, "must be an integer")
  .transform(Number);
export const Text = z.string();
const DEFAULT_PAGE = 50;

/** Parses one input (body, path label, query value) or fails with InvalidRequestException naming the field. */
export function input<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const detail = issuesOf(r.error)
    .map((i) => `${i.path ? `${i.path}: ` : ""}${i.message}`)
    .join("; ");
  throw new IotServiceError("InvalidRequestException", `Invalid ${what}: ${detail}`, { cause: r.error });
}

export function optionalQuery<S extends z.ZodType>(
  q: URLSearchParams,
  name: string,
  schema: S,
): z.output<S> | undefined {
  const v = q.get(name);
  return v === null ? undefined : input(schema, v, name);
}

export const thingParam = (r: Req): string => input(ThingName, r.params.thingName, "thingName");
export const groupParam = (r: Req): string => input(ThingName, r.params.thingGroupName, "thingGroupName");
export const jobParam = (r: Req): string => input(JobId, r.params.jobId, "jobId");
export const force = (r: Req): boolean => optionalQuery(r.query, "force", QueryBool) ?? false;

/** maxResults (1–250) / opaque nextToken pagination over an already ordered list. */
export function paginate<T>(items: T[], q: URLSearchParams): { page: T[]; nextToken?: string } {
  const max = optionalQuery(q, "maxResults", QueryInt) ?? DEFAULT_PAGE;
  const token = q.get("nextToken");
  let start = 0;
  if (token !== null) {
    const decoded = Number(Buffer.from(token, "base64url").toString("utf8").replace(/^o:/, ""));
    if (
      !Number.isInteger(decoded) ||
      decoded < 0 ||
      !Buffer.from(token, "base64url").toString().startsWith("o:")
    ) {
      throw new IotServiceError("InvalidRequestException", "The nextToken is not valid");
    }
    start = decoded;
  }
  const page = items.slice(start, start + max);
  const end = start + page.length;
  return end < items.length ? { page, nextToken: Buffer.from(`o:${end}`).toString("base64url") } : { page };
}

export const seconds = (ms: number | undefined): number | undefined =>
  ms === undefined ? undefined : ms / 1000;
