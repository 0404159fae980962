/**
 * Convergence's I/O (docs/fleets.md#target-release-and-convergence): setting a fleet's target, and driving
 * the fleet towards it with ONE CONTINUOUS job on its 100 bucket groups. Read the record → decide the next
 * step (convergence.ts) → make the idempotent call → write the result conditionally on the version read.
 * A writer that loses the race re-reads and decides again; one that created a job the winner has since
 * given up cancels it. Calls grow with target changes and rollouts, never with the nodes that join.
 */
import type { CreateJobCommandInput } from "@aws-sdk/client-iot";
import { buildJobDocument } from "../../core/job-document.ts";
import type { RolloutDeps } from "../deps.ts";
import { StaleStateError } from "../errors.ts";
import { errorFields } from "../log.ts";
import type { Store } from "../store.ts";
import {
  afterStep,
  type ConvergenceStep,
  convergenceRolloutId,
  type FleetTarget,
  fleetBucketGroups,
  nextConvergenceStep,
} from "./convergence.ts";
import { bucketGroupArns, cancelWaveJob, type JobsConfig, newerRootKeys, sendCreateJob } from "./iot.ts";
import type { Rollout } from "./model.ts";

/** What a new target is; who set it and why. */
export type TargetInput = Omit<FleetTarget, "convergence" | "version" | "setAt">;

/** Pacing of a new convergence job's executions; joiners later get theirs at once. */
export const CONVERGENCE_RATE_PER_MINUTE = 1000;
/** In-progress timeout of a convergence execution (download, reboot, health checks). */
export const CONVERGENCE_TIMEOUT_MINUTES = 60;
/** CancelJob's reasonCode for a convergence job that was replaced or paused for a rollout. */
export const CONVERGENCE_CANCEL_CODE = "KEEL_CONVERGENCE_REPLACED";

const MAX_WRITE_ATTEMPTS = 10;

/**
 * Sets the fleet's target (a new record keeps the convergence state, so the old job is canceled by the
 * next convergence step). `unless` skips the write when the current target already is what is wanted
 * (a rollout's success recorded twice). Returns the target as stored.
 */
export async function setFleetTarget(
  store: Store,
  input: TargetInput,
  now: number,
  unless?: (current: FleetTarget) => boolean,
): Promise<FleetTarget> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.getFleetTarget(input.fleet);
    if (current && unless?.(current)) return current;
    const next: FleetTarget = {
      ...input,
      setAt: new Date(now).toISOString(),
      convergence: current?.convergence ?? { generation: 0 },
      version: current?.version ?? 1,
    };
    try {
      return await store.saveFleetTarget(next, current === undefined);
    } catch (err) {
      if (!(err instanceof StaleStateError) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
    }
  }
}

/** A rollout that SUCCEEDED makes its release each of its fleets' target (once, however often called). */
export function setTargetFromRollout(store: Store, fleet: string, r: Rollout, now: number) {
  return setFleetTarget(
    store,
    {
      fleet,
      release: r.release,
      releaseCounter: r.releaseCounter,
      manifestKey: r.manifestKey,
      imageKey: r.imageKey,
      healthDeadlineSeconds: r.healthDeadlineSeconds,
      setBy: `rollout ${r.id}`,
      rolloutId: r.id,
      ...(r.forced ? { forced: true } : {}),
    },
    now,
    (current) => current.rolloutId === r.id,
  );
}

/** The CreateJob input of a fleet's convergence job, as a pure function of the target and its targets. */
export function convergenceJobInput(
  t: FleetTarget,
  call: { targets: string[]; document: string; presignRoleArn: string },
): CreateJobCommandInput {
  const c = t.convergence;
  if (!c.jobId) throw new RangeError(`fleet ${t.fleet} has no convergence job planned`);
  return {
    jobId: c.jobId,
    targets: call.targets,
    document: call.document,
    description: `Keel convergence: fleet ${t.fleet} to ${t.release} (generation ${c.generation})`,
    // CONTINUOUS: a node that joins a bucket group later (a new node, a re-registered one) gets its
    // execution when it joins; one that is offline now gets it when it comes back.
    targetSelection: "CONTINUOUS",
    jobExecutionsRolloutConfig: { maximumPerMinute: CONVERGENCE_RATE_PER_MINUTE },
    timeoutConfig: { inProgressTimeoutInMinutes: CONVERGENCE_TIMEOUT_MINUTES },
    presignedUrlConfig: { roleArn: call.presignRoleArn, expiresInSec: 3600 },
  };
}

export async function createConvergenceJob(cfg: JobsConfig, t: FleetTarget): Promise<void> {
  const generation = t.convergence.generation;
  const targets = await bucketGroupArns(cfg.iot, [t.fleet], fleetBucketGroups(t.fleet));
  const document = buildJobDocument({
    rolloutId: convergenceRolloutId(generation),
    version: t.release,
    region: cfg.region,
    bucket: cfg.bucket,
    manifestKey: t.manifestKey,
    imageKey: t.imageKey,
    rootKeys: await newerRootKeys(cfg.s3, cfg.bucket),
    policy: { healthDeadlineSeconds: t.healthDeadlineSeconds },
    convergence: true,
  });
  const input = convergenceJobInput(t, {
    targets,
    document: JSON.stringify(document),
    presignRoleArn: cfg.presignRoleArn,
  });
  await sendCreateJob(cfg.iot, input);
}

async function applyStep(deps: RolloutDeps, t: FleetTarget, step: ConvergenceStep, busy: boolean) {
  if (step.kind === "create") await createConvergenceJob(deps.jobs, t);
  if (step.kind === "cancel") {
    const why = busy
      ? `a rollout holds fleet ${t.fleet}; its waves are in charge`
      : `fleet ${t.fleet}'s target is now ${t.release}`;
    await cancelWaveJob(deps.jobs.iot, step.jobId, why, CONVERGENCE_CANCEL_CODE);
  }
}

/**
 * Drives one fleet's convergence as far as it goes now: at most a cancel, a plan and a create. Returns the
 * record it left (undefined when the fleet has no target).
 */
export async function convergeFleet(deps: RolloutDeps, fleet: string): Promise<FleetTarget | undefined> {
  let t = await deps.store.getFleetTarget(fleet);
  // The job this invocation created, until its creation is recorded.
  let created: string | undefined;
  for (let i = 0; t && i < MAX_WRITE_ATTEMPTS; i++) {
    try {
      const busy = (await deps.store.getFleetLock(fleet)) !== undefined;
      const step = nextConvergenceStep(t, busy, deps.now());
      if (!step) return t;
      await applyStep(deps, t, step, busy);
      if (step.kind === "create") created = step.jobId;
      t = await deps.store.saveFleetTarget(afterStep(t, step, deps.now()));
      created = undefined;
      deps.log.info("convergence step", {
        fleet,
        step: step.kind,
        jobId: t.convergence.jobId,
        release: t.convergence.release,
      });
    } catch (err) {
      if (!(err instanceof StaleStateError)) throw err;
      t = await deps.store.getFleetTarget(fleet);
      const c = t?.convergence;
      // Given up (canceled or replaced) between our CreateJob and our record of it: the canceler found
      // no job, so the one we just created is canceled here.
      if (created && !(c?.jobId === created && c.phase !== "canceled")) {
        await cancelWaveJob(
          deps.jobs.iot,
          created,
          "superseded while it was created",
          CONVERGENCE_CANCEL_CODE,
        );
      }
      created = undefined;
    }
  }
  return t;
}

/**
 * Converges each of `fleets` now (after a rollout takes or frees them, or a new target). One fleet's
 * failure is logged and does not stop the others: the schedule's next convergeAll retries it.
 */
export async function convergeNow(deps: RolloutDeps, fleets: readonly string[]): Promise<FleetTarget[]> {
  const out: FleetTarget[] = [];
  for (const fleet of fleets) {
    try {
      const after = await convergeFleet(deps, fleet);
      if (after) out.push(after);
    } catch (err) {
      deps.log.warn("convergence failed; the schedule retries", { fleet, ...errorFields(err) });
    }
  }
  return out;
}

/** Every fleet with a target (the schedule's tick). */
export async function convergeAll(deps: RolloutDeps): Promise<FleetTarget[]> {
  const targets = await deps.store.listFleetTargets();
  return convergeNow(
    deps,
    targets.map((t) => t.fleet),
  );
}
