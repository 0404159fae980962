/**
 * The rules a new rollout must pass, apart from HTTP: the release must be VERIFIED and must not be a
 * downgrade for any fleet it targets, and a fleet runs one rollout at a time (unless forced). Each
 * refusal is a RolloutRefusedError naming the rule (the API answers 409 with it).
 */
import { compareVersions } from "../../core/version.ts";
import { RolloutRefusedError } from "../errors.ts";
import { ReleaseStatus } from "../rollout-api/contract.ts";
import type { ReleaseRecord, Store } from "../store.ts";
import { isTerminal } from "./engine.ts";
import type { Rollout } from "./model.ts";

/** The locks a rollout holds: its fleets, or its thing groups in their own namespace. */
export function lockNames(r: Pick<Rollout, "fleets" | "thingGroups">): string[] {
  return r.fleets.length > 0 ? r.fleets : r.thingGroups.map((g) => `group:${g}`);
}

/** A VERIFIED release with an image, that no target fleet has gone past (by counter or by version). */
export async function checkRelease(store: Store, version: string, fleets: string[]): Promise<ReleaseRecord> {
  const rel = await store.getRelease(version);
  if (!rel) throw new RolloutRefusedError(`release ${version} is not registered (publish it first)`);
  if (rel.status !== ReleaseStatus.Verified || rel.releaseCounter === undefined || !rel.imageKey) {
    throw new RolloutRefusedError(
      `release ${version} is ${rel.status}${rel.reason ? `: ${rel.reason}` : ""}`,
    );
  }
  for (const fleet of fleets) {
    const meta = await store.getFleetMeta(fleet);
    const counterBack = meta.highestCounter !== undefined && rel.releaseCounter < meta.highestCounter;
    const versionBack =
      meta.highestVersion !== undefined && compareVersions(version, meta.highestVersion) < 0;
    if (counterBack || versionBack) {
      throw new RolloutRefusedError(
        `release ${version} (counter ${rel.releaseCounter}) would be a downgrade for fleet ${fleet}, which has reached ${meta.highestVersion}${meta.highestCounter !== undefined && meta.highestCounter >= 0 ? ` (counter ${meta.highestCounter})` : ""}`,
      );
    }
  }
  return rel;
}

/**
 * One rollout at a time per fleet: takes each of the rollout's locks unless its holder is still running
 * and the caller did not force. The lock write is conditional on the holder seen, so of two creators
 * racing for a fleet only one wins.
 */
export async function takeLocks(store: Store, rollout: Rollout, force: boolean): Promise<void> {
  for (const name of lockNames(rollout)) {
    const holder = await store.getFleetLock(name);
    if (holder) {
      const other = await store.getRollout(holder);
      if (other && !isTerminal(other) && !force) {
        throw new RolloutRefusedError(
          `${name} already has rollout ${other.id} (${other.status}, release ${other.release}); abort it or pass force`,
        );
      }
    }
    if (!(await store.takeFleetLock(name, rollout.id, holder))) {
      throw new RolloutRefusedError(`${name} was taken by another rollout just now; try again`);
    }
  }
}
