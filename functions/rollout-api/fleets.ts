/** The fleet operations of the API: a fleet's summary and devices, and registering a new device. */

import { parseCsr } from "../../core/csr.ts";
import { describeError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import { bucketGroupName, bucketOf } from "../../core/waves.ts";
import type { ApiDeps } from "../deps.ts";
import { CloudCallError, ConflictError } from "../errors.ts";
import { isTerminal } from "../rollout/engine.ts";
import { provisionThing } from "../rollout/iot-devices.ts";
import { ThingNameSchema } from "../rollout/model.ts";
import { checkThingForAws } from "./aws-edge.ts";
import {
  type FleetStatus,
  type PageQuery,
  type RegisteredThing,
  type RegisterThingBody,
  RegisterThingBodySchema,
} from "./contract.ts";
import { decodeCursor, nextCursorOf } from "./cursor.ts";
import { checkFleet, DEFAULT_DEVICE_PAGE, limitOf } from "./rollouts.ts";
import type { Result } from "./router.ts";

export async function fleetStatus(deps: ApiDeps, fleet: string, q: PageQuery): Promise<Result> {
  checkFleet(deps, fleet);
  const after = q.cursor ? decodeCursor(q.cursor, ThingNameSchema, `GET /fleets/${fleet}`) : undefined;
  const [page, meta, lock, target] = await Promise.all([
    deps.store.listThingsPage(fleet, limitOf(q, DEFAULT_DEVICE_PAGE), after),
    deps.store.getFleetMeta(fleet),
    deps.store.getFleetLock(fleet),
    deps.store.getFleetTarget(fleet),
  ]);
  const active = lock ? await deps.store.getRollout(lock) : undefined;
  const value: FleetStatus = {
    fleet,
    highestVersion: meta.highestVersion,
    activeRollout:
      active && !isTerminal(active)
        ? { id: active.id, status: active.status, release: active.release }
        : undefined,
    target,
    things: page.items.map((t) => ({
      thingName: t.thingName,
      version: t.version,
      lastStatus: t.lastStatus,
      bucket: t.bucket,
    })),
    ...nextCursorOf(page.next),
  };
  // The summary counts every device; the first page carries it (later pages are only more devices).
  if (after === undefined) {
    const all = page.next === undefined ? page.items : await deps.store.listThings(fleet);
    const versions: Record<string, number> = {};
    for (const t of all) {
      const v = t.version ?? "unknown";
      versions[v] = (versions[v] ?? 0) + 1;
    }
    value.devices = all.length;
    value.versions = versions;
  }
  return { status: 200, value };
}

export async function registerThing(
  deps: ApiDeps,
  fleet: string,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  checkFleet(deps, fleet);
  const body = parseWith(RegisterThingBodySchema, rawBody, "thing registration");
  return addThing(deps, fleet, body, { who: caller, action: "thing.register" });
}

/**
 * Registers a checked request: the thing, its certificate (for the CSR's key when there is one), its bucket
 * group, the store record and the audit entry. A bad CSR or a name AWS would refuse is a 400 before any of it.
 */
export async function addThing(
  deps: ApiDeps,
  fleet: string,
  body: RegisterThingBody,
  audit: { who: string; action: string; detail?: Record<string, unknown>; enrolledBy?: string },
): Promise<Result> {
  checkThingForAws(body.thingName, fleet);
  if (body.csr !== undefined) parseCsr(body.csr);
  const existing = await deps.store.getThing(body.thingName);
  if (existing)
    throw new ConflictError(`thing ${body.thingName} is already registered (fleet ${existing.fleet})`);
  const bucket = bucketOf(body.thingName);
  const group = bucketGroupName(fleet, bucket);
  try {
    const identity = await provisionThing(deps.jobs.iot, {
      thingName: body.thingName,
      fleet,
      group,
      policyName: deps.thingPolicyName,
      ...(body.csr !== undefined ? { csr: body.csr } : {}),
    });
    const now = new Date(deps.now()).toISOString();
    await deps.store.putThing({
      thingName: body.thingName,
      fleet,
      bucket,
      group,
      ...(body.version ? { version: body.version } : {}),
      ...(audit.enrolledBy ? { enrolledBy: audit.enrolledBy } : {}),
      registeredAt: now,
      updatedAt: now,
    });
    if (body.version) {
      const rel = await deps.store.getRelease(body.version);
      await deps.store.raiseFleetMeta(fleet, body.version, rel?.releaseCounter);
    }
    await deps.store.audit({
      at: now,
      who: audit.who,
      action: audit.action,
      target: body.thingName,
      fleets: [fleet],
      detail: {
        fleet,
        group,
        certificateId: identity.certificateId,
        keyMadeOn: body.csr === undefined ? "cloud" : "node",
        ...audit.detail,
      },
    });
    const value: RegisteredThing = { thingName: body.thingName, fleet, group, ...identity };
    return { status: 201, value };
  } catch (err) {
    if (err instanceof CloudCallError) throw err;
    throw new CloudCallError(`registering ${body.thingName} failed: ${describeError(err)}`, {
      cause: err,
    });
  }
}
