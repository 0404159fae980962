/**
 * The MQTT data plane (docs/iot-jobs.md): connects to the broker as the privileged service client, subscribes
 * to `$aws/things/+/jobs/#`, acts only on request topics (never on its own responses and notifications),
 * validates every payload with zod and answers on `/accepted` or `/rejected`. Publishing is serialized per
 * thing, so a device sees its response before the notifications that response caused.
 */
import type { MqttClient } from "mqtt";
import { z } from "zod";
import { describeError } from "../../core/errors.ts";
import { issuesOf } from "../../core/parse.ts";
import type { FaultRule, RunningBroker } from "../contracts.ts";
import { JobsRejection, RejectCode } from "./errors.ts";
import type { JobsEngine, Outgoing } from "./jobs-engine.ts";
import { enforceDataPlaneLimits } from "./limits.ts";
import { ExecutionStatusSchema } from "./model.ts";
import { connectServiceClient } from "./service-client.ts";

// Limits (statusDetails sizes and patterns, clientToken, step timeouts) come from core/aws-limits.ts and are
// enforced before these schemas run (limits.ts); the schemas only give the request its types.
const ClientToken = z.string();
const StatusDetailsSchema = z.record(z.string(), z.string());
const StepTimeout = z.number().int();

const GetPendingRequest = z.object({ clientToken: ClientToken.optional() });
const StartNextRequest = z.object({
  statusDetails: StatusDetailsSchema.optional(),
  stepTimeoutInMinutes: StepTimeout.optional(),
  clientToken: ClientToken.optional(),
});
const DescribeRequest = z.object({
  executionNumber: z.number().int().min(1).optional(),
  includeJobDocument: z.boolean().optional(),
  clientToken: ClientToken.optional(),
});
const UpdateRequestSchema = z.object({
  status: ExecutionStatusSchema,
  statusDetails: StatusDetailsSchema.optional(),
  expectedVersion: z.number().int().min(0).optional(),
  executionNumber: z.number().int().min(1).optional(),
  includeJobExecutionState: z.boolean().optional(),
  includeJobDocument: z.boolean().optional(),
  // -1 cancels the step timer (docs/iot-jobs.md); the range, with that exception, is in the limits table.
  stepTimeoutInMinutes: StepTimeout.optional(),
  clientToken: ClientToken.optional(),
});

export type Request =
  | { op: "get"; thing: string }
  | { op: "start-next"; thing: string }
  | { op: "describe"; thing: string; jobId: string }
  | { op: "update"; thing: string; jobId: string }
  | { op: "invalid"; thing: string }
  | { op: "ignore" };

/** Maps a topic under `$aws/things/T/jobs/` to an operation; our own publishes map to "ignore". */
export function classifyTopic(topic: string): Request {
  const parts = topic.split("/");
  if (parts[0] !== "$aws" || parts[1] !== "things" || parts[3] !== "jobs" || !parts[2])
    return { op: "ignore" };
  const thing = parts[2];
  const rest = parts.slice(4);
  const last = rest[rest.length - 1];
  if (last === "accepted" || last === "rejected") return { op: "ignore" };
  if (rest.length === 1 && (rest[0] === "notify" || rest[0] === "notify-next")) return { op: "ignore" };
  // Greengrass namespace notifications are service output too (docs/iot-jobs.md).
  if (rest.length === 2 && rest[1]?.startsWith("notify-namespace-")) return { op: "ignore" };
  if (rest.length === 1 && rest[0] === "get") return { op: "get", thing };
  if (rest.length === 1 && rest[0] === "start-next") return { op: "start-next", thing };
  const jobId = rest[0];
  if (rest.length === 2 && jobId && (jobId === "$next" || /^[a-zA-Z0-9_-]{1,64}$/.test(jobId))) {
    if (rest[1] === "get") return { op: "describe", thing, jobId };
    if (rest[1] === "update" && jobId !== "$next") return { op: "update", thing, jobId };
  }
  return { op: "invalid", thing };
}

export interface DataPlaneStats {
  in: number;
  out: number;
}

export class DataPlane {
  private client: MqttClient | undefined;
  private readonly chains = new Map<string, Promise<void>>();
  private readonly backlog: Array<{ topic: string; payload: string }> = [];
  /** Injected faults still to be served (local mode only); each keeps its remaining count. */
  private readonly faults: FaultRule[] = [];
  readonly stats: DataPlaneStats = { in: 0, out: 0 };

  constructor(
    private readonly engine: () => JobsEngine,
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void,
  ) {}

  async connect(broker: RunningBroker): Promise<void> {
    // A persistent session: requests published while the stand-in restarts are delivered afterwards.
    // A leading wildcard never matches `$` topics, so the subscription names `$aws` explicitly (docs/iot-jobs.md).
    const client = await connectServiceClient(broker, {
      clean: false,
      subscribe: "$aws/things/+/jobs/#",
      onMessage: (topic, payload) => this.onMessage(topic, payload),
      onError: (c, err) => {
        // Errors while closing (acks racing the end of the connection) are expected noise.
        if (this.client === c) this.log("mqtt client error", { error: err.message });
      },
    });
    this.client = client;
    for (const m of this.backlog.splice(0)) this.send(m.topic, m.payload);
  }

  /** Answers the next `rule.count` matching requests with `rule.code` on `/rejected`, changing nothing. */
  injectFaults(rule: FaultRule): void {
    if (!Number.isInteger(rule.count) || rule.count < 1) {
      throw new RangeError(`fault count must be a positive integer, got ${rule.count}`);
    }
    this.faults.push({ ...rule });
  }

  /** Consumes one use of the first rule matching this request; the code to answer with, if any. */
  private takeFault(req: Request, body: unknown): FaultRule["code"] | undefined {
    if (req.op === "ignore" || req.op === "invalid") return undefined;
    const status =
      body && typeof body === "object" && "status" in body && typeof body.status === "string"
        ? body.status
        : undefined;
    const i = this.faults.findIndex(
      (f) =>
        (f.thing === undefined || f.thing === req.thing) &&
        (f.operation === undefined || f.operation === req.op) &&
        (f.status === undefined || (req.op === "update" && f.status === status)),
    );
    const rule = this.faults[i];
    if (!rule) return undefined;
    if (--rule.count === 0) this.faults.splice(i, 1);
    return rule.code;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync();
  }

  /** Queues messages for one thing behind everything queued for it before (per-thing serialization). */
  publishFor(thing: string, messages: Outgoing[]): void {
    const prev = this.chains.get(thing) ?? Promise.resolve();
    const next = prev.then(async () => {
      for (const m of messages) {
        try {
          this.send(m.topic, JSON.stringify(await m.render()));
        } catch (err) {
          this.log("cannot render a jobs message", { topic: m.topic, error: describeError(err) });
        }
      }
    });
    this.chains.set(thing, next);
    void next.then(() => {
      if (this.chains.get(thing) === next) this.chains.delete(thing);
    });
  }

  publishRaw(topic: string, payload: Record<string, unknown>): void {
    this.send(topic, JSON.stringify(payload));
  }

  private send(topic: string, payload: string): void {
    if (!this.client) {
      this.backlog.push({ topic, payload });
      return;
    }
    this.stats.out++;
    this.client.publish(topic, payload, { qos: 1 }, (err) => {
      if (err) this.log("mqtt publish failed", { topic, error: err.message });
    });
  }

  private onMessage(topic: string, payload: Buffer): void {
    const req = classifyTopic(topic);
    if (req.op === "ignore") return;
    this.stats.in++;
    const engine = this.engine();
    // The body is decoded first so that even an InvalidTopic rejection can echo the clientToken.
    let body: unknown;
    let validJson = true;
    try {
      const text = payload.length === 0 ? "{}" : new TextDecoder("utf-8", { fatal: true }).decode(payload);
      body = JSON.parse(text);
    } catch {
      validJson = false;
    }
    const clientToken =
      body && typeof body === "object" && "clientToken" in body && typeof body.clientToken === "string"
        ? body.clientToken
        : undefined;
    try {
      if (req.op === "invalid") {
        throw new JobsRejection(RejectCode.InvalidTopic, `Topic ${topic} maps to no Jobs operation`);
      }
      if (!validJson) throw new JobsRejection(RejectCode.InvalidJson, "The payload is not valid UTF-8 JSON");
      // AWS validates the request before doing anything; an invalid one consumes no injected fault.
      enforceDataPlaneLimits(
        req.op,
        { thingName: req.thing, ...("jobId" in req ? { jobId: req.jobId } : {}) },
        body,
      );
      // An injected service fault answers before the engine sees the request, so no state can change.
      const fault = this.takeFault(req, body);
      if (fault) throw new JobsRejection(RejectCode[fault], `Injected fault: ${fault}`);
      switch (req.op) {
        case "get":
          engine.device.getPending(req.thing, parse(GetPendingRequest, body).clientToken);
          break;
        case "start-next":
          engine.device.startNext(req.thing, parse(StartNextRequest, body));
          break;
        case "describe":
          engine.device.describe(req.thing, req.jobId, parse(DescribeRequest, body));
          break;
        case "update":
          engine.device.update(req.thing, req.jobId, parse(UpdateRequestSchema, body));
          break;
      }
    } catch (err) {
      const rejection =
        err instanceof JobsRejection
          ? err
          : new JobsRejection(RejectCode.InternalError, "The service could not process the request");
      if (!(err instanceof JobsRejection)) this.log("jobs request failed", { topic, error: String(err) });
      engine.device.rejected(req.thing, topic, rejection, clientToken);
    }
  }
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new JobsRejection(RejectCode.InvalidRequest, "The request body must be a JSON object");
  }
  const r = schema.safeParse(body);
  if (!r.success) {
    const msg = issuesOf(r.error)
      .map((i) => `${i.path || "(root)"}: ${i.message}`)
      .join("; ");
    throw new JobsRejection(RejectCode.InvalidRequest, `Invalid request: ${msg}`);
  }
  return r.data;
}
