/** The convergence decisions as pure functions (functions/rollout/convergence.ts): one step at a time. */
import { describe, expect, it } from "vitest";
import { JobDocumentSchema } from "../../core/job-document.ts";
import {
  afterStep,
  convergenceJobId,
  type FleetTarget,
  fleetBucketGroups,
  isConvergenceJobId,
  nextConvergenceStep,
} from "../../functions/rollout/convergence.ts";
import { parseJobId } from "../../functions/rollout/engine.ts";

const base: FleetTarget = {
  fleet: "edge",
  release: "1.2.0",
  releaseCounter: 3,
  manifestKey: "releases/1.2.0/release.json",
  imageKey: "releases/1.2.0/image.squashfs",
  healthDeadlineSeconds: 300,
  setAt: "2026-01-01T00:00:00.000Z",
  setBy: "rollout r1",
  convergence: { generation: 0 },
  version: 1,
};
const NOW = Date.parse("2026-01-02T00:00:00Z");

/** Applies steps as if every call succeeded, until none is left; returns the steps' kinds. */
function run(t: FleetTarget, busy: boolean): { kinds: string[]; t: FleetTarget } {
  const kinds: string[] = [];
  for (let s = nextConvergenceStep(t, busy, NOW); s; s = nextConvergenceStep(t, busy, NOW)) {
    kinds.push(s.kind);
    t = afterStep(t, s, NOW);
  }
  return { kinds, t };
}

describe("nextConvergenceStep", () => {
  it("a first target plans generation 1 and creates its job; then nothing is left to do", () => {
    const { kinds, t } = run(base, false);
    expect(kinds).toEqual(["plan", "create"]);
    expect(t.convergence).toMatchObject({ generation: 1, release: "1.2.0", phase: "running" });
    expect(t.convergence.jobId).toBe("keel-conv-edge-1_2_0-g1");
  });

  it("a new target cancels the old job before planning and creating the next generation", () => {
    const running = run(base, false).t;
    const { kinds, t } = run({ ...running, release: "1.3.0" }, false);
    expect(kinds).toEqual(["cancel", "plan", "create"]);
    expect(t.convergence).toMatchObject({ generation: 2, release: "1.3.0", phase: "running" });
  });

  it("while a rollout holds the fleet, the job is canceled and none is created; it resumes after", () => {
    const running = run(base, false).t;
    const paused = run(running, true);
    expect(paused.kinds).toEqual(["cancel"]);
    expect(paused.t.convergence.phase).toBe("canceled");
    expect(run(paused.t, true).kinds).toEqual([]);
    const resumed = run(paused.t, false);
    expect(resumed.kinds).toEqual(["plan", "create"]);
    expect(resumed.t.convergence.generation).toBe(2);
  });

  it("a job planned but maybe not created is canceled when a rollout takes the fleet (the cancel is idempotent)", () => {
    const planned = afterStep(
      base,
      nextConvergenceStep(base, false, NOW) ?? { kind: "create", jobId: "" },
      NOW,
    );
    expect(planned.convergence.phase).toBe("creating");
    expect(nextConvergenceStep(planned, true, NOW)).toEqual({
      kind: "cancel",
      jobId: planned.convergence.jobId,
    });
    // A retry of the create finds the same id: derived from fleet, target and generation.
    expect(nextConvergenceStep(planned, false, NOW)).toEqual({
      kind: "create",
      jobId: planned.convergence.jobId,
    });
  });
});

describe("convergence job ids and targets", () => {
  it("are IoT job ids (≤ 64 of [a-zA-Z0-9_-]), never parsed as a rollout's wave job", () => {
    const long = "f".repeat(100);
    for (const [fleet, release] of [
      ["edge", "1.2.0-rc.1+build.5"],
      [long, "1.2.0"],
    ] as const) {
      const id = convergenceJobId(fleet, release, 12);
      expect(id).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
      expect(isConvergenceJobId(id)).toBe(true);
      expect(parseJobId(id)).toBeNull();
    }
    expect(convergenceJobId(long, "1.2.0", 1)).not.toBe(convergenceJobId(long, "1.2.1", 1));
  });

  it("target exactly the fleet's 100 bucket groups: one job's limit", () => {
    const groups = fleetBucketGroups("edge");
    expect(groups).toHaveLength(100);
    expect(new Set(groups).size).toBe(100);
    expect(groups[0]).toBe("edge-b00");
  });

  it("the job document's convergence and includeRolledBack fields are optional and only `true`", () => {
    const doc = {
      operation: "keel.update",
      schemaVersion: 1,
      rolloutId: "converge-g1",
      version: "1.2.0",
      manifestUrl: "https://s3.example/m",
      imageUrl: "https://s3.example/i",
    };
    expect(JobDocumentSchema.parse(doc).convergence).toBeUndefined();
    expect(JobDocumentSchema.parse({ ...doc, convergence: true }).convergence).toBe(true);
    expect(JobDocumentSchema.safeParse({ ...doc, convergence: false }).success).toBe(false);
    expect(JobDocumentSchema.safeParse({ ...doc, includeRolledBack: "yes" }).success).toBe(false);
  });
});
