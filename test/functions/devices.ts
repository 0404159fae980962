/**
 * Simulated devices for rollout tests: plain MQTT.js clients over mutual TLS that speak the real Jobs
 * topics — start-next on connect, then one UpdateJobExecution per execution with the outcome the test
 * chose for that thing (SUCCEEDED, FAILED with rolledBack, or REJECTED).
 */
import mqtt, { type MqttClient } from "mqtt";
import { z } from "zod";

/** SILENT: takes the execution and never answers; STARTED: reports IN_PROGRESS, then waits (finishOpen). */
export type Outcome = "SUCCEEDED" | "FAILED" | "REJECTED" | "SILENT" | "STARTED";

type Final = Exclude<Outcome, "SILENT" | "STARTED">;

const ExecutionMsg = z.object({
  execution: z
    .object({
      jobId: z.string(),
      executionNumber: z.number().optional(),
      jobDocument: z.record(z.string(), z.unknown()),
    })
    .optional(),
});

export interface Credentials {
  thingName: string;
  certificatePem: string;
  privateKey: string;
}

export class SimDevice {
  private client: MqttClient | undefined;
  readonly handled: string[] = [];
  readonly documents: Array<Record<string, unknown>> = [];

  constructor(
    readonly creds: Credentials,
    private readonly brokerUrl: string,
    private readonly caPem: string,
    public outcome: Outcome,
  ) {}

  async connect(): Promise<void> {
    const t = this.creds.thingName;
    const client = mqtt.connect(this.brokerUrl, {
      clientId: t,
      cert: this.creds.certificatePem,
      key: this.creds.privateKey,
      ca: this.caPem,
      rejectUnauthorized: true,
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    this.client = client;
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    const base = `$aws/things/${t}/jobs`;
    client.on("message", (topic, payload) => {
      if (topic !== `${base}/notify-next` && topic !== `${base}/start-next/accepted`) return;
      const msg = ExecutionMsg.safeParse(JSON.parse(payload.toString("utf8")));
      const ex = msg.success ? msg.data.execution : undefined;
      if (!ex) return;
      const key = `${ex.jobId}#${ex.executionNumber ?? 1}`;
      // Duplicate deliveries of one execution (notify-next and start-next) are answered once.
      if (this.handled.includes(key)) return;
      this.handled.push(key);
      this.documents.push(ex.jobDocument);
      if (this.outcome === "SILENT" || this.outcome === "STARTED") {
        this.open.push({ jobId: ex.jobId, version: String(ex.jobDocument.version) });
        if (this.outcome === "STARTED") {
          client.publish(`${base}/${ex.jobId}/update`, JSON.stringify({ status: "IN_PROGRESS" }), { qos: 1 });
        }
        return;
      }
      this.answer(ex.jobId, this.outcome, String(ex.jobDocument.version));
    });
    await client.subscribeAsync(
      [`${base}/notify-next`, `${base}/start-next/accepted`, `${base}/+/update/+`],
      { qos: 1 },
    );
    await client.publishAsync(`${base}/start-next`, JSON.stringify({}), { qos: 1 });
  }

  private answer(jobId: string, outcome: Final, version: string): void {
    const base = `$aws/things/${this.creds.thingName}/jobs`;
    const statusDetails =
      outcome === "FAILED" ? { reason: "health check failed", rolledBack: "true" } : { version };
    this.client?.publish(
      `${base}/${jobId}/update`,
      JSON.stringify({ status: outcome, statusDetails }),
      { qos: 1 },
      () => {
        // Ask for the next one, as an agent does after finishing an execution.
        this.client?.publish(`${base}/start-next`, JSON.stringify({}), { qos: 1 });
      },
    );
  }

  /** Executions a SILENT or STARTED device took and has not answered yet. */
  readonly open: Array<{ jobId: string; version: string }> = [];

  /** Answers every open execution now with `outcome` (a device that finishes late, e.g. after an abort). */
  finishOpen(outcome: Final): void {
    for (const ex of this.open.splice(0)) this.answer(ex.jobId, outcome, ex.version);
  }

  async stop(): Promise<void> {
    await this.client?.endAsync(true);
  }
}
