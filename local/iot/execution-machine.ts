/**
 * The job execution state machine (docs/iot-jobs.md) as ONE transition table, like the agent's
 * (device/state-machine.ts): statuses and events are closed unions, one row per line, and every
 * (status, event) pair not listed is refused. The jobs engine asks this table before every change of
 * an execution's status; what follows a change (counters, retries, abort, events, notifications) is the
 * engine's work, not the table's.
 */
import type { ExecutionStatus } from "./model.ts";

export const EXECUTION_EVENTS = [
  "device-in-progress", // the device reports IN_PROGRESS (UpdateJobExecution, or StartNext on a QUEUED head)
  "device-succeeded",
  "device-failed",
  "device-rejected", // the device cannot accept the job; never retried
  "timeout", // the in-progress or step timer ran out
  "cancel", // CancelJob / CancelJobExecution / abortConfig without force: QUEUED only
  "force-cancel", // the same with force: IN_PROGRESS too
  "remove", // the thing left the CONTINUOUS job's targets, or was deleted
] as const;
export type ExecutionEvent = (typeof EXECUTION_EVENTS)[number];

type Row = readonly [from: ExecutionStatus, event: ExecutionEvent, to: ExecutionStatus];
// biome-ignore format: one row per line is the point of this table
export const EXECUTION_TRANSITIONS: ReadonlyArray<Row> = [
  ["QUEUED",      "device-in-progress", "IN_PROGRESS"],
  ["QUEUED",      "device-succeeded",   "SUCCEEDED"],
  ["QUEUED",      "device-failed",      "FAILED"],
  ["QUEUED",      "device-rejected",    "REJECTED"],      // the Device Client rejects straight from QUEUED
  ["QUEUED",      "cancel",             "CANCELED"],
  ["QUEUED",      "force-cancel",       "CANCELED"],
  ["QUEUED",      "remove",             "REMOVED"],
  ["IN_PROGRESS", "device-in-progress", "IN_PROGRESS"],   // progress updates: allowed and repeatable
  ["IN_PROGRESS", "device-succeeded",   "SUCCEEDED"],
  ["IN_PROGRESS", "device-failed",      "FAILED"],
  ["IN_PROGRESS", "device-rejected",    "REJECTED"],
  ["IN_PROGRESS", "timeout",            "TIMED_OUT"],
  ["IN_PROGRESS", "force-cancel",       "CANCELED"],      // the execution is marked forceCanceled
  ["IN_PROGRESS", "remove",             "REMOVED"],
];

const byKey = new Map(EXECUTION_TRANSITIONS.map(([from, event, to]) => [`${from}|${event}`, to]));

/** The status `event` leads to from `from`, or undefined when the table refuses it. */
export function executionTransition(
  from: ExecutionStatus,
  event: ExecutionEvent,
): ExecutionStatus | undefined {
  return byKey.get(`${from}|${event}`);
}

const DEVICE_EVENTS: Partial<Record<ExecutionStatus, ExecutionEvent>> = {
  IN_PROGRESS: "device-in-progress",
  SUCCEEDED: "device-succeeded",
  FAILED: "device-failed",
  REJECTED: "device-rejected",
};

/** The event a device's UpdateJobExecution status stands for; undefined for service-only statuses. */
export function deviceEvent(status: ExecutionStatus): ExecutionEvent | undefined {
  return DEVICE_EVENTS[status];
}
