/**
 * POST /rollouts/{id}/retry (docs/fleets.md#retrying-failed-devices): a new rollout of the same release to
 * only the devices whose execution in rollout {id} ended FAILED, TIMED_OUT or REJECTED — not those that
 * rolled back unless `includeRolledBack` — in waves of at most 100 things. The release rules and the
 * fleet lock apply as for any rollout; nothing to retry is a 409.
 */
import { mapLimit } from "../../core/concurrency.ts";
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { MAX_RETRY_DEVICES, planRetry, retryTargets } from "../rollout/engine.ts";
import { thingArn } from "../rollout/iot.ts";
import { checkRelease, takeLocks } from "../rollout/rules.ts";
import { checkRolloutForAws } from "./aws-edge.ts";
import { RetryBodySchema } from "./contract.ts";
import { kick, newRolloutId } from "./rollouts.ts";
import type { Result } from "./router.ts";

/** DescribeThing calls at a time while checking which failed devices still exist. */
const LOOKUP_CONCURRENCY = 8;

export async function retryRollout(
  deps: ApiDeps,
  id: string,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  const body = parseWith(RetryBodySchema, rawBody, "retry request");
  const original = await deps.store.getRollout(id);
  if (!original) throw new NotFoundError(`no rollout ${id}`);
  const outcomes = await deps.store.listDeviceOutcomes(id);
  const candidates = retryTargets(outcomes, body.includeRolledBack);
  const rolledBackLeft = body.includeRolledBack ? 0 : retryTargets(outcomes, true).length - candidates.length;
  // A device deregistered since cannot be a job target: it is left out rather than stall the retry.
  const arns = await mapLimit(candidates, LOOKUP_CONCURRENCY, (t) => thingArn(deps.jobs.iot, t));
  const things = candidates.filter((_, i) => arns[i] !== undefined);
  if (things.length === 0) {
    const why = [
      rolledBackLeft > 0
        ? `${rolledBackLeft} failed device(s) rolled back (pass includeRolledBack to retry them)`
        : "",
      candidates.length > 0 ? `${candidates.length} failed device(s) no longer exist` : "",
    ].filter(Boolean);
    throw new ConflictError(
      `rollout ${id} has nothing to retry: no device's execution ended FAILED, TIMED_OUT or REJECTED${why.length ? ` (${why.join("; ")})` : ""}`,
    );
  }
  if (things.length > MAX_RETRY_DEVICES) {
    throw new ConflictError(
      `rollout ${id} has ${things.length} failed devices; a retry reaches at most ${MAX_RETRY_DEVICES} (start a new rollout of ${original.release} to the fleet instead)`,
    );
  }
  await checkRelease(deps.store, original.release, original.fleets);
  const now = deps.now();
  const rollout = planRetry({
    id: newRolloutId(now),
    original,
    things,
    now,
    by: caller,
    forced: body.force,
    includeRolledBack: body.includeRolledBack,
  });
  checkRolloutForAws(rollout, deps.jobs.presignRoleArn);
  await takeLocks(deps.store, rollout, body.force);
  await deps.store.saveRollout(rollout, true);
  await deps.store.audit({
    at: rollout.createdAt,
    who: caller,
    action: "rollout.retry",
    target: rollout.id,
    ...(rollout.fleets.length > 0 ? { fleets: rollout.fleets } : {}),
    detail: {
      retryOf: id,
      release: rollout.release,
      devices: things.length,
      includeRolledBack: body.includeRolledBack,
      skippedMissing: candidates.length - things.length,
      forced: body.force,
    },
  });
  return { status: 201, value: (await kick(deps, rollout.id)) ?? rollout };
}
