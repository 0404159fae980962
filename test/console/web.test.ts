/**
 * The web app's pure parts, in Node: the start form's body is one the API accepts, wave states read right
 * (bake countdown included), versions sort newest first, devices' latest outcomes win, and each action's
 * confirmation says what it will do.
 */
import { describe, expect, it } from "vitest";
import { consequences } from "../../cli/console/web/actions.ts";
import { sortVersions } from "../../cli/console/web/charts.ts";
import { describeStart, rolloutBody, type StartInput } from "../../cli/console/web/start.ts";
import { latestOutcomes } from "../../cli/console/web/views/fleets.ts";
import { waveState } from "../../cli/console/web/waves.ts";
import { CreateRolloutBodySchema, type RolloutView } from "../../functions/rollout-api/contract.ts";

const input: StartInput = {
  release: "1.1.0",
  fleet: "demo",
  canary: ["demo-0001"],
  percents: [25, 100],
  bakeSeconds: 60,
  failureThresholdPercent: 10,
  successThresholdPercent: 90,
  force: false,
};

const wave = (over: Partial<RolloutView["waves"][number]> = {}): RolloutView["waves"][number] => ({
  kind: "percent",
  percent: 100,
  bakeSeconds: 60,
  failureThresholdPercent: 10,
  successThresholdPercent: 90,
  jobId: "keel-r1-w1",
  ...over,
});

const rollout = (over: Partial<RolloutView>): RolloutView => ({
  id: "r1",
  release: "1.1.0",
  releaseCounter: 2,
  manifestKey: "m",
  imageKey: "i",
  fleets: ["demo"],
  thingGroups: [],
  waves: [wave()],
  current: 0,
  status: "RUNNING",
  maximumPerMinute: 1000,
  inProgressTimeoutMinutes: 60,
  healthDeadlineSeconds: 300,
  forced: false,
  createdAt: "2026-01-01T00:00:00.000Z",
  createdBy: "me",
  updatedAt: "2026-01-01T00:00:00.000Z",
  timeline: [],
  version: 1,
  devices: [],
  ...over,
});

describe("the start form", () => {
  it("builds a body the API's schema accepts: canary first, bake after every wave but the last", () => {
    const body = rolloutBody(input);
    const parsed = CreateRolloutBodySchema.parse(body);
    expect(parsed.waves).toEqual([
      { canary: ["demo-0001"], bakeSeconds: 60, failureThresholdPercent: 10, successThresholdPercent: 90 },
      { percent: 25, bakeSeconds: 60, failureThresholdPercent: 10, successThresholdPercent: 90 },
      { percent: 100, failureThresholdPercent: 10, successThresholdPercent: 90 },
    ]);
    expect(describeStart(input)).toContain(
      "the canary demo-0001, then 25% of the fleet, then 100% of the fleet",
    );
  });

  it("leaves bad values for the API to refuse by field (the dialog shows its issues)", () => {
    const r = CreateRolloutBodySchema.safeParse(rolloutBody({ ...input, percents: [50] }));
    expect(r.success).toBe(false);
  });
});

describe("waveState", () => {
  const t0 = Date.parse("2026-01-01T00:00:00.000Z");
  it("counts the bake down, and says paused or aborted when the rollout is", () => {
    const baking = rollout({
      waves: [wave({ jobCreatedAt: "x", thresholdMetAt: new Date(t0).toISOString() }), wave()],
    });
    expect(waveState(baking, 0, t0 + 15_000)).toEqual({ kind: "baking", text: "baking: next wave in 0:45" });
    expect(waveState(baking, 0, t0 + 61_000).text).toBe("bake over: next wave at the next check");
    expect(waveState(baking, 1, t0).kind).toBe("pending");
    expect(waveState({ ...baking, status: "PAUSED" }, 0, t0 + 15_000).text).toContain("0:45 of bake left");
    expect(waveState({ ...baking, status: "ABORTED" }, 0, t0).kind).toBe("aborted");
    expect(waveState({ ...baking, status: "ABORTED" }, 1, t0).kind).toBe("never");
    expect(waveState(rollout({ waves: [wave({ completedAt: "x" })] }), 0, t0).kind).toBe("done");
  });
});

describe("fleet helpers", () => {
  it("sorts versions numerically, newest first, unknown last", () => {
    expect(sortVersions(["1.2.0", "unknown", "1.10.0", "1.9.1"])).toEqual([
      "1.10.0",
      "1.9.1",
      "1.2.0",
      "unknown",
    ]);
  });

  it("keeps each device's latest outcome across rollouts", () => {
    const a = rollout({
      devices: [{ thingName: "d1", wave: 1, status: "SUCCEEDED", statusDetails: { slot: "B" }, at: 1 }],
    });
    const b = rollout({
      devices: [{ thingName: "d1", wave: 1, status: "FAILED", statusDetails: { slot: "A" }, at: 2 }],
    });
    expect(latestOutcomes([b, a]).get("d1")).toEqual({ slot: "A", at: 2 });
  });
});

describe("action confirmations", () => {
  it("say what pause, resume and abort will do to this rollout", () => {
    const r = rollout({ waves: [wave({ kind: "canary", things: ["d1"] }), wave()] });
    expect(consequences(r, "pause").join(" ")).toMatch(/no new wave starts.*carry on/);
    expect(consequences(r, "resume").join(" ")).toContain("continues from wave 1 of 2");
    expect(consequences(r, "abort").join(" ")).toMatch(/cannot be undone.*remaining 1 wave/);
  });
});
