/**
 * The control plane over HTTP (node:http, no framework), shaped so that the real `@aws-sdk/client-iot`
 * works with only `endpoint` changed: the same methods, paths, query names, bodies, status codes and
 * error types (`x-amzn-ErrorType` + `{"message"}`) as the service model (docs/iot-jobs.md).
 * Signatures are not checked (the AWS SDK does not need it); every body and parameter goes through zod.
 */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { issuesOf, MAX_JSON_BYTES } from "../../core/parse.ts";
import type { CertificateAuthority } from "../contracts.ts";
import {
  type ArnContext,
  certificateArn,
  jobArn,
  parseCertificateArn,
  parseTargetArn,
  thingArn,
  thingGroupArn,
} from "./arns.ts";
import { IotServiceError } from "./errors.ts";
import type { JobsEngine } from "./jobs-engine.ts";
import { type ControlPlaneOperation, enforceControlPlaneLimits } from "./limits.ts";
import {
  AbortConfigSchema,
  type Execution,
  ExecutionStatusSchema,
  type Job,
  JobStatusSchema,
  PresignedUrlConfigSchema,
  RetryConfigSchema,
  RolloutConfigSchema,
  type Thing,
  TimeoutConfigSchema,
} from "./model.ts";
import type { Registry } from "./registry.ts";

const ThingName = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, "must be 1-128 characters of [a-zA-Z0-9:_-]");
const JobId = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "must be 1-64 characters of [a-zA-Z0-9_-]");
const Attributes = z.record(
  z.string().regex(/^[a-zA-Z0-9_.,@/:#-]{1,128}$/),
  z.string().regex(/^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/),
);
const QueryBool = z.enum(["true", "false"]).transform((v) => v === "true");
const QueryInt = z
  .string()
  .regex(/^-?\d+$/, "must be an integer")
  .transform(Number);
const MaxResults = QueryInt.pipe(z.number().int().min(1).max(250));
const Text2028 = z.string().max(2028);
const DEFAULT_PAGE = 50;

const CreateThingBody = z.object({
  thingTypeName: z.string().min(1).max(128).optional(),
  attributePayload: z.object({ attributes: Attributes.optional(), merge: z.boolean().optional() }).optional(),
  billingGroupName: z.string().optional(),
});
const CreateThingGroupBody = z.object({
  parentGroupName: ThingName.optional(),
  thingGroupProperties: z
    .object({
      thingGroupDescription: Text2028.optional(),
      attributePayload: z
        .object({ attributes: Attributes.optional(), merge: z.boolean().optional() })
        .optional(),
    })
    .optional(),
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional(),
});
const MembershipBody = z
  .object({
    thingGroupName: ThingName.optional(),
    thingGroupArn: z.string().optional(),
    thingName: ThingName.optional(),
    thingArn: z.string().optional(),
    overrideDynamicGroups: z.boolean().optional(),
  })
  .refine(
    (b) => b.thingGroupName !== undefined || b.thingGroupArn !== undefined,
    "thingGroupName is required",
  )
  .refine((b) => b.thingName !== undefined || b.thingArn !== undefined, "thingName is required");
const CreateJobBody = z.object({
  targets: z.array(z.string().min(1).max(2048)).min(1),
  document: z.string().optional(),
  documentSource: z.string().max(1350).optional(),
  description: Text2028.optional(),
  targetSelection: z.enum(["SNAPSHOT", "CONTINUOUS"]).optional(),
  jobExecutionsRolloutConfig: RolloutConfigSchema.optional(),
  abortConfig: AbortConfigSchema.optional(),
  timeoutConfig: TimeoutConfigSchema.optional(),
  jobExecutionsRetryConfig: RetryConfigSchema.optional(),
  presignedUrlConfig: PresignedUrlConfigSchema.optional(),
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional(),
  namespaceId: z.string().optional(),
  jobTemplateArn: z.string().optional(),
  documentParameters: z.record(z.string(), z.string()).optional(),
  schedulingConfig: z.unknown().optional(),
});
const AssociateTargetsBody = z.object({
  targets: z.array(z.string().min(1).max(2048)).min(1),
  comment: Text2028.optional(),
});
const UpdateJobBody = z.object({
  description: Text2028.optional(),
  jobExecutionsRolloutConfig: RolloutConfigSchema.optional(),
  abortConfig: AbortConfigSchema.optional(),
  timeoutConfig: TimeoutConfigSchema.optional(),
  jobExecutionsRetryConfig: RetryConfigSchema.optional(),
  presignedUrlConfig: PresignedUrlConfigSchema.optional(),
});
const CancelJobBody = z.object({
  reasonCode: z
    .string()
    .max(128)
    .regex(/^[\p{Lu}\p{Nd}_]+$/u, "must be upper-case letters, digits and _")
    .optional(),
  comment: Text2028.optional(),
});
const CancelExecutionBody = z.object({
  expectedVersion: z.number().int().optional(),
  statusDetails: z.record(z.string(), z.string()).optional(),
});
const EventConfigBody = z.object({
  eventConfigurations: z.record(z.string(), z.object({ Enabled: z.boolean().optional() })).optional(),
});

interface Req {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  headers: http.IncomingHttpHeaders;
}
type Handler = (r: Req) => Promise<unknown> | unknown;
interface Route {
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
}

export async function startControlPlane(
  deps: ControlPlaneDeps,
  port = 0,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const routes = buildRoutes(deps);
  const server = http.createServer((req, res) => {
    void handle(routes, deps, req, res);
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handle(
  routes: Route[],
  deps: ControlPlaneDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      // The largest legitimate body is a CreateJob with a 32 KB document; refuse floods without buffering them.
      if (size > MAX_JSON_BYTES) {
        throw new IotServiceError(
          "InvalidRequestException",
          `The request body exceeds ${MAX_JSON_BYTES} bytes`,
        );
      }
      chunks.push(c as Buffer);
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    let segments: string[];
    try {
      // Labels arrive percent-encoded (`dev%3A01`, `%24next`); decode before matching (docs/iot-jobs.md).
      segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
    } catch (err) {
      throw new IotServiceError("InvalidRequestException", "The request path is not valid percent-encoding", {
        cause: err,
      });
    }
    const match = matchRoute(routes, req.method ?? "GET", segments);
    if (!match) {
      throw new IotServiceError(
        "UnknownOperationException",
        `No operation for ${req.method} ${url.pathname}`,
      );
    }
    deps.countCall(match.route.op, match.params.jobId);
    let body: unknown = {};
    const text = Buffer.concat(chunks).toString("utf8");
    if (text.trim().length > 0) {
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new IotServiceError("InvalidRequestException", "The request body is not valid JSON", {
          cause: err,
        });
      }
    }
    const request = { params: match.params, query: url.searchParams, body, headers: req.headers };
    // AWS validates every member against its model before doing anything (docs/aws-limits.md).
    enforceControlPlaneLimits(match.route.op, request);
    const out = await match.route.handler(request);
    const json = JSON.stringify(out ?? {});
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(json) });
    res.end(json);
  } catch (err) {
    let e: IotServiceError;
    if (err instanceof IotServiceError) e = err;
    else {
      // Never a stack trace to the client; the log keeps the detail.
      deps.log("control-plane request failed", { method: req.method, url: req.url, error: String(err) });
      e = new IotServiceError("InternalFailureException", "An internal error occurred", { cause: err });
    }
    const json = JSON.stringify({ message: e.message });
    res.writeHead(e.status, {
      "content-type": "application/json",
      "x-amzn-ErrorType": e.errorType,
      "content-length": Buffer.byteLength(json),
    });
    res.end(json);
  }
}

function matchRoute(
  routes: Route[],
  method: string,
  segments: string[],
): { route: Route; params: Record<string, string> } | undefined {
  for (const route of routes) {
    if (route.method !== method || route.segments.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const pattern = route.segments[i] as string;
      const actual = segments[i] as string;
      if (pattern.startsWith("{")) params[pattern.slice(1, -1)] = actual;
      else ok = pattern === actual;
    }
    if (ok) return { route, params };
  }
  return undefined;
}

/** Parses one input (body, path label, query value) or fails with InvalidRequestException naming the field. */
function input<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const detail = issuesOf(r.error)
    .map((i) => `${i.path ? `${i.path}: ` : ""}${i.message}`)
    .join("; ");
  throw new IotServiceError("InvalidRequestException", `Invalid ${what}: ${detail}`, { cause: r.error });
}

function optionalQuery<S extends z.ZodType>(
  q: URLSearchParams,
  name: string,
  schema: S,
): z.output<S> | undefined {
  const v = q.get(name);
  return v === null ? undefined : input(schema, v, name);
}

/** maxResults (1–250) / opaque nextToken pagination over an already ordered list. */
function paginate<T>(items: T[], q: URLSearchParams): { page: T[]; nextToken?: string } {
  const max = optionalQuery(q, "maxResults", MaxResults) ?? DEFAULT_PAGE;
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

const seconds = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms / 1000);

function buildRoutes(d: ControlPlaneDeps): Route[] {
  const { ctx, registry, engine } = d;
  const thingParam = (r: Req): string => input(ThingName, r.params.thingName, "thingName");
  const groupParam = (r: Req): string => input(ThingName, r.params.thingGroupName, "thingGroupName");
  const jobParam = (r: Req): string => input(JobId, r.params.jobId, "jobId");
  const force = (r: Req): boolean => optionalQuery(r.query, "force", QueryBool) ?? false;

  const thingOut = (t: Thing) => ({
    thingName: t.thingName,
    thingArn: thingArn(ctx, t.thingName),
    thingTypeName: t.thingTypeName,
    attributes: t.attributes,
    version: t.version,
  });
  const jobOut = (j: Job) => ({
    jobArn: jobArn(ctx, j.jobId),
    jobId: j.jobId,
    targetSelection: j.targetSelection,
    status: j.status,
    forceCanceled: j.forceCanceled,
    reasonCode: j.reasonCode,
    comment: j.comment,
    targets: j.targets,
    description: j.description,
    presignedUrlConfig: j.presignedUrlConfig,
    jobExecutionsRolloutConfig: j.rolloutConfig,
    abortConfig: j.abortConfig,
    timeoutConfig: j.timeoutConfig,
    jobExecutionsRetryConfig: j.retryConfig,
    createdAt: seconds(j.createdAt),
    lastUpdatedAt: seconds(j.lastUpdatedAt),
    completedAt: seconds(j.completedAt),
    jobProcessDetails: engine.processDetails(j),
    isConcurrent: engine.isConcurrent(j),
  });
  const execSummary = (e: Execution) => ({
    status: e.status,
    queuedAt: seconds(e.queuedAt),
    startedAt: seconds(e.startedAt),
    lastUpdatedAt: seconds(e.lastUpdatedAt),
    executionNumber: e.executionNumber,
    retryAttempt: e.retryAttempt,
  });
  const membership = (r: Req): { group: string; thing: string } => {
    const b = input(MembershipBody, r.body, "request body");
    const group = b.thingGroupName ?? nameFromArn(b.thingGroupArn, "thinggroup");
    const thing = b.thingName ?? nameFromArn(b.thingArn, "thing");
    return { group, thing };
  };
  const nameFromArn = (arn: string | undefined, kind: "thing" | "thinggroup"): string => {
    const t = arn === undefined ? undefined : parseTargetArn(ctx, arn);
    if (!t || t.kind !== kind)
      throw new IotServiceError("InvalidRequestException", `${arn} is not a ${kind} ARN`);
    return t.name;
  };
  const principal = (r: Req): string => {
    const raw = r.headers["x-amzn-principal"];
    const arn = Array.isArray(raw) ? raw[0] : raw;
    const id = arn === undefined ? undefined : parseCertificateArn(ctx, arn);
    if (!id) {
      throw new IotServiceError(
        "InvalidRequestException",
        `principal must be a certificate ARN arn:aws:iot:${ctx.region}:${ctx.account}:cert/<certificateId>`,
      );
    }
    return id;
  };

  const r = (method: string, path: string, op: ControlPlaneOperation, handler: Handler): Route => ({
    method,
    segments: path.split("/").slice(1),
    op,
    handler,
  });

  return [
    // ---- registry: things ----
    r("POST", "/things/{thingName}", "CreateThing", (q) => {
      const b = input(CreateThingBody, q.body, "request body");
      const t = registry.createThing({
        thingName: thingParam(q),
        thingTypeName: b.thingTypeName,
        attributes: b.attributePayload?.attributes,
      });
      return { thingName: t.thingName, thingArn: thingArn(ctx, t.thingName), thingId: t.thingId };
    }),
    r("GET", "/things/{thingName}", "DescribeThing", (q) => {
      const t = registry.thing(thingParam(q));
      return { defaultClientId: t.thingName, thingId: t.thingId, ...thingOut(t) };
    }),
    r("GET", "/things", "ListThings", (q) => {
      const attrName = q.query.get("attributeName");
      const attrValue = q.query.get("attributeValue");
      const type = q.query.get("thingTypeName");
      const all = [...registry.things.values()]
        .filter(
          (t) =>
            attrName === null ||
            (attrName in t.attributes && (attrValue === null || t.attributes[attrName] === attrValue)),
        )
        .filter((t) => type === null || t.thingTypeName === type)
        .sort((a, b) => a.thingName.localeCompare(b.thingName));
      const { page, nextToken } = paginate(all, q.query);
      return { things: page.map(thingOut), nextToken };
    }),
    r("DELETE", "/things/{thingName}", "DeleteThing", (q) => {
      registry.deleteThing(thingParam(q), optionalQuery(q.query, "expectedVersion", QueryInt));
      return {};
    }),
    // ---- registry: groups ----
    r("PUT", "/thing-groups/addThingToThingGroup", "AddThingToThingGroup", (q) => {
      const m = membership(q);
      registry.addThingToThingGroup(m.group, m.thing);
      return {};
    }),
    r("PUT", "/thing-groups/removeThingFromThingGroup", "RemoveThingFromThingGroup", (q) => {
      const m = membership(q);
      registry.removeThingFromThingGroup(m.group, m.thing);
      return {};
    }),
    r("POST", "/thing-groups/{thingGroupName}", "CreateThingGroup", (q) => {
      const b = input(CreateThingGroupBody, q.body, "request body");
      const g = registry.createThingGroup({
        groupName: groupParam(q),
        parentGroupName: b.parentGroupName,
        description: b.thingGroupProperties?.thingGroupDescription,
        attributes: b.thingGroupProperties?.attributePayload?.attributes,
      });
      return {
        thingGroupName: g.groupName,
        thingGroupArn: thingGroupArn(ctx, g.groupName),
        thingGroupId: g.groupId,
      };
    }),
    r("GET", "/thing-groups/{thingGroupName}", "DescribeThingGroup", (q) => {
      const g = registry.group(groupParam(q));
      return {
        thingGroupName: g.groupName,
        thingGroupId: g.groupId,
        thingGroupArn: thingGroupArn(ctx, g.groupName),
        version: g.version,
        thingGroupProperties: {
          thingGroupDescription: g.description,
          attributePayload: { attributes: g.attributes },
        },
        thingGroupMetadata: {
          parentGroupName: g.parentGroupName,
          rootToParentThingGroups: registry
            .ancestors(g.groupName)
            .reverse()
            .map((a) => ({ groupName: a, groupArn: thingGroupArn(ctx, a) })),
          creationDate: seconds(g.createdAt),
        },
        status: "ACTIVE",
      };
    }),
    r("GET", "/thing-groups", "ListThingGroups", (q) => {
      const groups = registry.listThingGroups({
        parentGroup: optionalQuery(q.query, "parentGroup", ThingName),
        namePrefixFilter: q.query.get("namePrefixFilter") ?? undefined,
        recursive: optionalQuery(q.query, "recursive", QueryBool),
      });
      const { page, nextToken } = paginate(groups, q.query);
      return {
        thingGroups: page.map((g) => ({ groupName: g.groupName, groupArn: thingGroupArn(ctx, g.groupName) })),
        nextToken,
      };
    }),
    r("GET", "/thing-groups/{thingGroupName}/things", "ListThingsInThingGroup", (q) => {
      const recursive = optionalQuery(q.query, "recursive", QueryBool) ?? false;
      const { page, nextToken } = paginate(registry.thingsInGroup(groupParam(q), recursive), q.query);
      return { things: page, nextToken };
    }),
    r("GET", "/things/{thingName}/thing-groups", "ListThingGroupsForThing", (q) => {
      const t = registry.thing(thingParam(q));
      const { page, nextToken } = paginate([...t.groups].sort(), q.query);
      return { thingGroups: page.map((g) => ({ groupName: g, groupArn: thingGroupArn(ctx, g) })), nextToken };
    }),
    // ---- certificates and principals ----
    r("POST", "/keys-and-certificate", "CreateKeysAndCertificate", async (q) => {
      const active = optionalQuery(q.query, "setAsActive", QueryBool) ?? false;
      const issued = await d.ca.issueDeviceCertificate();
      const c = registry.addCertificate(issued, active);
      // The private key is returned once and never stored, as in AWS IoT.
      return {
        certificateArn: certificateArn(ctx, c.certificateId),
        certificateId: c.certificateId,
        certificatePem: issued.certificatePem,
        keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
      };
    }),
    r("PUT", "/things/{thingName}/principals", "AttachThingPrincipal", (q) => {
      registry.attachPrincipal(thingParam(q), principal(q));
      return {};
    }),
    r("DELETE", "/things/{thingName}/principals", "DetachThingPrincipal", (q) => {
      registry.detachPrincipal(thingParam(q), principal(q));
      return {};
    }),
    r("PUT", "/certificates/{certificateId}", "UpdateCertificate", (q) => {
      const id = input(z.string().regex(/^[0-9a-f]{64}$/), q.params.certificateId, "certificateId");
      const status = optionalQuery(q.query, "newStatus", z.enum(["ACTIVE", "INACTIVE", "REVOKED"]));
      if (!status) throw new IotServiceError("InvalidRequestException", "newStatus is required");
      registry.updateCertificate(id, status);
      return {};
    }),
    // ---- jobs ----
    r("PUT", "/jobs/{jobId}", "CreateJob", (q) => {
      const jobId = jobParam(q);
      const b = input(CreateJobBody, q.body, "request body");
      const unsupported = (
        ["documentSource", "jobTemplateArn", "documentParameters", "schedulingConfig"] as const
      ).filter((k) => b[k] !== undefined);
      if (unsupported.length > 0) {
        throw new IotServiceError(
          "InvalidRequestException",
          `${unsupported.join(", ")} not supported by the local IoT stand-in; pass the document inline`,
        );
      }
      if (b.document === undefined)
        throw new IotServiceError("InvalidRequestException", "document is required");
      const job = engine.createJob({
        jobId,
        targets: b.targets,
        document: b.document,
        description: b.description,
        targetSelection: b.targetSelection,
        rolloutConfig: b.jobExecutionsRolloutConfig,
        abortConfig: b.abortConfig,
        timeoutConfig: b.timeoutConfig,
        retryConfig: b.jobExecutionsRetryConfig,
        presignedUrlConfig: b.presignedUrlConfig,
      });
      return { jobArn: jobArn(ctx, job.jobId), jobId: job.jobId, description: job.description };
    }),
    r("GET", "/jobs/{jobId}", "DescribeJob", (q) => ({ job: jobOut(engine.job(jobParam(q))) })),
    r("GET", "/jobs/{jobId}/job-document", "GetJobDocument", (q) => ({
      document: engine.job(jobParam(q)).document,
    })),
    r("GET", "/jobs", "ListJobs", (q) => {
      const jobs = engine.listJobs({
        status: optionalQuery(q.query, "status", JobStatusSchema),
        targetSelection: optionalQuery(q.query, "targetSelection", z.enum(["SNAPSHOT", "CONTINUOUS"])),
        thingGroupName: optionalQuery(q.query, "thingGroupName", ThingName),
      });
      const { page, nextToken } = paginate(jobs, q.query);
      return {
        jobs: page.map((j) => ({
          jobArn: jobArn(ctx, j.jobId),
          jobId: j.jobId,
          targetSelection: j.targetSelection,
          status: j.status,
          createdAt: seconds(j.createdAt),
          lastUpdatedAt: seconds(j.lastUpdatedAt),
          completedAt: seconds(j.completedAt),
          isConcurrent: engine.isConcurrent(j),
        })),
        nextToken,
      };
    }),
    r("PATCH", "/jobs/{jobId}", "UpdateJob", (q) => {
      const b = input(UpdateJobBody, q.body, "request body");
      engine.updateJob(jobParam(q), {
        description: b.description,
        rolloutConfig: b.jobExecutionsRolloutConfig,
        abortConfig: b.abortConfig,
        timeoutConfig: b.timeoutConfig,
        retryConfig: b.jobExecutionsRetryConfig,
        presignedUrlConfig: b.presignedUrlConfig,
      });
      return {};
    }),
    r("PUT", "/jobs/{jobId}/cancel", "CancelJob", (q) => {
      const b = input(CancelJobBody, q.body, "request body");
      const job = engine.cancelJob(jobParam(q), {
        force: force(q),
        reasonCode: b.reasonCode,
        comment: b.comment,
      });
      return { jobArn: jobArn(ctx, job.jobId), jobId: job.jobId, description: job.description };
    }),
    r("POST", "/jobs/{jobId}/targets", "AssociateTargetsWithJob", (q) => {
      const b = input(AssociateTargetsBody, q.body, "request body");
      const job = engine.associateTargets(jobParam(q), b.targets, b.comment);
      return { jobArn: jobArn(ctx, job.jobId), jobId: job.jobId, description: job.description };
    }),
    r("DELETE", "/jobs/{jobId}", "DeleteJob", (q) => {
      engine.deleteJob(jobParam(q), force(q));
      return {};
    }),
    // ---- executions ----
    r("GET", "/things/{thingName}/jobs/{jobId}", "DescribeJobExecution", (q) => {
      const thing = thingParam(q);
      const e = engine.describeExecution(
        thing,
        jobParam(q),
        optionalQuery(q.query, "executionNumber", QueryInt.pipe(z.number().int().min(0))),
      );
      return {
        execution: {
          jobId: e.jobId,
          status: e.status,
          forceCanceled: e.forceCanceled,
          statusDetails: { detailsMap: e.statusDetails },
          thingArn: thingArn(ctx, thing),
          queuedAt: seconds(e.queuedAt),
          startedAt: seconds(e.startedAt),
          lastUpdatedAt: seconds(e.lastUpdatedAt),
          executionNumber: e.executionNumber,
          versionNumber: e.versionNumber,
          approximateSecondsBeforeTimedOut: engine.approximateSecondsBeforeTimedOut(e),
        },
      };
    }),
    r("GET", "/jobs/{jobId}/things", "ListJobExecutionsForJob", (q) => {
      const job = engine.job(jobParam(q));
      const status = optionalQuery(q.query, "status", ExecutionStatusSchema);
      const all = [...engine.executionsOfJob(job)].filter((e) => status === undefined || e.status === status);
      const { page, nextToken } = paginate(all, q.query);
      return {
        executionSummaries: page.map((e) => ({
          thingArn: thingArn(ctx, e.thingName),
          jobExecutionSummary: execSummary(e),
        })),
        nextToken,
      };
    }),
    r("GET", "/things/{thingName}/jobs", "ListJobExecutionsForThing", (q) => {
      const thing = thingParam(q);
      const status = optionalQuery(q.query, "status", ExecutionStatusSchema);
      const jobId = optionalQuery(q.query, "jobId", JobId);
      const all = engine
        .executionsOfThing(thing)
        .filter(
          (e) => (status === undefined || e.status === status) && (jobId === undefined || e.jobId === jobId),
        )
        .sort((a, b) => b.queuedAt - a.queuedAt);
      const { page, nextToken } = paginate(all, q.query);
      return {
        executionSummaries: page.map((e) => ({ jobId: e.jobId, jobExecutionSummary: execSummary(e) })),
        nextToken,
      };
    }),
    r("PUT", "/things/{thingName}/jobs/{jobId}/cancel", "CancelJobExecution", (q) => {
      const b = input(CancelExecutionBody, q.body, "request body");
      engine.cancelExecution(thingParam(q), jobParam(q), {
        force: force(q),
        expectedVersion: b.expectedVersion,
        statusDetails: b.statusDetails,
      });
      return {};
    }),
    r(
      "DELETE",
      "/things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}",
      "DeleteJobExecution",
      (q) => {
        const n = input(QueryInt.pipe(z.number().int().min(0)), q.params.executionNumber, "executionNumber");
        engine.deleteExecution(thingParam(q), jobParam(q), n, force(q));
        return {};
      },
    ),
    // ---- endpoint and events ----
    r("GET", "/endpoint", "DescribeEndpoint", (q) => {
      const type = q.query.get("endpointType") ?? "iot:Data";
      if (type !== "iot:Data-ATS" && type !== "iot:Data") {
        throw new IotServiceError(
          "InvalidRequestException",
          `endpointType ${type} is not served locally; use iot:Data-ATS (the MQTT broker)`,
        );
      }
      return { endpointAddress: d.brokerAddress() };
    }),
    r("PATCH", "/event-configurations", "UpdateEventConfigurations", (q) => {
      const b = input(EventConfigBody, q.body, "request body");
      const c = b.eventConfigurations ?? {};
      d.setEventConfig({ JOB: c.JOB?.Enabled, JOB_EXECUTION: c.JOB_EXECUTION?.Enabled });
      return {};
    }),
    r("GET", "/event-configurations", "DescribeEventConfigurations", () => ({
      eventConfigurations: {
        JOB: { Enabled: engine.eventConfig.JOB },
        JOB_EXECUTION: { Enabled: engine.eventConfig.JOB_EXECUTION },
      },
    })),
  ];
}
