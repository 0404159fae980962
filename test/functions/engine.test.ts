/** The rollout engine as plain functions over plain data: state + observed counters → next state. */
import { describe, expect, it } from "vitest";
import { SchemaError } from "../../core/errors.ts";
import { bucketOf } from "../../core/waves.ts";
import { ConflictError } from "../../functions/errors.ts";
import {
  abort,
  becameAborted,
  becameStalled,
  claimJob,
  countsFrom,
  deviceTotals,
  effectFailed,
  failureNeedsGate,
  gate,
  isActive,
  isSettling,
  JOB_CLAIM_LEASE_MS,
  jobClaimedByOther,
  jobIdFor,
  MAX_EFFECT_ATTEMPTS,
  markEffectDone,
  nextEffect,
  type Observation,
  parseJobId,
  pause,
  planRollout,
  releaseJobClaim,
  resume,
  settle as settleAborted,
} from "../../functions/rollout/engine.ts";
import type { Rollout, WaveCounts } from "../../functions/rollout/model.ts";
import { lockNames } from "../../functions/rollout/rules.ts";
import { CreateRolloutBodySchema } from "../../functions/rollout-api/contract.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const release = {
  version: "1.2.0",
  releaseCounter: 5,
  manifestKey: "releases/1.2.0/release.json",
  imageKey: "releases/1.2.0/image.squashfs",
};

function plan(body: Record<string, unknown>): Rollout {
  return planRollout({
    id: "r1",
    body: CreateRolloutBodySchema.parse({ release: "1.2.0", ...body }),
    release,
    now: T0,
    by: "tester",
  });
}

const counts = (c: Partial<WaveCounts>): WaveCounts => ({
  queued: 0,
  inProgress: 0,
  succeeded: 0,
  failed: 0,
  rejected: 0,
  canceled: 0,
  timedOut: 0,
  removed: 0,
  ...c,
});
const obs = (c: Partial<WaveCounts>, more: Partial<Observation> = {}): Observation => ({
  jobStatus: "IN_PROGRESS",
  counts: counts(c),
  processing: false,
  ...more,
});

/** Applies every pending effect as if the I/O succeeded. */
function settle(r: Rollout, now: number): Rollout {
  let cur = r;
  for (let e = nextEffect(cur); e; e = nextEffect(cur)) cur = markEffectDone(cur, e, now);
  return cur;
}

const threeWaves = {
  fleets: ["edge"],
  waves: [
    { canary: ["thing-1"], bakeSeconds: 0 },
    { percent: 25, bakeSeconds: 30, failureThresholdPercent: 20 },
    { percent: 100 },
  ],
};

describe("planRollout", () => {
  it("resolves percent waves to the bucket groups each wave adds, and canaries to things", () => {
    const r = plan(threeWaves);
    expect(r.waves.map((w) => w.kind)).toEqual(["canary", "percent", "percent"]);
    expect(r.waves[0]?.things).toEqual(["thing-1"]);
    expect(r.waves[1]?.groups).toEqual(
      Array.from({ length: 25 }, (_, b) => `edge-b${String(b).padStart(2, "0")}`),
    );
    expect(r.waves[2]?.groups?.[0]).toBe("edge-b25");
    expect(r.waves[2]?.groups).toHaveLength(75);
    expect(r.waves.map((w) => w.jobId)).toEqual(["keel-r1-w1", "keel-r1-w2", "keel-r1-w3"]);
    expect(r.waves[1]?.bakeSeconds).toBe(30);
  });

  it("refuses a wave that adds no bucket, naming the wave", () => {
    const err = (() => {
      try {
        plan({ fleets: ["edge"], waves: [{ percent: 25.1 }, { percent: 25.5 }, { percent: 100 }] });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).issues[0]?.path).toBe("waves[1].percent");
  });

  it("refuses a wave that would need more than 100 job targets", () => {
    expect(() => plan({ fleets: ["a", "b"], waves: [{ percent: 100 }] })).toThrow(/at most 100/);
  });

  it("targets named thing groups whole, in the final wave; a percent split of them is refused", () => {
    const r = plan({ thingGroups: ["lab-a", "lab-b"], waves: [{ canary: ["t1"] }, { percent: 100 }] });
    expect(r.waves[1]?.groups).toEqual(["lab-a", "lab-b"]);
    expect(lockNames(r)).toEqual(["group:lab-a", "group:lab-b"]);
    expect(lockNames(plan(threeWaves))).toEqual(["edge"]);
    expect(() => plan({ thingGroups: ["lab-a"], waves: [{ percent: 50 }, { percent: 100 }] })).toThrow(
      /waves\[0\]\.percent: with thingGroups, only canary waves/,
    );
  });

  it("converts bakeMinutes to seconds", () => {
    expect(
      plan({ fleets: ["edge"], waves: [{ percent: 10, bakeMinutes: 2 }, { percent: 100 }] }).waves[0]
        ?.bakeSeconds,
    ).toBe(120);
  });
});

describe("job ids", () => {
  it("are derived from rollout and wave and parse back", () => {
    expect(jobIdFor("r1", 2)).toBe("keel-r1-w3");
    expect(parseJobId("keel-r20260101-ab12-w3")).toEqual({ rolloutId: "r20260101-ab12", waveIndex: 2 });
    expect(parseJobId("someone-elses-job")).toBeNull();
  });
});

describe("gate", () => {
  it("walks three waves: canary, 25% with bake, 100%, then succeeds", () => {
    let r = plan(threeWaves);
    expect(nextEffect(r)).toEqual({ kind: "create-job", waveIndex: 0 });
    r = settle(r, T0);
    expect(gate(r, obs({ queued: 1 }), T0 + 1000)?.status).toBe("RUNNING"); // counts recorded
    r = gate(r, obs({ queued: 1 }), T0 + 1000) ?? r;
    expect(gate(r, obs({ queued: 1 }), T0 + 2000)).toBeNull(); // nothing new: no write
    // Canary succeeds, bake 0: wave 2 starts at once and asks for its job.
    r = gate(r, obs({ succeeded: 1 }), T0 + 3000) ?? r;
    expect(r.current).toBe(1);
    expect(nextEffect(r)).toEqual({ kind: "create-job", waveIndex: 1 });
    r = settle(r, T0 + 3000);
    // 9 of 10 succeeded = 90 % ≥ 90 %: baking starts; not over after 10 s of a 30 s bake.
    r = gate(r, obs({ succeeded: 9, inProgress: 1 }), T0 + 4000) ?? r;
    expect(r.waves[1]?.thresholdMetAt).toBe(new Date(T0 + 4000).toISOString());
    expect(gate(r, obs({ succeeded: 9, inProgress: 1 }), T0 + 14_000)).toBeNull();
    r = gate(r, obs({ succeeded: 10 }), T0 + 34_000) ?? r;
    expect(r.current).toBe(2);
    r = settle(r, T0 + 34_000);
    r = gate(r, obs({ succeeded: 30 }), T0 + 40_000) ?? r;
    expect(r.status).toBe("SUCCEEDED");
    expect(nextEffect(r)).toEqual({ kind: "release-locks" });
    r = settle(r, T0 + 40_000);
    expect(nextEffect(r)).toBeNull();
    expect(r.timeline.map((t) => t.event)).toEqual([
      "created",
      "job-created",
      "wave-succeeded",
      "wave-started",
      "job-created",
      "wave-succeeded",
      "wave-started",
      "job-created",
      "wave-succeeded",
      "succeeded",
    ]);
  });

  it("aborts when failures pass the wave's threshold, even while baking, and asks to cancel the job", () => {
    let r = settle(
      plan({
        fleets: ["edge"],
        waves: [{ percent: 50, failureThresholdPercent: 20, bakeSeconds: 60 }, { percent: 100 }],
      }),
      T0,
    );
    r = gate(r, obs({ succeeded: 9, failed: 1 }), T0 + 1000) ?? r; // 10 % failures: under 20 %
    expect(r.status).toBe("RUNNING");
    expect(r.waves[0]?.thresholdMetAt).toBeDefined();
    r = gate(r, obs({ succeeded: 7, failed: 2, timedOut: 1 }), T0 + 2000) ?? r; // 30 % > 20 %
    expect(r.status).toBe("ABORTED");
    expect(r.reason).toMatch(/wave 1: 3 of 10 device\(s\) failed \(30% > threshold 20%\)/);
    expect(nextEffect(r)).toEqual({ kind: "cancel-job", waveIndex: 0 });
    r = settle(r, T0 + 2000);
    expect(r.cancelDone).toBe(true);
    expect(r.locksReleased).toBe(true);
  });

  it("aborts without a cancel when IoT already canceled the job (native abortConfig)", () => {
    let r = settle(plan({ fleets: ["edge"], waves: [{ percent: 100 }] }), T0);
    r =
      gate(
        r,
        obs({ failed: 3, canceled: 7 }, { jobStatus: "CANCELED", reasonCode: "FAILURE_THRESHOLD" }),
        T0 + 1,
      ) ?? r;
    expect(r.status).toBe("ABORTED");
    expect(r.reason).toContain("FAILURE_THRESHOLD");
    expect(nextEffect(r)).toEqual({ kind: "release-locks" });
  });

  it("waits for targets still being resolved before counting a wave as successful", () => {
    const r = settle(plan({ fleets: ["edge"], waves: [{ percent: 100 }] }), T0);
    const g = gate(r, obs({ succeeded: 1 }, { processing: true }), T0 + 1);
    expect(g?.waves[0]?.thresholdMetAt).toBeUndefined();
  });

  it("passes an empty wave (bucket groups nobody joined yet) once its targets are resolved", () => {
    const r = settle(plan({ fleets: ["edge"], waves: [{ percent: 1 }, { percent: 100 }] }), T0);
    expect(gate(r, obs({}), T0 + 1)?.current).toBe(1);
  });

  it("records counts and aborts while paused, but never advances", () => {
    let r = settle(plan({ fleets: ["edge"], waves: [{ percent: 50 }, { percent: 100 }] }), T0);
    r = pause(r, T0 + 1, "op");
    r = gate(r, obs({ succeeded: 10 }), T0 + 2) ?? r;
    expect(r.current).toBe(0);
    expect(r.waves[0]?.counts?.succeeded).toBe(10);
    r = gate(r, obs({ succeeded: 5, failed: 5 }), T0 + 3) ?? r;
    expect(r.status).toBe("ABORTED");
  });
});

describe("pause, resume, abort", () => {
  it("apply only where they make sense (else ConflictError → 409)", () => {
    const r = settle(plan({ fleets: ["edge"], waves: [{ percent: 100 }] }), T0);
    expect(() => resume(r, T0, "op")).toThrow(ConflictError);
    const p = pause(r, T0, "op");
    expect(() => pause(p, T0, "op")).toThrow(ConflictError);
    expect(resume(p, T0, "op").status).toBe("RUNNING");
    const a = abort(p, T0, "op", "bad build");
    expect(a.reason).toBe("aborted by op: bad build");
    expect(() => abort(a, T0, "op")).toThrow(ConflictError);
    expect(a.timeline.at(-1)).toMatchObject({ event: "aborted", by: "op" });
  });

  it("a paused rollout does not create its next job until resumed", () => {
    let r = settle(plan({ fleets: ["edge"], waves: [{ percent: 50 }, { percent: 100 }] }), T0);
    r = gate(r, obs({ succeeded: 4 }), T0 + 1) ?? r;
    expect(r.current).toBe(1);
    r = pause(r, T0 + 2, "op");
    expect(nextEffect(r)).toBeNull();
    expect(nextEffect(resume(r, T0 + 3, "op"))).toEqual({ kind: "create-job", waveIndex: 1 });
  });
});

describe("countsFrom", () => {
  it("reads DescribeJob's jobProcessDetails, treating absent counters as 0", () => {
    expect(countsFrom({ numberOfSucceededThings: 3, numberOfFailedThings: 1 })).toEqual(
      counts({ succeeded: 3, failed: 1 }),
    );
    expect(countsFrom(undefined)).toEqual(counts({}));
  });
});

describe("bucketOf", () => {
  it("is stable (sanity check the engine relies on)", () => {
    expect(bucketOf("thing-1")).toBe(bucketOf("thing-1"));
  });
});

describe("claiming a wave's job", () => {
  it("keeps other invocations away while the claim is live, and lets them in after it lapses or is given back", () => {
    const r = plan({ fleets: ["edge"], waves: [{ percent: 100 }] });
    expect(nextEffect(r)).toEqual({ kind: "create-job", waveIndex: 0 });
    const claimed = claimJob(r, 0, "inv-a", T0);
    expect(jobClaimedByOther(claimed, 0, "inv-a", T0 + 1)).toBe(false); // its own claim
    expect(jobClaimedByOther(claimed, 0, "inv-b", T0 + 1)).toBe(true);
    expect(jobClaimedByOther(claimed, 0, "inv-b", T0 + JOB_CLAIM_LEASE_MS)).toBe(false); // lapsed
    expect(jobClaimedByOther(releaseJobClaim(claimed, 0, T0 + 1), 0, "inv-b", T0 + 1)).toBe(false);
    // The claim is not the job: the create-job effect stays pending until it is marked done.
    expect(nextEffect(claimed)).toEqual({ kind: "create-job", waveIndex: 0 });
  });
});

describe("failureNeedsGate", () => {
  const started = (c?: Partial<WaveCounts>) => {
    const r = settle(plan({ fleets: ["edge"], waves: [{ percent: 100, failureThresholdPercent: 20 }] }), T0);
    return c ? (gate(r, obs(c, { processing: true }), T0 + 1) ?? r) : r;
  };

  it("runs the gate for the wave's first failure while its size is unknown", () => {
    expect(failureNeedsGate(started(), 0, 1)).toBe(true);
    expect(failureNeedsGate(started(), 0, 2)).toBe(false);
  });

  it("runs the gate once, for the failure that passes the threshold against the size last read", () => {
    const r = started({ queued: 8, succeeded: 2 }); // 10 devices, threshold 20 %
    expect([1, 2, 3, 4, 5].map((n) => failureNeedsGate(r, 0, n))).toEqual([false, false, true, false, false]);
  });

  it("never for an earlier wave or a finished rollout", () => {
    const r = started({ queued: 10 });
    expect(failureNeedsGate(r, 1, 10)).toBe(false);
    expect(failureNeedsGate(abort(r, T0 + 2, "op"), 0, 10)).toBe(false);
  });
});

describe("becameAborted", () => {
  it("is true only for the write that moves a rollout into ABORTED", () => {
    const r = settle(plan({ fleets: ["edge"], waves: [{ percent: 100 }] }), T0);
    const a = abort(r, T0 + 1, "op");
    expect(becameAborted(r, a)).toBe(true);
    expect(becameAborted(a, settle(a, T0 + 2))).toBe(false);
    expect(becameAborted(r, pause(r, T0 + 1, "op"))).toBe(false);
  });
});

describe("an aborted wave's counts", () => {
  // Wave 1's job exists and has two devices installing when the operator aborts.
  const aborted = () => {
    const r = settle(plan({ fleets: ["edge"], waves: [{ percent: 100 }] }), T0);
    const running = gate(r, obs({ inProgress: 2 }), T0 + 1) ?? r;
    return settle(abort(running, T0 + 2, "op"), T0 + 2);
  };

  it("keep being read after the abort until nothing is queued or in progress", () => {
    let r = aborted();
    expect(r.waves[0]?.counts).toEqual(counts({ inProgress: 2 }));
    expect(isSettling(r)).toBe(true);
    expect(isActive(r)).toBe(true);
    expect(settleAborted(r, obs({ inProgress: 2 }), T0 + 3)).toBeNull(); // nothing new: no write
    r = settleAborted(r, obs({ inProgress: 1, failed: 1 }), T0 + 4) ?? r;
    expect(r.waves[0]?.counts).toEqual(counts({ inProgress: 1, failed: 1 }));
    expect(r.settled).toBeUndefined();
    r = settleAborted(r, obs({ failed: 2 }), T0 + 5) ?? r;
    expect(r.waves[0]?.counts).toEqual(counts({ failed: 2 }));
    expect(r.status).toBe("ABORTED");
    expect(r.settled).toBe(true);
    expect(isActive(r)).toBe(false);
  });

  it("stop being read once the in-progress timeout has passed since the abort", () => {
    const r = aborted();
    const timeout = r.inProgressTimeoutMinutes * 60_000;
    expect(settleAborted(r, obs({ inProgress: 2 }), T0 + 2 + timeout)).toBeNull();
    expect(settleAborted(r, obs({ inProgress: 2 }), T0 + 2 + timeout + 60_000)?.settled).toBe(true);
  });

  it("are not read for an abort before the wave's job existed", () => {
    const r = abort(plan({ fleets: ["edge"], waves: [{ percent: 100 }] }), T0, "op");
    expect(isSettling(r)).toBe(false);
  });
});

describe("deviceTotals", () => {
  it("counts each device once, by its latest outcome", () => {
    const o = (thingName: string, wave: number, status: string, rolledBack?: boolean) => ({
      thingName,
      wave,
      status,
      at: wave,
      ...(rolledBack ? { statusDetails: { rolledBack: "true" } } : {}),
    });
    expect(
      deviceTotals([
        o("canary", 2, "SUCCEEDED"),
        o("a", 2, "FAILED", true),
        o("b", 2, "REJECTED"),
        o("c", 2, "IN_PROGRESS"),
        o("canary", 2, "SUCCEEDED"),
      ]),
    ).toEqual({ devices: 4, succeeded: 1, failed: 2, rolledBack: 1, other: 1 });
  });
});

describe("a failing effect", () => {
  const create = { kind: "create-job", waveIndex: 0 } as const;
  const cancel = { kind: "cancel-job", waveIndex: 0 } as const;

  it("counts attempts, and a RUNNING rollout is STALLED once they are used up", () => {
    let r = plan(threeWaves);
    for (let i = 1; i < MAX_EFFECT_ATTEMPTS; i++) {
      r = effectFailed(r, create, "throttled", false, T0 + i);
      expect(r.status).toBe("RUNNING");
      expect(r.effectFailure).toMatchObject({ attempts: i, stalled: false, firstAt: iso(T0 + 1) });
    }
    const before = r;
    r = effectFailed(r, create, "throttled", false, T0 + 99);
    expect(r.status).toBe("STALLED");
    expect(r.reason).toBe(`wave 1: create-job failed ${MAX_EFFECT_ATTEMPTS} time(s): throttled`);
    expect(becameStalled(before, r)).toBe(true);
    expect(nextEffect(r)).toBeNull();
    expect(isActive(r)).toBe(true);
  });

  it("stalls at once on an error no retry fixes", () => {
    const r = effectFailed(plan(threeWaves), create, "AwsLimitError: …", true, T0);
    expect(r.status).toBe("STALLED");
    expect(r.reason).toBe("wave 1: create-job failed 1 time(s) (not retryable): AwsLimitError: …");
  });

  it("an ABORTED rollout's failing cancel is shown as stalled but stays ABORTED and keeps being retried", () => {
    let r = abort(plan(threeWaves), T0, "op", "stop");
    for (let i = 0; i < MAX_EFFECT_ATTEMPTS; i++) r = effectFailed(r, cancel, "down", false, T0);
    expect(r.status).toBe("ABORTED");
    expect(r.effectFailure).toMatchObject({
      effect: "cancel-job",
      attempts: MAX_EFFECT_ATTEMPTS,
      stalled: true,
    });
    expect(nextEffect(r)).toEqual(cancel);
  });

  it("a success clears the failure; a failure of another effect starts its own count", () => {
    const r = effectFailed(plan(threeWaves), create, "x", false, T0);
    expect(markEffectDone(r, create, T0).effectFailure).toBeUndefined();
    expect(effectFailed(r, cancel, "y", false, T0).effectFailure).toMatchObject({
      effect: "cancel-job",
      attempts: 1,
    });
  });

  it("resume takes a STALLED rollout back to RUNNING with fresh attempts; pause does not apply", () => {
    const stalled = effectFailed(plan(threeWaves), create, "x", true, T0);
    expect(() => pause(stalled, T0, "op")).toThrow(ConflictError);
    const r = resume(stalled, T0 + 1, "op");
    expect(r.status).toBe("RUNNING");
    expect(r.effectFailure).toBeUndefined();
    expect(r.reason).toBeUndefined();
    expect(nextEffect(r)).toEqual(create);
  });
});
