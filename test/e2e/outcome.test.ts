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

type Run = Pick<LastRun, "devices" | "rollouts" | "fleet">;

const promised = (): Run => ({
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

/** A change to rollout i of the run (0 is the 1.1.0 rollout, 1 the aborted 1.2.0 one). */
const patch = (i: number, p: Partial<RolloutReport>) => (r: Run) => {
  Object.assign(r.rollouts[i] as RolloutReport, p);
};

describe("checkOutcome", () => {
  it("accepts the promised outcome", () => {
    expect(checkOutcome(promised(), "demo-0001")).toEqual([]);
  });

  it.each([
    ["1.1.0 not SUCCEEDED", patch(0, { status: "ABORTED" }), /1\.1\.0 is ABORTED, not SUCCEEDED/],
    ["a device missed 1.1.0", patch(0, { succeeded: 2 }), /2 of 3 device\(s\) succeeded/],
    ["1.2.0 not aborted", patch(1, { status: "SUCCEEDED" }), /1\.2\.0 is SUCCEEDED, not ABORTED/],
    ["the canary did not roll back", patch(1, { rolledBack: 0 }), /expected the canary alone/],
    [
      "1.2.0 reached another node",
      patch(1, { devicesReporting: ["demo-0001", "demo-0002"] }),
      /reached more than the canary: demo-0002/,
    ],
    [
      "1.2.0 started wave 2",
      patch(1, { waves: [wave(1, true), wave(2, true), wave(3, false)] }),
      /started wave\(s\) 2 after the canary/,
    ],
    [
      "the fleet is mixed",
      (r: Run) => {
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
