/**
 * The rollout operations of the API: create (after the release, target and lock rules), list, show with
 * its devices, and pause / resume / abort. Every change writes an audit entry naming the caller.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { SchemaError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { NotFoundError, StaleStateError } from "../errors.ts";
import { errorFields } from "../log.ts";
import { advanceRollout, logIfAborted } from "../rollout/advance.ts";
import { convergeNow } from "../rollout/converge.ts";
import {
  abort,
  deviceTotals,
  isSettling,
  isTerminal,
  pause,
  planRollout,
  resume,
} from "../rollout/engine.ts";
import { thingArn, thingGroupArn } from "../rollout/iot.ts";
import { type Rollout, ThingNameSchema } from "../rollout/model.ts";
import { checkRelease, takeLocks } from "../rollout/rules.ts";
import { fleetWindowSets, windowStateOf, windowStateView } from "../rollout/windows.ts";
import { checkAbortForAws, checkRolloutForAws } from "./aws-edge.ts";
import {
  ActionBodySchema,
  type CreateRolloutBody,
  CreateRolloutBodySchema,
  DEFAULT_PAGE_LIMIT,
  MAX_PAGE_LIMIT,
  type PageQuery,
  type RolloutAction,
  RolloutIdSchema,
  type RolloutList,
  type RolloutView,
} from "./contract.ts";
import { decodeCursor, nextCursorOf } from "./cursor.ts";
import type { Result } from "./router.ts";

const iso = (ms: number) => new Date(ms).toISOString();

export function newRolloutId(now: number): string {
  const stamp = iso(now).replace(/[-:T]/g, "").slice(0, 14);
  return `r${stamp}-${randomBytes(3).toString("hex")}`;
}

/**
 * A fleet must be one of this deployment's (FLEETS, when set). In a body that is a 400 naming the field;
 * in a path it is a 404.
 */
export function checkFleet(deps: ApiDeps, fleet: string, bodyPath?: string): void {
  if (deps.fleets.length === 0 || deps.fleets.includes(fleet)) return;
  const message = `${fleet} is not one of this deployment's fleets (${deps.fleets.join(", ")})`;
  if (bodyPath) throw new SchemaError("rollout request", [{ path: bodyPath, message }]);
  throw new NotFoundError(`fleet ${message}`);
}

/**
 * The fleets (at least one registered device each) and thing groups a rollout targets must exist: a typo
 * must not become an empty rollout that reports SUCCEEDED at once. 404 naming every missing one.
 */
async function checkTargetsFound(deps: ApiDeps, body: CreateRolloutBody): Promise<void> {
  const fleets = body.fleets ?? [];
  const groups = body.thingGroups ?? [];
  const [fleetFound, groupFound] = await Promise.all([
    Promise.all(fleets.map((f) => deps.store.fleetHasThings(f))),
    Promise.all(groups.map(async (g) => (await thingGroupArn(deps.jobs.iot, g)) !== undefined)),
  ]);
  const missing = [
    ...fleets
      .filter((_, i) => !fleetFound[i])
      .map((f) => `fleet ${f} has no registered devices (register one with \`keel fleet register\`)`),
    ...groups.filter((_, i) => !groupFound[i]).map((g) => `thing group ${g} does not exist`),
  ];
  if (missing.length > 0) throw new NotFoundError(missing.join("; "));
}

/** Canary things must exist: a typo must not become a wave nobody can answer. */
async function checkCanariesExist(deps: ApiDeps, body: CreateRolloutBody): Promise<void> {
  const iot = deps.jobs.iot;
  const checks: Array<Promise<{ path: string; message: string } | null>> = [];
  for (const [i, w] of body.waves.entries()) {
    if (!("canary" in w)) continue;
    for (const [j, t] of w.canary.entries()) {
      checks.push(
        thingArn(iot, t).then((a) =>
          a ? null : { path: `waves[${i}].canary[${j}]`, message: `thing ${t} does not exist` },
        ),
      );
    }
  }
  const issues = (await Promise.all(checks)).filter((x) => x !== null);
  if (issues.length > 0) throw new SchemaError("rollout request", issues);
}

/** Runs the engine once right away so the first job (or a cancel) does not wait for the next tick. */
export async function kick(deps: ApiDeps, id: string): Promise<Rollout | undefined> {
  try {
    return await advanceRollout(deps, id);
  } catch (err) {
    deps.log.warn("immediate advance failed; the schedule will retry", { rollout: id, ...errorFields(err) });
    return deps.store.getRollout(id);
  }
}

export async function createRollout(deps: ApiDeps, rawBody: unknown, caller: string): Promise<Result> {
  const body = parseWith(CreateRolloutBodySchema, rawBody, "rollout request");
  for (const [i, f] of (body.fleets ?? []).entries()) checkFleet(deps, f, `fleets[${i}]`);
  await checkTargetsFound(deps, body);
  await checkCanariesExist(deps, body);
  const rel = await checkRelease(deps.store, body.release, body.fleets ?? []);
  const now = deps.now();
  const rollout = planRollout({
    id: newRolloutId(now),
    body,
    release: {
      version: rel.version,
      releaseCounter: rel.releaseCounter ?? 0,
      manifestKey: rel.manifestKey,
      imageKey: rel.imageKey ?? "",
    },
    now,
    by: caller,
  });
  checkRolloutForAws(rollout, deps.jobs.presignRoleArn);
  await takeLocks(deps.store, rollout, body.force);
  await deps.store.saveRollout(rollout, true);
  await deps.store.audit({
    at: iso(now),
    who: caller,
    action: "rollout.create",
    target: rollout.id,
    ...(rollout.fleets.length > 0 ? { fleets: rollout.fleets } : {}),
    detail: {
      release: rollout.release,
      fleets: rollout.fleets,
      thingGroups: rollout.thingGroups,
      forced: rollout.forced,
    },
  });
  // The rollout holds its fleets now: their convergence jobs are canceled before its first wave's job is
  // created, so the waves alone move the fleet.
  await convergeNow(deps, rollout.fleets);
  const started = await kick(deps, rollout.id);
  return { status: 201, value: started ?? rollout };
}

export async function changeRollout(
  deps: ApiDeps,
  id: string,
  action: RolloutAction,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  const body = parseWith(ActionBodySchema, rawBody, `${action} request`);
  for (let attempt = 0; ; attempt++) {
    const r = await deps.store.getRollout(id);
    if (!r) throw new NotFoundError(`no rollout ${id}`);
    const now = deps.now();
    const next =
      action === "pause"
        ? pause(r, now, caller)
        : action === "resume"
          ? resume(r, now, caller)
          : abort(r, now, caller, body.reason);
    if (action === "abort") checkAbortForAws(r, next.reason ?? "");
    try {
      await deps.store.saveRollout(next);
      logIfAborted(deps.log, r, next);
    } catch (err) {
      // The engine wrote first; decide again on what it wrote (the change may no longer apply: 409).
      if (err instanceof StaleStateError && attempt < 10) continue;
      throw err;
    }
    await deps.store.audit({
      at: iso(now),
      who: caller,
      action: `rollout.${action}`,
      target: id,
      ...(r.fleets.length > 0 ? { fleets: r.fleets } : {}),
      ...(body.reason ? { detail: { reason: body.reason } } : {}),
    });
    return { status: 200, value: (await kick(deps, id)) ?? next };
  }
}

export const limitOf = (q: PageQuery, fallback: number) => Math.min(q.limit ?? fallback, MAX_PAGE_LIMIT);

/** The sort key of a rollout in listings: `<createdAt>#<id>`. */
const RolloutKeySchema = z
  .string()
  .max(80)
  .refine((k) => {
    const [at, id, ...rest] = k.split("#");
    return rest.length === 0 && !Number.isNaN(Date.parse(at ?? "")) && RolloutIdSchema.safeParse(id).success;
  });

export async function listRollouts(deps: ApiDeps, q: PageQuery): Promise<Result> {
  const before = q.cursor ? decodeCursor(q.cursor, RolloutKeySchema, "GET /rollouts") : undefined;
  const page = await deps.store.listRolloutsPage(limitOf(q, DEFAULT_PAGE_LIMIT), before);
  const value: RolloutList = { rollouts: page.items, ...nextCursorOf(page.next) };
  return { status: 200, value };
}

/** Devices come a thousand to a page by default: a whole demo or lab fleet in one answer. */
export const DEFAULT_DEVICE_PAGE = MAX_PAGE_LIMIT;

export async function getRollout(deps: ApiDeps, id: string, q: PageQuery): Promise<Result> {
  const after = q.cursor ? decodeCursor(q.cursor, ThingNameSchema, `GET /rollouts/${id}`) : undefined;
  let r = await deps.store.getRollout(id);
  if (!r) throw new NotFoundError(`no rollout ${id}`);
  // An aborted wave's counts move on as its devices finish: read them now (one DescribeJob per request)
  // rather than show the counts frozen at the abort until the next tick.
  if (isSettling(r)) r = (await kick(deps, id)) ?? r;
  const page = await deps.store.listDeviceOutcomesPage(id, limitOf(q, DEFAULT_DEVICE_PAGE), after);
  // Totals count every device once; the first page carries them (later pages are only more devices).
  const totals =
    after !== undefined
      ? undefined
      : deviceTotals(page.next === undefined ? page.items : await deps.store.listDeviceOutcomes(id));
  // Where the rollout stands against its fleets' maintenance windows (`rollout status` shows the next one).
  const sets = isTerminal(r) ? [] : await fleetWindowSets(deps.store, r.fleets);
  const window =
    sets.length > 0
      ? { restricted: sets.some((s) => s.length > 0), ...windowStateView(windowStateOf(sets, deps.now())) }
      : undefined;
  const value: RolloutView = {
    ...r,
    devices: page.items,
    ...(window ? { window } : {}),
    ...(totals ? { totals } : {}),
    ...nextCursorOf(page.next),
  };
  return { status: 200, value };
}
