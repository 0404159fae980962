/**
 * The rollout API's operations as plain functions over the store and IoT, routed by method and path.
 * Every change writes an audit entry naming the caller.
 */
import { randomBytes } from "node:crypto";
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DescribeEndpointCommand,
} from "@aws-sdk/client-iot";
import { z } from "zod";
import { SchemaError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import { compareVersions, SemverSchema } from "../../core/version.ts";
import { bucketGroupName, bucketOf } from "../../core/waves.ts";
import {
  CloudCallError,
  ConflictError,
  NotFoundError,
  RolloutRefusedError,
  StaleStateError,
} from "../errors.ts";
import { type AdvanceDeps, advanceRollout, lockNames, logIfAborted } from "../rollout/advance.ts";
import {
  abort,
  deviceTotals,
  isSettling,
  isTerminal,
  pause,
  planRollout,
  resume,
} from "../rollout/engine.ts";
import { ensureThingGroup, thingArn, thingGroupArn } from "../rollout/iot.ts";
import {
  type CreateRolloutBody,
  CreateRolloutBodySchema,
  FleetNameSchema,
  type Rollout,
  ThingNameSchema,
} from "../rollout/model.ts";
import { type ReleaseRecord, ReleaseStatus } from "../store.ts";

export interface ApiDeps extends AdvanceDeps {
  /** Fleets the API accepts; empty = any. */
  fleets: string[];
  thingPolicyName: string | undefined;
}

export interface Request {
  method: string;
  path: string;
  body: () => unknown;
  caller: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

function newRolloutId(now: number): string {
  const stamp = iso(now).replace(/[-:T]/g, "").slice(0, 14);
  return `r${stamp}-${randomBytes(3).toString("hex")}`;
}

/**
 * A fleet must be one of this deployment's (FLEETS, when set). In a body that is a 400 naming the field;
 * in a path it is a 404.
 */
function checkFleet(deps: ApiDeps, fleet: string, bodyPath?: string): void {
  if (!bodyPath) parseWith(FleetNameSchema, fleet, "fleet name");
  if (deps.fleets.length === 0 || deps.fleets.includes(fleet)) return;
  const message = `${fleet} is not one of this deployment's fleets (${deps.fleets.join(", ")})`;
  if (bodyPath) throw new SchemaError("rollout request", [{ path: bodyPath, message }]);
  throw new NotFoundError(`fleet ${message}`);
}

/** Refuses a rollout the rules forbid, naming the rule: not VERIFIED, or a downgrade for a fleet. */
async function checkRelease(deps: ApiDeps, version: string, fleets: string[]): Promise<ReleaseRecord> {
  const rel = await deps.store.getRelease(version);
  if (!rel) throw new RolloutRefusedError(`release ${version} is not registered (publish it first)`);
  if (rel.status !== ReleaseStatus.Verified || rel.releaseCounter === undefined || !rel.imageKey) {
    throw new RolloutRefusedError(
      `release ${version} is ${rel.status}${rel.reason ? `: ${rel.reason}` : ""}`,
    );
  }
  for (const fleet of fleets) {
    const meta = await deps.store.getFleetMeta(fleet);
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
async function checkTargetsExist(deps: ApiDeps, body: CreateRolloutBody): Promise<void> {
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

async function createRollout(deps: ApiDeps, req: Request) {
  const body = parseWith(CreateRolloutBodySchema, req.body(), "rollout request");
  for (const [i, f] of (body.fleets ?? []).entries()) checkFleet(deps, f, `fleets[${i}]`);
  await checkTargetsFound(deps, body);
  await checkTargetsExist(deps, body);
  const rel = await checkRelease(deps, body.release, body.fleets ?? []);
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
    by: req.caller,
  });
  // One rollout at a time per fleet: take each fleet's lock unless its holder is still running and the
  // caller did not force. The lock write is conditional on the holder we saw, so two creators cannot both win.
  for (const name of lockNames(rollout)) {
    const holder = await deps.store.getFleetLock(name);
    if (holder) {
      const other = await deps.store.getRollout(holder);
      if (other && !isTerminal(other) && !body.force) {
        throw new RolloutRefusedError(
          `${name} already has rollout ${other.id} (${other.status}, release ${other.release}); abort it or pass force`,
        );
      }
    }
    if (!(await deps.store.takeFleetLock(name, rollout.id, holder))) {
      throw new RolloutRefusedError(`${name} was taken by another rollout just now; try again`);
    }
  }
  await deps.store.saveRollout(rollout, true);
  await deps.store.audit({
    at: iso(now),
    who: req.caller,
    action: "rollout.create",
    target: rollout.id,
    detail: {
      release: rollout.release,
      fleets: rollout.fleets,
      thingGroups: rollout.thingGroups,
      forced: rollout.forced,
    },
  });
  const started = await kick(deps, rollout.id);
  return { status: 201, value: started ?? rollout };
}

/** Runs the engine once right away so the first job (or a cancel) does not wait for the next tick. */
async function kick(deps: ApiDeps, id: string): Promise<Rollout | undefined> {
  try {
    return await advanceRollout(deps, id);
  } catch (err) {
    deps.log.warn("immediate advance failed; the schedule will retry", {
      rollout: id,
      error: (err as Error).message,
    });
    return deps.store.getRollout(id);
  }
}

const ActionBodySchema = z.strictObject({ reason: z.string().min(1).max(1000).optional() });

async function changeRollout(deps: ApiDeps, req: Request, id: string, action: "pause" | "resume" | "abort") {
  const body = parseWith(ActionBodySchema, req.body(), `${action} request`);
  for (let attempt = 0; ; attempt++) {
    const r = await deps.store.getRollout(id);
    if (!r) throw new NotFoundError(`no rollout ${id}`);
    const now = deps.now();
    const next =
      action === "pause"
        ? pause(r, now, req.caller)
        : action === "resume"
          ? resume(r, now, req.caller)
          : abort(r, now, req.caller, body.reason);
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
      who: req.caller,
      action: `rollout.${action}`,
      target: id,
      ...(body.reason ? { detail: { reason: body.reason } } : {}),
    });
    return { status: 200, value: (await kick(deps, id)) ?? next };
  }
}

async function getRollout(deps: ApiDeps, id: string) {
  let r = await deps.store.getRollout(id);
  if (!r) throw new NotFoundError(`no rollout ${id}`);
  // An aborted wave's counts move on as its devices finish: read them now (one DescribeJob per request)
  // rather than show the counts frozen at the abort until the next tick.
  if (isSettling(r)) r = (await kick(deps, id)) ?? r;
  const devices = await deps.store.listDeviceOutcomes(id);
  return { status: 200, value: { ...r, devices, totals: deviceTotals(devices) } };
}

async function fleetStatus(deps: ApiDeps, fleet: string) {
  checkFleet(deps, fleet);
  const [things, meta, lock] = await Promise.all([
    deps.store.listThings(fleet),
    deps.store.getFleetMeta(fleet),
    deps.store.getFleetLock(fleet),
  ]);
  const versions: Record<string, number> = {};
  for (const t of things) {
    const v = t.version ?? "unknown";
    versions[v] = (versions[v] ?? 0) + 1;
  }
  const active = lock ? await deps.store.getRollout(lock) : undefined;
  return {
    status: 200,
    value: {
      fleet,
      devices: things.length,
      versions,
      highestVersion: meta.highestVersion,
      activeRollout:
        active && !isTerminal(active)
          ? { id: active.id, status: active.status, release: active.release }
          : undefined,
      things: things.map((t) => ({
        thingName: t.thingName,
        version: t.version,
        lastStatus: t.lastStatus,
        bucket: t.bucket,
      })),
    },
  };
}

export const RegisterThingBodySchema = z.strictObject({
  thingName: ThingNameSchema,
  /** The version the device was installed with at the factory, for `fleet status` until it reports. */
  version: SemverSchema.optional(),
});

async function registerThing(deps: ApiDeps, req: Request, fleet: string) {
  checkFleet(deps, fleet);
  const body = parseWith(RegisterThingBodySchema, req.body(), "thing registration");
  const existing = await deps.store.getThing(body.thingName);
  if (existing)
    throw new ConflictError(`thing ${body.thingName} is already registered (fleet ${existing.fleet})`);
  const iot = deps.jobs.iot;
  const bucket = bucketOf(body.thingName);
  const group = bucketGroupName(fleet, bucket);
  try {
    await iot.send(
      new CreateThingCommand({ thingName: body.thingName, attributePayload: { attributes: { fleet } } }),
    );
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    if (!cert.certificateArn || !cert.certificatePem || !cert.keyPair?.PrivateKey) {
      throw new CloudCallError("CreateKeysAndCertificate returned no certificate or key");
    }
    if (deps.thingPolicyName) {
      await iot.send(
        new AttachPolicyCommand({ policyName: deps.thingPolicyName, target: cert.certificateArn }),
      );
    }
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: body.thingName, principal: cert.certificateArn }),
    );
    await ensureThingGroup(iot, group);
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: group, thingName: body.thingName }));
    const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
    const now = iso(deps.now());
    await deps.store.putThing({
      thingName: body.thingName,
      fleet,
      bucket,
      group,
      ...(body.version ? { version: body.version } : {}),
      registeredAt: now,
      updatedAt: now,
    });
    if (body.version) {
      const rel = await deps.store.getRelease(body.version);
      await deps.store.raiseFleetMeta(fleet, body.version, rel?.releaseCounter);
    }
    await deps.store.audit({
      at: now,
      who: req.caller,
      action: "thing.register",
      target: body.thingName,
      detail: { fleet, group, certificateId: cert.certificateId },
    });
    return {
      status: 201,
      value: {
        thingName: body.thingName,
        fleet,
        group,
        certificateArn: cert.certificateArn,
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
        privateKey: cert.keyPair.PrivateKey,
        endpoint: endpoint.endpointAddress,
      },
    };
  } catch (err) {
    if (err instanceof CloudCallError) throw err;
    throw new CloudCallError(`registering ${body.thingName} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Route table: method + path pattern → operation. */
export async function route(deps: ApiDeps, req: Request): Promise<{ status: number; value: unknown }> {
  const parts = req.path.split("/").filter(Boolean).map(decodeURIComponent);
  const [a, b, c] = parts;
  const m = req.method.toUpperCase();
  if (a === "rollouts" && parts.length === 1 && m === "POST") return createRollout(deps, req);
  if (a === "rollouts" && parts.length === 1 && m === "GET")
    return { status: 200, value: { rollouts: await deps.store.listRollouts("all") } };
  if (a === "rollouts" && b && parts.length === 2 && m === "GET") return getRollout(deps, b);
  if (
    a === "rollouts" &&
    b &&
    parts.length === 3 &&
    m === "POST" &&
    (c === "pause" || c === "resume" || c === "abort")
  ) {
    return changeRollout(deps, req, b, c);
  }
  if (a === "releases" && parts.length === 1 && m === "GET")
    return { status: 200, value: { releases: await deps.store.listReleases() } };
  if (a === "fleets" && b && parts.length === 2 && m === "GET") return fleetStatus(deps, b);
  if (a === "fleets" && b && c === "things" && parts.length === 3 && m === "POST")
    return registerThing(deps, req, b);
  throw new NotFoundError(`no route ${m} ${req.path}`);
}
