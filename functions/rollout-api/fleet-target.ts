/**
 * PUT /fleets/{fleet}/target (docs/fleets.md#target-release-and-convergence): an operator sets the release
 * the fleet converges to. The release rules of a new rollout apply (VERIFIED, no downgrade) unless forced;
 * a release without an image can never be a target. Audited; convergence starts at once.
 */
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { NotFoundError, RolloutRefusedError } from "../errors.ts";
import { convergeNow, setFleetTarget } from "../rollout/converge.ts";
import { checkRelease } from "../rollout/rules.ts";
import { SetTargetBodySchema } from "./contract.ts";
import { checkFleet } from "./rollouts.ts";
import type { Result } from "./router.ts";

export async function setTarget(
  deps: ApiDeps,
  fleet: string,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  checkFleet(deps, fleet);
  const body = parseWith(SetTargetBodySchema, rawBody, "target request");
  const rel = await deps.store.getRelease(body.release);
  if (!rel) throw new NotFoundError(`release ${body.release} is not registered (publish it first)`);
  if (!body.force) await checkRelease(deps.store, body.release, [fleet]);
  if (rel.releaseCounter === undefined || !rel.imageKey) {
    throw new RolloutRefusedError(
      `release ${rel.version} is ${rel.status} and has no image; it cannot be a target even with force`,
    );
  }
  const previous = await deps.store.getFleetTarget(fleet);
  const now = deps.now();
  await setFleetTarget(
    deps.store,
    {
      fleet,
      release: rel.version,
      releaseCounter: rel.releaseCounter,
      manifestKey: rel.manifestKey,
      imageKey: rel.imageKey,
      healthDeadlineSeconds: previous?.healthDeadlineSeconds ?? 300,
      setBy: caller,
      reason: body.reason,
      ...(body.force ? { forced: true } : {}),
    },
    now,
  );
  await deps.store.audit({
    at: new Date(now).toISOString(),
    who: caller,
    action: "fleet.set-target",
    target: fleet,
    fleets: [fleet],
    detail: {
      release: rel.version,
      reason: body.reason,
      forced: body.force,
      ...(previous ? { previous: previous.release } : {}),
    },
  });
  const [after] = await convergeNow(deps, [fleet]);
  return { status: 200, value: after ?? (await deps.store.getFleetTarget(fleet)) };
}
