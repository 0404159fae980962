/**
 * advance-rollout: read state → run the engine → write state (conditional on its version) → perform the
 * effect the new state asks for → mark it done. A writer that loses the race re-reads and decides again,
 * so duplicate and concurrent invocations neither duplicate jobs nor lose a state change. Creating a
 * wave's job is claimed first with a conditional write, so of many invocations woken by one wave change
 * only one calls IoT; the rest see the claim and leave.
 */
import { randomUUID } from "node:crypto";
import type { MaintenanceWindow } from "../../core/maintenance-window.ts";
import type { RolloutDeps } from "../deps.ts";
import { AwsLimitError, awsErrorName, StaleStateError } from "../errors.ts";
import { errorFields, type Logger, ROLLOUT_ABORTED_EVENT, ROLLOUT_STALLED_EVENT } from "../log.ts";
import { convergeNow, setTargetFromRollout } from "./converge.ts";
import {
  applyWindow,
  becameAborted,
  becameStalled,
  claimJob,
  type Effect,
  effectFailed,
  gate,
  isSettling,
  isTerminal,
  jobClaimedByOther,
  markEffectDone,
  nextEffect,
  releaseJobClaim,
  settle,
} from "./engine.ts";
import { cancelWaveJob, createWaveJob, observeWave } from "./iot.ts";
import { type Rollout, RolloutStatus } from "./model.ts";
import { lockNames } from "./rules.ts";
import { fleetWindowSets, windowStateOf } from "./windows.ts";

/**
 * The one line the aborted-rollouts alarm counts (infra/constructs/alarms.ts), written by whichever
 * writer won the conditional write that made the rollout ABORTED — so once per abort, whatever caused it.
 */
export function logIfAborted(log: Logger, before: Rollout | undefined, after: Rollout): void {
  if (!becameAborted(before, after)) return;
  log.warn("rollout aborted", {
    event: ROLLOUT_ABORTED_EVENT,
    rolloutId: after.id,
    reason: after.reason ?? "",
  });
}

async function applyEffect(
  deps: RolloutDeps,
  r: Rollout,
  e: Effect,
  windows: MaintenanceWindow[][],
): Promise<void> {
  switch (e.kind) {
    case "create-job":
      await createWaveJob(deps.jobs, r, e.waveIndex, windows);
      return;
    case "cancel-job": {
      const w = r.waves[e.waveIndex];
      if (w) await cancelWaveJob(deps.jobs.iot, w.jobId, r.reason ?? "rollout aborted");
      return;
    }
    case "release-locks":
      for (const name of lockNames(r)) {
        if (r.status === RolloutStatus.Succeeded && r.fleets.includes(name)) {
          await deps.store.raiseFleetMeta(name, r.release, r.releaseCounter);
          // Before the lock goes: convergence resumes for this (new) target, never for the one before.
          await setTargetFromRollout(deps.store, name, r, deps.now());
        }
        await deps.store.releaseFleetLock(name, r.id);
      }
      // The fleets are free: their convergence resumes now rather than at the next tick.
      await convergeNow(deps, r.fleets);
      return;
  }
}

const MAX_STEPS = 200;

/** Drives one rollout as far as it can go now. Returns the state it left, or undefined if unknown. */
export async function advanceRollout(deps: RolloutDeps, id: string): Promise<Rollout | undefined> {
  // Names this invocation in job claims.
  const self = randomUUID();
  let r = await deps.store.getRollout(id);
  // The fleets' maintenance windows, read once per invocation (one item per fleet).
  const windows = r && !isTerminal(r) ? await fleetWindowSets(deps.store, r.fleets) : [];
  let observedWave = -1;
  // The job this invocation created, until its creation is recorded.
  let created: { waveIndex: number; jobId: string } | undefined;
  for (let step = 0; r && step < MAX_STEPS; step++) {
    try {
      // Inside or outside the windows first: it decides whether a wave may start or advance.
      const windowed = applyWindow(r, windowStateOf(windows, deps.now()), deps.now());
      if (windowed) {
        r = await deps.store.saveRollout(windowed);
        continue;
      }
      const effect = nextEffect(r);
      if (effect?.kind === "create-job" && r.waves[effect.waveIndex]?.jobClaim?.by !== self) {
        // Someone else is creating this job: its `job-created` write (or the lapse of its claim) is
        // for the next event or tick to see.
        if (jobClaimedByOther(r, effect.waveIndex, self, deps.now())) return r;
        r = await deps.store.saveRollout(claimJob(r, effect.waveIndex, self, deps.now()));
        continue;
      }
      if (effect) {
        const stalled = await applyEffectOrRecord(deps, r, effect, windows);
        if (stalled) {
          r = stalled;
          continue;
        }
        if (effect.kind === "create-job") {
          created = { waveIndex: effect.waveIndex, jobId: r.waves[effect.waveIndex]?.jobId ?? "" };
        }
        r = await deps.store.saveRollout(markEffectDone(r, effect, deps.now()));
        if (effect.kind === "create-job") created = undefined;
        deps.log.info("effect done", {
          rollout: id,
          effect: effect.kind,
          wave: "waveIndex" in effect ? effect.waveIndex + 1 : undefined,
        });
        continue;
      }
      const wave = r.waves[r.current];
      // One DescribeJob per wave per invocation is enough to see a change; the next event or tick sees more.
      if (isTerminal(r) && !isSettling(r)) return r;
      if (!wave?.jobCreatedAt || observedWave === r.current) return r;
      const obs = await observeWave(deps.jobs.iot, wave.jobId);
      observedWave = r.current;
      const next = isSettling(r) ? settle(r, obs, deps.now()) : gate(r, obs, deps.now());
      if (!next) return r;
      const before: Rollout = r;
      r = await deps.store.saveRollout(next);
      logIfAborted(deps.log, before, r);
      deps.log.info("rollout updated", {
        rollout: id,
        status: r.status,
        wave: r.current + 1,
        counts: wave.counts,
      });
    } catch (err) {
      if (!(err instanceof StaleStateError)) throw err;
      deps.log.debug("lost a write race; re-reading", { rollout: id });
      r = await deps.store.getRollout(id);
      observedWave = -1;
      // Aborted (and its cancel done) between our CreateJob and our record of it: the cancel found no
      // job, so the job we just created is canceled here.
      if (created && r?.status === RolloutStatus.Aborted && r.cancelDone) {
        await cancelWaveJob(deps.jobs.iot, created.jobId, r.reason ?? "rollout aborted");
        created = undefined;
      }
    }
  }
  return r;
}

/**
 * Applies an effect. A failure is recorded on the rollout (effectFailed): a failed job creation gives its
 * claim back so the next invocation retries at once, and a failure that stalls the rollout is logged
 * once for the alarm. Returns the state written when it stalled (the caller carries on from there);
 * otherwise rethrows, so the failure shows in the invocation and the schedule retries it.
 */
async function applyEffectOrRecord(
  deps: RolloutDeps,
  r: Rollout,
  effect: Effect,
  windows: MaintenanceWindow[][],
): Promise<Rollout | null> {
  try {
    await applyEffect(deps, r, effect, windows);
    return null;
  } catch (err) {
    const now = deps.now();
    const base = effect.kind === "create-job" ? releaseJobClaim(r, effect.waveIndex, now) : r;
    const failed = effectFailed(base, effect, errorMessage(err), isPermanent(err), now);
    let saved: Rollout;
    try {
      saved = await deps.store.saveRollout(failed);
    } catch {
      // Lost to another writer, or the table is down too: the claim lapses by itself, the count waits.
      throw err;
    }
    if (becameStalled(r, saved)) {
      deps.log.warn("rollout stalled", {
        event: ROLLOUT_STALLED_EVENT,
        rolloutId: r.id,
        effect: effect.kind,
        attempts: saved.effectFailure?.attempts,
        error: saved.effectFailure?.error,
      });
    }
    if (saved.effectFailure?.stalled && saved.status === RolloutStatus.Stalled) return saved;
    throw err;
  }
}

const errorMessage = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

/** Errors that fail the same way on every retry: a refused input (ours or AWS's). */
function isPermanent(err: unknown): boolean {
  if (err instanceof AwsLimitError) return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return awsErrorName(cause ?? err) === "InvalidRequestException";
}

export async function advanceAll(deps: RolloutDeps): Promise<Rollout[]> {
  const active = await deps.store.listRollouts("active");
  const out: Rollout[] = [];
  for (const r of active) {
    try {
      const after = await advanceRollout(deps, r.id);
      if (after) out.push(after);
    } catch (err) {
      // One rollout's failure (say, IoT throttling) must not stop the others; it is retried next tick.
      deps.log.error("advance failed", { rollout: r.id, ...errorFields(err) });
    }
  }
  return out;
}
