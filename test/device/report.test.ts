/** The terminal report of each outcome, spelled out: the status and statusDetails IoT Jobs receives. */
import { describe, expect, it } from "vitest";
import { terminalReport } from "../../device/report.ts";
import type { CurrentJob } from "../../device/state-store.ts";

function job(over: Partial<CurrentJob> = {}): CurrentJob {
  return {
    key: { jobId: "j1", executionNumber: 1 },
    document: {},
    parsed: null,
    standalone: null,
    release: null,
    from: "A",
    target: "B",
    fromVersion: "1.0.0",
    offset: 0,
    reason: null,
    armed: false,
    ...over,
  };
}

const release = {
  version: "2.0.0",
  releaseCounter: 5,
} as unknown as NonNullable<CurrentJob["release"]>;

describe("terminal report", () => {
  it("SUCCEEDED with the committed slot and both versions", () => {
    expect(terminalReport("Committed", job({ release }), "B")).toEqual({
      status: "SUCCEEDED",
      details: { phase: "committed", version: "2.0.0", fromVersion: "1.0.0", slot: "B" },
    });
  });

  it("FAILED with rolledBack=true, the reason and the slot running now", () => {
    expect(terminalReport("RolledBack", job({ release, reason: "health check failed" }), "A")).toEqual({
      status: "FAILED",
      details: {
        rolledBack: "true",
        reason: "health check failed",
        fromVersion: "1.0.0",
        toVersion: "2.0.0",
        slot: "A",
      },
    });
  });

  it("REJECTED with the reason; no toVersion when the document never parsed", () => {
    expect(terminalReport("Rejected", job({ reason: "bad document" }), "A")).toEqual({
      status: "REJECTED",
      details: { reason: "bad document" },
    });
  });

  it("FAILED with rolledBack=false before activation; unknown fromVersion on a node without a baseline", () => {
    expect(terminalReport("Failed", job({ release, fromVersion: null, reason: "HTTP 500" }), "A")).toEqual({
      status: "FAILED",
      details: { rolledBack: "false", reason: "HTTP 500", fromVersion: "unknown", toVersion: "2.0.0" },
    });
  });

  it("nothing for a cancelled job (it is gone) or a state that is not terminal", () => {
    expect(terminalReport("Cancelled", job(), "A")).toBeNull();
    expect(terminalReport("Downloading", job(), "A")).toBeNull();
  });
});
