/**
 * A fleet's target release and its convergence (docs/fleets.md#target-release-and-convergence), as plain
 * data and pure functions: the stored record (FLEET#<fleet>/TARGET), the job id derived from fleet, target
 * and generation, and the one next step the record asks for. The driver (converge.ts) does the I/O; every
 * step is written before or after its idempotent call with a conditional write, so a crash or a duplicate
 * invocation converges on the same single job.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { BUCKET_COUNT, bucketGroupName } from "../../core/waves.ts";
import { FleetNameSchema, MAX_JOB_TARGETS } from "./model.ts";

export const ConvergenceSchema = z.object({
  /** Bumped for every new convergence job (new target, or resuming after a rollout). */
  generation: z.int().min(0),
  /** The job of this generation, and the release it carries. */
  jobId: z.string().optional(),
  release: z.string().optional(),
  /** creating: the id is chosen, CreateJob may or may not have landed; running: it did; canceled. */
  phase: z.enum(["creating", "running", "canceled"]).optional(),
  updatedAt: z.string().optional(),
});
export type Convergence = z.infer<typeof ConvergenceSchema>;

export const FleetTargetSchema = z.object({
  fleet: FleetNameSchema,
  release: z.string(),
  releaseCounter: z.number(),
  manifestKey: z.string(),
  imageKey: z.string(),
  healthDeadlineSeconds: z.int().min(5).max(86400),
  setAt: z.string(),
  /** The operator, or `rollout <id>`. */
  setBy: z.string(),
  rolloutId: z.string().optional(),
  reason: z.string().optional(),
  forced: z.boolean().optional(),
  convergence: ConvergenceSchema,
  /** Optimistic-lock counter: every write is conditional on the version it read. */
  version: z.int().min(1),
});
export type FleetTarget = z.infer<typeof FleetTargetSchema>;

/** Job ids: `keel-conv-<fleet>-<release>-g<n>` (IoT allows 64 of [a-zA-Z0-9_-]), hashed when too long. */
export function convergenceJobId(fleet: string, release: string, generation: number): string {
  const plain = `keel-conv-${fleet}-${release.replace(/[^a-zA-Z0-9_-]/g, "_")}-g${generation}`;
  if (plain.length <= 64) return plain;
  const h = createHash("sha256").update(`${fleet}\n${release}`).digest("hex").slice(0, 24);
  return `keel-conv-${h}-g${generation}`;
}

export function isConvergenceJobId(jobId: string): boolean {
  return /^keel-conv-[a-zA-Z0-9_-]+-g\d+$/.test(jobId);
}

/**
 * All of a fleet's bucket groups: the convergence job reaches every node, now and later. They are exactly
 * one job's targets (100 buckets, the 100-target limit), checked here so a change to either cannot slip.
 */
export function fleetBucketGroups(fleet: string): string[] {
  if (BUCKET_COUNT > MAX_JOB_TARGETS) {
    throw new RangeError(`${BUCKET_COUNT} bucket groups exceed one job's ${MAX_JOB_TARGETS} targets`);
  }
  return Array.from({ length: BUCKET_COUNT }, (_, b) => bucketGroupName(fleet, b));
}

/**
 * The document's rolloutId (lower-case, ≤ 40): names the convergence generation, so a device's log and
 * outcome say which convergence job moved it.
 */
export function convergenceRolloutId(generation: number): string {
  return `converge-g${generation}`;
}

export type ConvergenceStep =
  | { kind: "cancel"; jobId: string }
  | { kind: "plan"; next: Convergence }
  | { kind: "create"; jobId: string };

/**
 * The one next step. `busy`: a rollout holds the fleet's lock (its waves are in charge), so the fleet's
 * convergence job is canceled and none is created. Otherwise the fleet has one live job for its target:
 * a job for another release (or a canceled one) is canceled, then a new generation is planned and created.
 */
export function nextConvergenceStep(t: FleetTarget, busy: boolean, now: number): ConvergenceStep | null {
  const c = t.convergence;
  const live = c.jobId !== undefined && c.phase !== "canceled";
  if (busy) return live && c.jobId ? { kind: "cancel", jobId: c.jobId } : null;
  if (live && c.jobId && c.release !== t.release) return { kind: "cancel", jobId: c.jobId };
  if (!live) {
    const generation = c.generation + 1;
    return {
      kind: "plan",
      next: {
        generation,
        jobId: convergenceJobId(t.fleet, t.release, generation),
        release: t.release,
        phase: "creating",
        updatedAt: new Date(now).toISOString(),
      },
    };
  }
  if (c.phase === "creating" && c.jobId) return { kind: "create", jobId: c.jobId };
  return null;
}

/** The record after a step's call went through. */
export function afterStep(t: FleetTarget, step: ConvergenceStep, now: number): FleetTarget {
  const updatedAt = new Date(now).toISOString();
  switch (step.kind) {
    case "plan":
      return { ...t, convergence: step.next };
    case "cancel":
      return { ...t, convergence: { ...t.convergence, phase: "canceled", updatedAt } };
    case "create":
      return { ...t, convergence: { ...t.convergence, phase: "running", updatedAt } };
  }
}
