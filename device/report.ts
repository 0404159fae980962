/**
 * The terminal report: the IoT Jobs status and statusDetails for a job that ended in a terminal state
 * (docs/iot-jobs.md). Pure, so each outcome's report is tested on its own; sending it is the agent's.
 */
import type { Slot } from "./boot/types.ts";
import { transferDetails } from "./install/delta.ts";
import type { DeviceStatus } from "./jobs-client.ts";
import type { State } from "./state-machine.ts";
import type { CurrentJob } from "./state-store.ts";

export interface TerminalReport {
  status: DeviceStatus;
  details: Record<string, string>;
}

/** The report for `state`, or null when there is nobody to tell (Cancelled: the job is gone). */
export function terminalReport(state: State, job: CurrentJob, booted: Slot): TerminalReport | null {
  const toVersion = job.release?.version ?? job.parsed?.version ?? "";
  const fromVersion = job.fromVersion ?? "unknown";
  switch (state) {
    case "Committed":
      return {
        status: "SUCCEEDED",
        details: {
          phase: "committed",
          version: toVersion,
          fromVersion,
          slot: job.target,
          // The node already ran this release (committed): nothing was downloaded or written.
          ...(fromVersion === toVersion ? { alreadyRunning: "true", bytesFetched: "0" } : {}),
          ...transferDetails(job.transfer), // delta updates: bytes fetched vs image size (docs/delta.md)
        },
      };
    case "RolledBack":
      return {
        status: "FAILED",
        details: {
          rolledBack: "true",
          reason: job.reason ?? "rolled back",
          fromVersion,
          toVersion,
          slot: booted,
        },
      };
    case "Rejected":
      return {
        status: "REJECTED",
        details: { reason: job.reason ?? "rejected", ...(toVersion ? { toVersion } : {}) },
      };
    case "Failed": {
      // A drain timeout is reported as reason `drain-timeout` with the pods that blocked it beside it.
      const drain = /^drain-timeout: (.*)$/s.exec(job.reason ?? "");
      return {
        status: "FAILED",
        details: {
          rolledBack: "false",
          reason: drain ? "drain-timeout" : (job.reason ?? "failed"),
          ...(drain?.[1] ? { blockingPods: drain[1].slice(0, 1000) } : {}),
          fromVersion,
          ...(toVersion ? { toVersion } : {}),
        },
      };
    }
    default:
      return null;
  }
}
