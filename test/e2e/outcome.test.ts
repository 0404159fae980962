/**
 * The demo's verdict (`npm start` exits 0 only on the promised outcome): checkOutcome over the API's view
 * accepts exactly that outcome and names every way a run can differ from it.
 */
import { describe, expect, it } from "vitest";
import { checkOutcome, type LastRun, type RolloutReport } from "../../local/demo.ts";

const wave = (n: number, jobCreated: boolean) => ({
  wave: n,
  target: n === 1 ? "canary demo-0001" : `${n === 2 ? 25 : 100}%`,
  jobId: `keel-r1-w${n}`,
  jobCreated,
  counts: null,
  startedAt: null,
  completedAt: null,
});

function rollout(p: Partial<RolloutReport>): RolloutReport {
  return {
    id: "r1",
    release: "1.1.0",
    status: "SUCCEEDED",
    reason: null,
    succeeded: 3,
    failed: 0,
    rolledBack: 0,
    devicesReporting: ["demo-0001", "demo-0002", "demo-0003"],
    waves: [wave(1, true), wave(2, true), wave(3, true)],
    timeline: [],
    ...p,
  };
}

const promised = (): Pick<LastRun, "devices" | "rollouts" | "fleet"> => ({
  devices: 3,
  rollouts: [
    rollout({}),
    rollout({
      id: "r2",
      release: "1.2.0",
      status: "ABORTED",
      succeeded: 0,
      failed: 1,
      rolledBack: 1,
      devicesReporting: ["demo-0001"],
      waves: [wave(1, true), wave(2, false), wave(3, false)],
    }),
  ],
  fleet: { "1.1.0": 3 },
});

describe("checkOutcome", () => {
  it("accepts the promised outcome", () => {
    expect(checkOutcome(promised(), "demo-0001")).toEqual([]);
  });

  it.each([
    [
      "1.1.0 not SUCCEEDED",
      (r: ReturnType<typeof promised>) => {
        (r.rollouts[0] as RolloutReport).status = "ABORTED";
      },
      /1\.1\.0 is ABORTED, not SUCCEEDED/,
    ],
    [
      "a device missed 1.1.0",
      (r: ReturnType<typeof promised>) => {
        (r.rollouts[0] as RolloutReport).succeeded = 2;
      },
      /2 of 3 device\(s\) succeeded/,
    ],
    [
      "1.2.0 not aborted",
      (r: ReturnType<typeof promised>) => {
        (r.rollouts[1] as RolloutReport).status = "SUCCEEDED";
      },
      /1\.2\.0 is SUCCEEDED, not ABORTED/,
    ],
    [
      "the canary did not roll back",
      (r: ReturnType<typeof promised>) => {
        (r.rollouts[1] as RolloutReport).rolledBack = 0;
      },
      /expected the canary alone/,
    ],
    [
      "1.2.0 reached another node",
      (r: ReturnType<typeof promised>) => {
        (r.rollouts[1] as RolloutReport).devicesReporting = ["demo-0001", "demo-0002"];
      },
      /reached more than the canary: demo-0002/,
    ],
    [
      "1.2.0 started wave 2",
      (r: ReturnType<typeof promised>) => {
        (r.rollouts[1] as RolloutReport).waves[1] = wave(2, true);
      },
      /started wave\(s\) 2 after the canary/,
    ],
    [
      "the fleet is mixed",
      (r: ReturnType<typeof promised>) => {
        r.fleet = { "1.1.0": 2, "1.2.0": 1 };
      },
      /runs 1\.1\.0 ×2, 1\.2\.0 ×1, not 1\.1\.0 ×3/,
    ],
  ])("refuses a run where %s", (_name, mutate, message) => {
    const run = promised();
    mutate(run);
    const problems = checkOutcome(run, "demo-0001");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });
});
