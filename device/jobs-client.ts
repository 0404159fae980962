/**
 * The AWS IoT Jobs MQTT data plane, from the device side, in one module behind a narrow seam (docs/style.md
 * item 4; docs/iot-jobs.md §1, §2, §6). MQTT.js over mutual TLS with the thing name as client
 * id. On every connect: subscribe, then StartNextPendingJobExecution. Responses are matched by a fresh
 * clientToken per request; every payload is parsed with zod before use. Deduplication by
 * (jobId, executionNumber) is the agent's (it persists the keys); this module only delivers.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import mqtt, { type MqttClient } from "mqtt";
import { z } from "zod";
import { describeError } from "../core/errors.ts";
import { parseJsonText, parseWith } from "../core/parse.ts";
import { JsonObjectSchema } from "../core/schemas.ts";
import { type AgentClock, backoffMs } from "./clock.ts";
import { AbortedError, JobsRequestError } from "./errors.ts";
import type { Logger } from "./logger.ts";

export const JobExecutionSchema = z.looseObject({
  jobId: z.string().min(1).max(64),
  status: z.string(),
  executionNumber: z.number().int().min(0).default(1),
  versionNumber: z.number().int().optional(),
  statusDetails: z.record(z.string(), z.string()).optional(),
  // A job document is a JSON object on the wire; anything else is a malformed message, not a job to reject.
  // Passed through as parsed (not rebuilt like z.record would), so a `__proto__` member reaches the
  // document's strict schema and is refused there instead of vanishing here.
  jobDocument: JsonObjectSchema.optional(),
});
export type JobExecution = z.infer<typeof JobExecutionSchema>;

/** The pseudo-code a request fails with when its answer is not a valid response. */
const MALFORMED = "MalformedResponse";

const ExecutionResponseSchema = z.looseObject({
  execution: JobExecutionSchema.optional(),
  clientToken: z.string().optional(),
});
const RejectedSchema = z.looseObject({
  code: z.string(),
  message: z.string().optional(),
  clientToken: z.string().optional(),
});
const TokenOnlySchema = z.looseObject({ clientToken: z.string().optional() });
/** The schema of each topic kind the client acts on (STYLE: every MQTT payload is parsed before use). */
const SCHEMA_OF_KIND: Record<string, z.ZodType> = {
  "notify-next": ExecutionResponseSchema,
  "start-next/accepted": ExecutionResponseSchema,
  "get/accepted": ExecutionResponseSchema,
  "update/accepted": TokenOnlySchema,
  "start-next/rejected": RejectedSchema,
  "get/rejected": RejectedSchema,
  "update/rejected": RejectedSchema,
};

/** Codes after which retrying the same update is pointless: the execution is terminal, cancelled or gone. */
const GONE_CODES = new Set(["InvalidStateTransition", "ResourceNotFound", "TerminalStateReached"]);
/** Codes the service documents as transient (§6.5), and an answer to our request we could not parse. */
const RETRYABLE_CODES = new Set(["InternalError", "RequestThrottled", MALFORMED]);

export type DeviceStatus = "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "REJECTED";

export interface MqttSettings {
  endpoint: string;
  cert: string;
  key: string;
  ca: string;
}

export interface JobsClientOptions {
  thingName: string;
  mqtt: MqttSettings;
  clock: AgentClock;
  logger: Logger;
  /** How long to wait for /accepted or /rejected. */
  requestTimeoutMs?: number;
  /** Backoff for terminal reports (capped, §6.5). */
  reportBackoff?: { initialMs: number; maxMs: number };
  /** A job execution offered by start-next, notify-next or describe. */
  onExecution: (e: JobExecution) => void;
  /** notify-next: the head of the pending queue changed (null: nothing pending). */
  onNextChanged: (e: JobExecution | null) => void;
}

/** statusDetails limits (§2): ≤10 pairs, keys [a-zA-Z0-9:_-]{1,128}, values 1–1024 chars, no control chars. */
export function trimStatusDetails(details: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, raw] of Object.entries(details)) {
    if (n >= 10) break;
    if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(k)) continue;
    let v = raw.replace(/\p{C}+/gu, " ").trim();
    if (v.length === 0) continue;
    if (v.length > 1024) v = `${v.slice(0, 1023)}…`;
    out[k] = v;
    n++;
  }
  return out;
}

type Pending = {
  resolve: (r: { ok: true; body: unknown } | { ok: false; code: string; message: string }) => void;
};

export class JobsClient {
  private client: MqttClient | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly prefix: string;
  private readonly requestTimeoutMs: number;
  private readonly stopping = new AbortController();
  private seq = 0;

  constructor(private readonly opts: JobsClientOptions) {
    this.prefix = `$aws/things/${opts.thingName}/jobs/`;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async start(): Promise<void> {
    const [cert, key, ca] = await Promise.all(
      [this.opts.mqtt.cert, this.opts.mqtt.key, this.opts.mqtt.ca].map((p) => readFile(p)),
    );
    const client = mqtt.connect(this.opts.mqtt.endpoint, {
      clientId: this.opts.thingName,
      cert,
      key,
      ca,
      rejectUnauthorized: true,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    this.client = client;
    client.on("connect", () => {
      this.opts.logger.info("connected to the broker", { endpoint: this.opts.mqtt.endpoint });
      void this.onConnect();
    });
    client.on("message", (topic, payload) => this.dispatch(topic, payload));
    client.on("error", (err) => this.opts.logger.warn("mqtt error", { error: err }));
    client.on("offline", () => this.opts.logger.info("broker connection lost; reconnecting"));
  }

  async stop(): Promise<void> {
    this.stopping.abort(new AbortedError("jobs client stopping"));
    for (const [token, p] of this.pending) {
      p.resolve({ ok: false, code: "Stopped", message: "jobs client stopped" });
      this.pending.delete(token);
    }
    const c = this.client;
    this.client = null;
    if (c) await c.endAsync(true);
  }

  /** §6.2: on every (re)connect subscribe first, then ask for the next job and answer from current state. */
  private async onConnect(): Promise<void> {
    const c = this.client;
    if (!c) return;
    try {
      await c.subscribeAsync(
        [
          `${this.prefix}notify-next`,
          `${this.prefix}start-next/+`,
          `${this.prefix}+/get/+`,
          `${this.prefix}+/update/+`,
        ],
        { qos: 1 },
      );
    } catch (err) {
      this.opts.logger.warn("subscribing after connect failed", { error: err });
      return;
    }
    const exec = await this.startNextWithRetry(c);
    if (exec) this.opts.onExecution(exec);
  }

  /**
   * start-next, retried with capped backoff on service faults and malformed answers (§6.5) for as long
   * as this connection lasts: a throttled start-next must not leave a queued job unnoticed until the
   * next reconnect or notification.
   */
  private async startNextWithRetry(c: MqttClient): Promise<JobExecution | null> {
    const { initialMs, maxMs } = this.opts.reportBackoff ?? { initialMs: 1000, maxMs: 60_000 };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.startNext();
      } catch (err) {
        const retry =
          err instanceof JobsRequestError &&
          (RETRYABLE_CODES.has(err.code) || err.code === "Timeout") &&
          this.client === c &&
          c.connected &&
          !this.stopping.signal.aborted;
        if (!retry) {
          this.opts.logger.warn("start-next after connect failed", { error: err });
          return null;
        }
        const wait = backoffMs(attempt, initialMs, maxMs);
        this.opts.logger.warn("start-next not accepted yet; retrying", { waitMs: wait, error: err });
        try {
          await this.opts.clock.sleep(wait, this.stopping.signal);
        } catch {
          return null; // stopping
        }
      }
    }
  }

  /** One switch on the topic kind (docs/style.md#shapes-we-follow, item 5); every payload parsed before use. */
  private dispatch(topic: string, payload: Buffer): void {
    if (!topic.startsWith(this.prefix)) return; // §1.1: check that T is our own thing
    const rest = topic.slice(this.prefix.length).split("/");
    const kind = (rest.length === 1 ? rest[0] : rest.slice(-2).join("/")) ?? "";
    const schema = SCHEMA_OF_KIND[kind];
    if (!schema) return; // notify, our own requests and anything else: nothing to do
    let body: unknown;
    try {
      body = parseJsonText(payload, `MQTT message on ${topic}`);
    } catch (err) {
      this.opts.logger.warn("ignoring a jobs message that is not UTF-8 JSON", { topic, error: err });
      return;
    }
    let parsed: unknown;
    try {
      parsed = parseWith(schema, body, `MQTT message on ${topic}`);
    } catch (err) {
      this.opts.logger.warn("ignoring a malformed jobs message", { topic, error: err });
      // An answer to a request of ours that we cannot use fails that request at once (retried as a fault).
      const token = TokenOnlySchema.safeParse(body);
      if (token.success && token.data.clientToken) {
        this.settle(token.data.clientToken, {
          ok: false,
          code: MALFORMED,
          message: `malformed answer on ${topic}`,
        });
      }
      return;
    }
    switch (kind) {
      case "notify-next": {
        const r = parsed as z.output<typeof ExecutionResponseSchema>;
        this.opts.onNextChanged(r.execution ?? null);
        if (r.execution) this.opts.onExecution(r.execution);
        return;
      }
      case "start-next/accepted":
      case "get/accepted":
      case "update/accepted": {
        const r = parsed as z.output<typeof TokenOnlySchema>;
        this.settleFromTopic(topic, r.clientToken, { ok: true, body: parsed });
        return;
      }
      default: {
        const r = parsed as z.output<typeof RejectedSchema>;
        this.settleFromTopic(topic, r.clientToken, { ok: false, code: r.code, message: r.message ?? "" });
        return;
      }
    }
  }

  private settleFromTopic(
    topic: string,
    token: string | undefined,
    r: Parameters<Pending["resolve"]>[0],
  ): void {
    if (token && this.pending.has(token)) {
      this.settle(token, r);
      return;
    }
    // A response to another client's request, or to one we stopped waiting for: never acted on.
    this.opts.logger.debug("ignoring a response to no pending request", {
      topic,
      clientToken: token ?? null,
    });
  }

  private settle(token: string, r: Parameters<Pending["resolve"]>[0]): void {
    const p = this.pending.get(token);
    if (!p) return; // a response to someone else's request, or one we stopped waiting for
    this.pending.delete(token);
    p.resolve(r);
  }

  /** Publishes a request and waits for its /accepted or /rejected, by clientToken, on the injected clock. */
  private async request(topic: string, body: Record<string, unknown>): Promise<unknown> {
    const c = this.client;
    if (!c?.connected) throw new JobsRequestError("NotConnected", "not connected to the broker");
    const clientToken = `${(this.seq++).toString(36)}-${randomBytes(6).toString("hex")}`;
    const result = new Promise<Parameters<Pending["resolve"]>[0]>((resolve) => {
      this.pending.set(clientToken, { resolve });
    });
    // An I/O timeout on a real timer (like the socket's own); backoff between attempts uses the clock.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ ok: false; code: string; message: string }>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({ ok: false, code: "Timeout", message: `no answer within ${this.requestTimeoutMs} ms` }),
        this.requestTimeoutMs,
      );
    });
    try {
      await c.publishAsync(topic, JSON.stringify({ ...body, clientToken }), { qos: 1 });
      const r = await Promise.race([result, timeout]);
      if (!r.ok)
        throw new JobsRequestError(r.code, `${topic}: ${r.code}${r.message ? ` (${r.message})` : ""}`);
      return r.body;
    } catch (err) {
      if (err instanceof JobsRequestError) throw err;
      throw new JobsRequestError("PublishFailed", `${topic}: ${describeError(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
      this.pending.delete(clientToken);
    }
  }

  async startNext(): Promise<JobExecution | null> {
    const body = await this.request(`${this.prefix}start-next`, {});
    return parseWith(ExecutionResponseSchema, body, "start-next response").execution ?? null;
  }

  /** DescribeJobExecution; null when the execution no longer exists. */
  async describe(jobId: string, executionNumber?: number): Promise<JobExecution | null> {
    try {
      const body = await this.request(`${this.prefix}${jobId}/get`, {
        includeJobDocument: true,
        ...(executionNumber !== undefined ? { executionNumber } : {}),
      });
      return parseWith(ExecutionResponseSchema, body, "describe response").execution ?? null;
    } catch (err) {
      if (err instanceof JobsRequestError && err.code === "ResourceNotFound") return null;
      throw err;
    }
  }

  /**
   * One UpdateJobExecution. "gone" when the service says the execution is terminal, cancelled or deleted
   * (§6.6): the caller must stop working on it (before activation) or stop reporting (after).
   * No expectedVersion (§6.4): a reconnect must not make every later update fail.
   */
  async update(
    jobId: string,
    executionNumber: number,
    status: DeviceStatus,
    statusDetails: Record<string, string>,
  ): Promise<"accepted" | "gone"> {
    try {
      await this.request(`${this.prefix}${jobId}/update`, {
        status,
        statusDetails: trimStatusDetails(statusDetails),
        executionNumber,
      });
      return "accepted";
    } catch (err) {
      if (err instanceof JobsRequestError && GONE_CODES.has(err.code)) return "gone";
      throw err;
    }
  }

  /**
   * A terminal report, retried with capped backoff until the service accepts it or says the execution is
   * gone; yields to shutdown (then the persisted state re-sends it after restart).
   */
  async reportUntilAccepted(
    jobId: string,
    executionNumber: number,
    status: DeviceStatus,
    statusDetails: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<"accepted" | "gone"> {
    const { initialMs, maxMs } = this.opts.reportBackoff ?? { initialMs: 1000, maxMs: 60_000 };
    const stop = signal ? AbortSignal.any([signal, this.stopping.signal]) : this.stopping.signal;
    for (let attempt = 0; ; attempt++) {
      if (stop.aborted) throw new AbortedError("report abandoned: agent stopping");
      try {
        return await this.update(jobId, executionNumber, status, statusDetails);
      } catch (err) {
        if (
          err instanceof JobsRequestError &&
          !RETRYABLE_CODES.has(err.code) &&
          !TRANSPORT_CODES.has(err.code)
        ) {
          // InvalidRequest and the like: the same request can never succeed; say so and stop.
          this.opts.logger.error("terminal report refused", { jobId, status, error: err });
          return "gone";
        }
        const wait = backoffMs(attempt, initialMs, maxMs);
        this.opts.logger.warn("terminal report not accepted yet; retrying", {
          jobId,
          status,
          waitMs: wait,
          error: err,
        });
        await this.opts.clock.sleep(wait, stop);
      }
    }
  }
}

const TRANSPORT_CODES = new Set(["NotConnected", "Timeout", "PublishFailed", "Stopped"]);
