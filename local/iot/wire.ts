/**
 * What the stand-in publishes to devices over MQTT (docs/iot-jobs.md): summaries, execution states,
 * `notify` / `notify-next`, execution responses, GetPending answers and `/rejected` bodies. Timestamps are
 * epoch seconds; a job document is rendered at send time, so its presigned URLs are fresh on every
 * delivery.
 */
import type { Clock } from "../contracts.ts";
import type { ExecutionStateWire, JobsRejection } from "./errors.ts";
import type { Execution, Job, PresignedUrlConfig } from "./model.ts";
import { DEFAULT_PRESIGN_EXPIRY_SEC, type Presigner } from "./presign.ts";

/** One MQTT message the service publishes; rendered just before sending (presigned URLs are fresh). */
export interface Outgoing {
  topic: string;
  render: () => Promise<Record<string, unknown>>;
}

/** AWS lists at most 10 pending executions in GetPending answers and notify messages. */
export const MAX_PENDING_LISTED = 10;

export const sec = (ms: number): number => Math.floor(ms / 1000);
export const thingsTopic = (thing: string): string => `$aws/things/${thing}/jobs`;

export function summary(e: Execution): Record<string, unknown> {
  return {
    jobId: e.jobId,
    queuedAt: sec(e.queuedAt),
    ...(e.startedAt === undefined ? {} : { startedAt: sec(e.startedAt) }),
    lastUpdatedAt: sec(e.lastUpdatedAt),
    versionNumber: e.versionNumber,
    executionNumber: e.executionNumber,
  };
}

export function executionState(e: Execution): ExecutionStateWire {
  return { status: e.status, statusDetails: { ...e.statusDetails }, versionNumber: e.versionNumber };
}

export class JobsWire {
  constructor(
    private readonly clock: Clock,
    private readonly presign: Presigner,
    private readonly job: (jobId: string) => Job,
  ) {}

  /** `.../get/accepted`: both lists present, at most 10 entries. */
  pendingList(thing: string, pending: readonly Execution[], clientToken: string | undefined): Outgoing {
    const listed = pending.slice(0, MAX_PENDING_LISTED);
    const payload = {
      inProgressJobs: listed.filter((e) => e.status === "IN_PROGRESS").map(summary),
      queuedJobs: listed.filter((e) => e.status === "QUEUED").map(summary),
      timestamp: sec(this.clock.now()),
      clientToken,
    };
    return { topic: `${thingsTopic(thing)}/get/accepted`, render: async () => payload };
  }

  notify(thing: string, pending: readonly Execution[]): Outgoing {
    const listed = pending.slice(0, MAX_PENDING_LISTED);
    const jobs: Record<string, unknown> = {};
    const inProgress = listed.filter((e) => e.status === "IN_PROGRESS").map(summary);
    const queued = listed.filter((e) => e.status === "QUEUED").map(summary);
    // Empty lists are left out, so an empty queue gives "jobs": {}.
    if (inProgress.length) jobs.IN_PROGRESS = inProgress;
    if (queued.length) jobs.QUEUED = queued;
    const payload = { timestamp: sec(this.clock.now()), jobs };
    return { topic: `${thingsTopic(thing)}/notify`, render: async () => payload };
  }

  notifyNext(thing: string, head: Execution | undefined): Outgoing {
    return this.executionResponse(`${thingsTopic(thing)}/notify-next`, head, true, undefined);
  }

  /** `{execution?, timestamp, clientToken?}` with the execution captured now and its document presigned at send time. */
  executionResponse(
    topic: string,
    e: Execution | undefined,
    includeDocument: boolean,
    clientToken: string | undefined,
  ): Outgoing {
    if (!e) {
      return { topic, render: async () => ({ timestamp: sec(this.clock.now()), clientToken }) };
    }
    const job = this.job(e.jobId);
    const snap = { ...e, statusDetails: { ...e.statusDetails } };
    const doc = job.document;
    const presign = job.presignedUrlConfig;
    return {
      topic,
      render: async () => ({
        execution: {
          jobId: snap.jobId,
          thingName: snap.thingName,
          ...(includeDocument ? { jobDocument: await this.renderDocument(doc, presign) } : {}),
          status: snap.status,
          statusDetails: snap.statusDetails,
          queuedAt: sec(snap.queuedAt),
          ...(snap.startedAt === undefined ? {} : { startedAt: sec(snap.startedAt) }),
          lastUpdatedAt: sec(snap.lastUpdatedAt),
          versionNumber: snap.versionNumber,
          executionNumber: snap.executionNumber,
        },
        timestamp: sec(this.clock.now()),
        clientToken,
      }),
    };
  }

  /** `.../update/accepted`: executionState and jobDocument only when asked for. */
  updateAccepted(
    topic: string,
    r: { state: ExecutionStateWire; document: string; presign: PresignedUrlConfig | undefined },
    ask: { includeJobExecutionState?: boolean; includeJobDocument?: boolean; clientToken?: string },
  ): Outgoing {
    return {
      topic,
      render: async () => ({
        ...(ask.includeJobExecutionState ? { executionState: r.state } : {}),
        ...(ask.includeJobDocument ? { jobDocument: await this.renderDocument(r.document, r.presign) } : {}),
        timestamp: sec(this.clock.now()),
        clientToken: ask.clientToken,
      }),
    };
  }

  /** The `/rejected` message for a refused request. */
  rejected(requestTopic: string, r: JobsRejection, clientToken: string | undefined): Outgoing {
    const payload = {
      code: r.code,
      message: r.message,
      clientToken,
      timestamp: sec(this.clock.now()),
      ...(r.executionState ? { executionState: r.executionState } : {}),
    };
    return { topic: `${requestTopic}/rejected`, render: async () => payload };
  }

  /** The document as a device sees it: placeholders replaced by fresh presigned URLs when configured. */
  private async renderDocument(doc: string, presign: PresignedUrlConfig | undefined): Promise<unknown> {
    const text = presign ? await this.presign(doc, presign.expiresInSec ?? DEFAULT_PRESIGN_EXPIRY_SEC) : doc;
    return JSON.parse(text);
  }
}
