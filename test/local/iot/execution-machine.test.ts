/**
 * The job execution transition table on its own. Expected chains are spelled out here, not derived from
 * the table they test.
 */
import { describe, expect, it } from "vitest";
import {
  deviceEvent,
  type ExecutionEvent,
  executionTransition,
} from "../../../local/iot/execution-machine.ts";
import type { ExecutionStatus } from "../../../local/iot/model.ts";

/** Statuses visited from QUEUED by `events`; "refused" where the table refuses (and the walk stops). */
function walk(events: ExecutionEvent[], from: ExecutionStatus = "QUEUED"): string[] {
  const seen: string[] = [];
  let status = from;
  for (const event of events) {
    const to = executionTransition(status, event);
    if (to === undefined) {
      seen.push("refused");
      break;
    }
    seen.push(to);
    status = to;
  }
  return seen;
}

describe("job execution transitions", () => {
  it("a device takes a job, reports progress twice and succeeds", () => {
    expect(
      walk(["device-in-progress", "device-in-progress", "device-in-progress", "device-succeeded"]),
    ).toEqual(["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]);
  });

  it("a device may finish straight from QUEUED (rejected, failed or succeeded)", () => {
    expect(walk(["device-rejected"])).toEqual(["REJECTED"]);
    expect(walk(["device-failed"])).toEqual(["FAILED"]);
    expect(walk(["device-succeeded"])).toEqual(["SUCCEEDED"]);
  });

  it("nothing leaves a terminal status", () => {
    expect(walk(["device-succeeded", "device-in-progress"])).toEqual(["SUCCEEDED", "refused"]);
    expect(walk(["device-failed", "device-succeeded"])).toEqual(["FAILED", "refused"]);
    expect(walk(["device-in-progress", "timeout", "device-succeeded"])).toEqual([
      "IN_PROGRESS",
      "TIMED_OUT",
      "refused",
    ]);
    expect(walk(["cancel", "force-cancel"])).toEqual(["CANCELED", "refused"]);
    expect(walk(["remove", "device-in-progress"])).toEqual(["REMOVED", "refused"]);
    expect(walk(["device-rejected", "remove"])).toEqual(["REJECTED", "refused"]);
  });

  it("cancel without force takes QUEUED only; with force IN_PROGRESS too", () => {
    expect(walk(["cancel"])).toEqual(["CANCELED"]);
    expect(walk(["device-in-progress", "cancel"])).toEqual(["IN_PROGRESS", "refused"]);
    expect(walk(["device-in-progress", "force-cancel"])).toEqual(["IN_PROGRESS", "CANCELED"]);
    expect(walk(["force-cancel"])).toEqual(["CANCELED"]);
  });

  it("timers run only on IN_PROGRESS executions", () => {
    expect(walk(["timeout"])).toEqual(["refused"]);
    expect(walk(["device-in-progress", "timeout"])).toEqual(["IN_PROGRESS", "TIMED_OUT"]);
  });

  it("a thing leaving the targets removes its pending execution, queued or running", () => {
    expect(walk(["remove"])).toEqual(["REMOVED"]);
    expect(walk(["device-in-progress", "remove"])).toEqual(["IN_PROGRESS", "REMOVED"]);
  });

  it("devices may send IN_PROGRESS, SUCCEEDED, FAILED and REJECTED only", () => {
    expect(deviceEvent("IN_PROGRESS")).toBe("device-in-progress");
    expect(deviceEvent("SUCCEEDED")).toBe("device-succeeded");
    expect(deviceEvent("FAILED")).toBe("device-failed");
    expect(deviceEvent("REJECTED")).toBe("device-rejected");
    for (const status of ["QUEUED", "TIMED_OUT", "REMOVED", "CANCELED"] as const) {
      expect(deviceEvent(status)).toBeUndefined();
    }
  });
});
