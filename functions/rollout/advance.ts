/**
 * advance-rollout: read state → run the engine → write state (conditional on its version) → perform the
 * effect the new state asks for → mark it done. A writer that loses the race re-reads and decides again,
 * so duplicate and concurrent invocations neither duplicate jobs nor lose a state change.
 */
import { StaleStateError } from "../errors.ts";
import { errorFields, type Logger } from "../log.ts";
import type { Store } from "../store.ts";
import { type Effect, gate, isTerminal, markEffectDone, nextEffect } from "./engine.ts";
import { cancelWaveJob, createWaveJob, type JobsConfig, observeWave } from "./iot.ts";
import { type Rollout, RolloutStatus } from "./model.ts";

export interface AdvanceDeps {
  jobs: JobsConfig;
  store: Store;
  now: () => number;
  log: Logger;
}

/** The locks a rollout holds: its fleets, or its thing groups in their own namespace. */
export function lockNames(r: Pick<Rollout, "fleets" | "thingGroups">): string[] {
  return r.fleets.length > 0 ? r.fleets : r.thingGroups.map((g) => `group:${g}`);
}

async function applyEffect(deps: AdvanceDeps, r: Rollout, e: Effect): Promise<void> {
  switch (e.kind) {
    case "create-job":
      await createWaveJob(deps.jobs, r, e.waveIndex);
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
        }
        await deps.store.releaseFleetLock(name, r.id);
      }
      return;
  }
}

const MAX_STEPS = 200;

/** Drives one rollout as far as it can go now. Returns the state it left, or undefined if unknown. */
export async function advanceRollout(deps: AdvanceDeps, id: string): Promise<Rollout | undefined> {
  let r = await deps.store.getRollout(id);
  let observedWave = -1;
  for (let step = 0; r && step < MAX_STEPS; step++) {
    try {
      const effect = nextEffect(r);
      if (effect) {
        await applyEffect(deps, r, effect);
        r = await deps.store.saveRollout(markEffectDone(r, effect, deps.now()));
        deps.log.info("effect done", {
          rollout: id,
          effect: effect.kind,
          wave: "waveIndex" in effect ? effect.waveIndex + 1 : undefined,
        });
        continue;
      }
      const wave = r.waves[r.current];
      // After a state change, a new wave's job is observed once more; one DescribeJob per wave per
      // invocation is enough to see a change; the next event or tick sees more. per wave per invocation: enough to see a change; the next event or tick sees more.
      if (isTerminal(r)) return r;
      if (!wave?.jobCreatedAt || observedWave === r.current) return r;
      const obs = await observeWave(deps.jobs.iot, wave.jobId);
      observedWave = r.current;
      const next = gate(r, obs, deps.now());
      if (!next) return r;
      r = await deps.store.saveRollout(next);
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
    }
  }
  return r;
}

export async function advanceAll(deps: AdvanceDeps): Promise<Rollout[]> {
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
