/**
 * Job and job-execution event payloads as AWS publishes them on `$aws/events/...` (docs/iot-jobs.md).
 * `timestamp` is epoch seconds; [units unconfirmed] the documented examples give `createdAt` /
 * `lastUpdatedAt` / `completedAt` as 13-digit epoch milliseconds, so that is what we publish.
 */
import { randomUUID } from "node:crypto";
import type { IotEvent } from "../contracts.ts";
import type { Execution, Job } from "./model.ts";

export type JobOperation =
  | "completed"
  | "canceled"
  | "deleted"
  | "cancellation_in_progress"
  | "deletion_in_progress";

export function jobEvent(
  job: Job,
  operation: JobOperation,
  nowMs: number,
  processDetails?: object,
): IotEvent {
  const payload: Record<string, unknown> = {
    eventType: "JOB",
    eventId: randomUUID(),
    timestamp: Math.floor(nowMs / 1000),
    operation,
    jobId: job.jobId,
    status: job.status,
    targetSelection: job.targetSelection,
    targets: job.targets,
    description: job.description,
    createdAt: job.createdAt,
    lastUpdatedAt: job.lastUpdatedAt,
  };
  if (operation === "completed") {
    payload.completedAt = job.completedAt;
    payload.jobProcessDetails = processDetails;
  }
  if (operation !== "completed" && job.comment !== undefined) payload.comment = job.comment;
  return { topic: `$aws/events/job/${job.jobId}/${operation}`, payload };
}

export function executionEvent(exec: Execution, thingArn: string, nowMs: number, deleted = false): IotEvent {
  // The operation is the terminal status in lower case (SUCCEEDED → succeeded, TIMED_OUT → timed_out).
  const operation = deleted ? "deleted" : exec.status.toLowerCase();
  return {
    topic: `$aws/events/jobExecution/${exec.jobId}/${operation}`,
    payload: {
      eventType: "JOB_EXECUTION",
      eventId: randomUUID(),
      timestamp: Math.floor(nowMs / 1000),
      operation,
      jobId: exec.jobId,
      thingArn,
      status: exec.status,
      statusDetails: { ...exec.statusDetails },
    },
  };
}
