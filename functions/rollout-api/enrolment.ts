/**
 * Enrolment (docs/fleets.md#enrolment): who may enrol nodes into a fleet (its allow-list), a node
 * enrolling itself with only a CSR, and removing a device. A node proves who it is with its AWS identity:
 * the request is SigV4-signed with its instance role, IAM auth puts that principal in the request
 * context, and the fleet's allow-list (accounts, roles, tags on the role) decides. The private key stays
 * on the node; the certificate is issued for the CSR's key.
 */
import { parseCsr } from "../../core/csr.ts";
import { describeError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { CloudCallError, ConflictError, ForbiddenError } from "../errors.ts";
import { deprovisionThing } from "../rollout/iot-deregistration.ts";
import { reissueCertificate } from "../rollout/iot-devices.ts";
import { checkThingForAws } from "./aws-edge.ts";
import {
  EnrolBodySchema,
  type EnrolmentPolicy,
  EnrolmentPolicySchema,
  type RegisteredThing,
  type RemovedThing,
} from "./contract.ts";
import { addThing } from "./fleets.ts";
import type { CallerIdentity } from "./http.ts";
import { checkFleet } from "./rollouts.ts";
import type { Result } from "./router.ts";

const EMPTY: EnrolmentPolicy = { accounts: [], roles: [], tags: [] };

export async function putEnrolmentPolicy(
  deps: ApiDeps,
  fleet: string,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  checkFleet(deps, fleet);
  const policy = parseWith(EnrolmentPolicySchema, rawBody, "enrolment allow-list");
  await deps.store.putEnrolmentPolicy(fleet, policy);
  await deps.store.audit({
    at: new Date(deps.now()).toISOString(),
    who: caller,
    action: "fleet.enrolment",
    target: fleet,
    fleets: [fleet],
    detail: { ...policy },
  });
  return { status: 200, value: policy };
}

export async function getEnrolmentPolicy(deps: ApiDeps, fleet: string): Promise<Result> {
  checkFleet(deps, fleet);
  return { status: 200, value: (await deps.store.getEnrolmentPolicy(fleet)) ?? EMPTY };
}

/** An STS assumed-role ARN (what an EC2 instance role signs as): account, role name, session. */
const ASSUMED_ROLE = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/([\w+=,.@-]{1,64})$/;
/** An IAM role ARN: the role name is the last path segment. */
const ROLE = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:.*\/)?([\w+=,.@-]{1,64})$/;

/** Which rule lets the caller in, or undefined. Any rule suffices: account, role, or a tag of its role. */
export async function allowedBy(
  deps: Pick<ApiDeps, "roleTags">,
  policy: EnrolmentPolicy,
  identity: CallerIdentity,
): Promise<string | undefined> {
  const assumed = ASSUMED_ROLE.exec(identity.arn);
  const account =
    identity.account ?? assumed?.[1] ?? /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):/.exec(identity.arn)?.[1];
  if (account && policy.accounts.includes(account)) return `account ${account}`;
  if (!assumed) return undefined;
  const [, roleAccount = "", roleName = ""] = assumed;
  for (const r of policy.roles) {
    const m = ROLE.exec(r);
    if (m?.[1] === roleAccount && m[2] === roleName) return `role ${r}`;
  }
  if (policy.tags.length === 0 || !deps.roleTags) return undefined;
  const tags = await deps.roleTags(roleAccount, roleName);
  const hit = policy.tags.find((t) => tags?.[t.key] === t.value);
  return hit ? `tag ${hit.key}=${hit.value} on role ${roleName}` : undefined;
}

export async function enrol(
  deps: ApiDeps,
  fleet: string,
  rawBody: unknown,
  identity: CallerIdentity | undefined,
): Promise<Result> {
  checkFleet(deps, fleet);
  if (!identity) throw new ForbiddenError("enrolment needs a request signed with an AWS identity (IAM auth)");
  const body = parseWith(EnrolBodySchema, rawBody, "enrolment");
  const at = new Date(deps.now()).toISOString();
  const policy = (await deps.store.getEnrolmentPolicy(fleet)) ?? EMPTY;
  const rule = await allowedBy(deps, policy, identity);
  if (!rule) {
    await deps.store.audit({
      at,
      who: identity.arn,
      action: "thing.enrol.refused",
      target: body.thingName,
      fleets: [fleet],
      detail: { fleet, account: identity.account },
    });
    throw new ForbiddenError(
      `${identity.arn} may not enrol nodes into fleet ${fleet}: no account, role or role tag of its allow-list matches (keel fleet allow-enrol)`,
    );
  }
  checkThingForAws(body.thingName, fleet);
  parseCsr(body.csr);
  const existing = await deps.store.getThing(body.thingName);
  if (existing) return reenrol(deps, fleet, body, identity, existing.fleet, existing.enrolledBy);
  // Who enrolled it is recorded: the same principal may enrol it again (a node whose answer a cut lost).
  return addThing(deps, fleet, body, {
    who: identity.arn,
    action: "thing.enrol",
    detail: { allowedBy: rule },
    enrolledBy: identity.arn,
  });
}

/**
 * The same node enrolling again: its first answer was lost, so it has a key and no certificate. Only the
 * principal that enrolled the thing may do this (an instance role's session is the instance id), and the
 * thing's earlier certificates are retired: one node, one working key.
 */
async function reenrol(
  deps: ApiDeps,
  fleet: string,
  body: { thingName: string; csr: string },
  identity: CallerIdentity,
  existingFleet: string,
  enrolledBy: string | undefined,
): Promise<Result> {
  if (existingFleet !== fleet || enrolledBy !== identity.arn) {
    throw new ConflictError(
      `thing ${body.thingName} is already registered (fleet ${existingFleet})${enrolledBy === identity.arn ? "" : " by someone else"}`,
    );
  }
  let identityOut: Awaited<ReturnType<typeof reissueCertificate>>;
  try {
    identityOut = await reissueCertificate(deps.jobs.iot, {
      thingName: body.thingName,
      policyName: deps.thingPolicyName,
      csr: body.csr,
    });
  } catch (err) {
    throw new CloudCallError(`re-enrolling ${body.thingName} failed: ${describeError(err)}`, { cause: err });
  }
  const record = await deps.store.getThing(body.thingName);
  await deps.store.audit({
    at: new Date(deps.now()).toISOString(),
    who: identity.arn,
    action: "thing.reenrol",
    target: body.thingName,
    fleets: [fleet],
    detail: { fleet, certificateId: identityOut.certificateId, keyMadeOn: "node" },
  });
  const value: RegisteredThing = {
    thingName: body.thingName,
    fleet,
    group: record?.group ?? "",
    ...identityOut,
  };
  return { status: 200, value };
}

/**
 * `keel fleet remove`: the thing's certificates detached and INACTIVE (the node can no longer connect), its
 * groups left, the thing and its record deleted. Idempotent: removing a removed thing answers 200 with
 * `removed: false`.
 */
export async function removeThing(
  deps: ApiDeps,
  fleet: string,
  thingName: string,
  caller: string,
): Promise<Result> {
  checkFleet(deps, fleet);
  const record = await deps.store.getThing(thingName);
  if (record && record.fleet !== fleet) {
    throw new ConflictError(`thing ${thingName} is in fleet ${record.fleet}, not ${fleet}`);
  }
  let done: Awaited<ReturnType<typeof deprovisionThing>>;
  try {
    done = await deprovisionThing(deps.jobs.iot, thingName);
  } catch (err) {
    throw new CloudCallError(`removing ${thingName} failed: ${describeError(err)}`, { cause: err });
  }
  const removed = done.existed || record !== undefined;
  if (record) await deps.store.deleteThing(thingName);
  if (removed) {
    await deps.store.audit({
      at: new Date(deps.now()).toISOString(),
      who: caller,
      action: "thing.remove",
      target: thingName,
      fleets: [fleet],
      detail: { fleet, certificates: done.certificates, groups: done.groups },
    });
  }
  const value: RemovedThing = {
    thingName,
    fleet,
    removed,
    certificates: done.certificates,
    groups: done.groups,
  };
  return { status: 200, value };
}
