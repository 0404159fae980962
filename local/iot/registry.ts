/**
 * The IoT registry: things, thing groups (nested through parentGroupName), memberships, certificate
 * records and the principals attached to things. It is also the DeviceAuthority the brokers consult on
 * every connect (AWS semantics: an ACTIVE certificate attached to the thing named by the client id).
 */
import { randomUUID } from "node:crypto";
import type { DeviceAuthority, IssuedCertificate } from "../contracts.ts";
import { CLAIM_CLIENT_ID, type ClaimAccess } from "../provisioning-topics.ts";
import { IotServiceError } from "./errors.ts";
import {
  type Certificate,
  type CertificateStatus,
  getOrCreate,
  type Thing,
  type ThingGroup,
} from "./model.ts";

/** AWS IoT quotas the registry enforces. */
export const MAX_GROUPS_PER_THING = 10;
export const MAX_GROUP_DEPTH = 7;

export interface RegistryHooks {
  /** A thing's effective group set changed (joined or left a group, directly or through nesting). */
  membershipChanged(thingName: string): void;
  /** A thing is about to be deleted. */
  thingDeleted(thingName: string): void;
  dirty(): void;
}

export class Registry {
  readonly things = new Map<string, Thing>();
  readonly groups = new Map<string, ThingGroup>();
  readonly certificates = new Map<string, Certificate>();
  /** group → things that are direct members. */
  private readonly members = new Map<string, Set<string>>();
  /** group → direct child groups. */
  private readonly children = new Map<string, Set<string>>();
  private readonly listeners = new Set<() => void>();
  hooks: RegistryHooks = { membershipChanged() {}, thingDeleted() {}, dirty() {} };
  /** What a certificate's policies allow on the provisioning topics (fleet provisioning sets it). */
  claimPolicy: (certificateId: string) => ClaimAccess | undefined = () => undefined;

  constructor(
    private readonly now: () => number,
    state?: { things: Thing[]; groups: ThingGroup[]; certificates: Certificate[] },
  ) {
    for (const g of state?.groups ?? []) this.groups.set(g.groupName, g);
    for (const g of this.groups.values()) {
      if (g.parentGroupName) this.childSet(g.parentGroupName).add(g.groupName);
    }
    for (const t of state?.things ?? []) {
      this.things.set(t.thingName, t);
      for (const g of t.groups) this.memberSet(g).add(t.thingName);
    }
    for (const c of state?.certificates ?? []) this.certificates.set(c.certificateId, c);
  }

  // ---- things ----

  createThing(input: {
    thingName: string;
    thingTypeName?: string;
    attributes?: Record<string, string>;
  }): Thing {
    const existing = this.things.get(input.thingName);
    const attributes = input.attributes ?? {};
    if (existing) {
      // AWS: repeating CreateThing with the same configuration succeeds; a different one conflicts (docs/iot-jobs.md).
      const same =
        existing.thingTypeName === input.thingTypeName &&
        JSON.stringify(sorted(existing.attributes)) === JSON.stringify(sorted(attributes));
      if (same) return existing;
      throw new IotServiceError(
        "ResourceAlreadyExistsException",
        `Thing ${input.thingName} already exists in account with different attributes`,
      );
    }
    const thing: Thing = {
      thingName: input.thingName,
      thingId: randomUUID(),
      thingTypeName: input.thingTypeName,
      attributes,
      version: 1,
      groups: [],
      createdAt: this.now(),
    };
    this.things.set(thing.thingName, thing);
    this.hooks.dirty();
    return thing;
  }

  thing(name: string): Thing {
    const t = this.things.get(name);
    if (!t) throw new IotServiceError("ResourceNotFoundException", `Thing ${name} cannot be found.`);
    return t;
  }

  deleteThing(name: string, expectedVersion?: number): void {
    const t = this.things.get(name);
    // AWS: deleting a thing that does not exist succeeds (DeleteThing API reference).
    if (!t) return;
    if (expectedVersion !== undefined && expectedVersion !== t.version) {
      throw new IotServiceError(
        "VersionConflictException",
        `The version for thing ${name} does not match the expected version.`,
      );
    }
    const attached = [...this.certificates.values()].filter((c) => c.things.includes(name));
    if (attached.length > 0) {
      // [unconfirmed] AWS has refused to delete things with attached principals; refusing is the safer
      // reading because it never silently unbinds a device's certificate.
      throw new IotServiceError(
        "InvalidRequestException",
        `Cannot delete thing ${name}: detach its principals first (${attached.map((c) => c.certificateId.slice(0, 12)).join(", ")})`,
      );
    }
    this.hooks.thingDeleted(name);
    for (const g of t.groups) this.members.get(g)?.delete(name);
    this.things.delete(name);
    this.hooks.dirty();
  }

  // ---- groups ----

  createThingGroup(input: {
    groupName: string;
    parentGroupName?: string;
    description?: string;
    attributes?: Record<string, string>;
  }): ThingGroup {
    const existing = this.groups.get(input.groupName);
    if (existing) {
      // An identical repeat returns 200 (docs/iot-jobs.md); anything else already exists.
      if (
        existing.parentGroupName === input.parentGroupName &&
        existing.description === input.description &&
        JSON.stringify(sorted(existing.attributes)) === JSON.stringify(sorted(input.attributes ?? {}))
      ) {
        return existing;
      }
      throw new IotServiceError(
        "ResourceAlreadyExistsException",
        `Thing Group ${input.groupName} already exists with different properties`,
      );
    }
    if (input.parentGroupName !== undefined) {
      this.group(input.parentGroupName);
      if (this.ancestors(input.parentGroupName).length + 1 >= MAX_GROUP_DEPTH) {
        throw new IotServiceError(
          "InvalidRequestException",
          `Thing group hierarchy is limited to a depth of ${MAX_GROUP_DEPTH}`,
        );
      }
    }
    const g: ThingGroup = {
      groupName: input.groupName,
      groupId: randomUUID(),
      parentGroupName: input.parentGroupName,
      description: input.description,
      attributes: input.attributes ?? {},
      version: 1,
      createdAt: this.now(),
    };
    this.groups.set(g.groupName, g);
    if (g.parentGroupName) this.childSet(g.parentGroupName).add(g.groupName);
    this.hooks.dirty();
    return g;
  }

  group(name: string): ThingGroup {
    const g = this.groups.get(name);
    if (!g) throw new IotServiceError("ResourceNotFoundException", `Thing Group ${name} does not exist`);
    return g;
  }

  /** Names of the group's ancestors, nearest first. */
  ancestors(name: string): string[] {
    const out: string[] = [];
    for (let p = this.groups.get(name)?.parentGroupName; p; p = this.groups.get(p)?.parentGroupName)
      out.push(p);
    return out;
  }

  /** The group and all groups nested under it. */
  descendants(name: string): string[] {
    const out = [name];
    for (let i = 0; i < out.length; i++) {
      for (const c of this.children.get(out[i] as string) ?? []) out.push(c);
    }
    return out;
  }

  listThingGroups(filter: {
    parentGroup?: string;
    namePrefixFilter?: string;
    recursive?: boolean;
  }): ThingGroup[] {
    let names: string[];
    if (filter.parentGroup !== undefined) {
      this.group(filter.parentGroup);
      names =
        filter.recursive === false
          ? [...(this.children.get(filter.parentGroup) ?? [])]
          : this.descendants(filter.parentGroup).slice(1);
    } else if (filter.recursive === false) {
      names = [...this.groups.values()].filter((g) => !g.parentGroupName).map((g) => g.groupName);
    } else {
      names = [...this.groups.keys()];
    }
    const prefix = filter.namePrefixFilter;
    return names
      .filter((n) => prefix === undefined || n.startsWith(prefix))
      .sort()
      .map((n) => this.group(n));
  }

  addThingToThingGroup(groupName: string, thingName: string): void {
    this.group(groupName);
    const t = this.thing(thingName);
    if (t.groups.includes(groupName)) return;
    if (t.groups.length >= MAX_GROUPS_PER_THING) {
      throw new IotServiceError(
        "InvalidRequestException",
        `Thing ${thingName} is already in ${MAX_GROUPS_PER_THING} thing groups, the maximum`,
      );
    }
    t.groups.push(groupName);
    this.memberSet(groupName).add(thingName);
    this.hooks.dirty();
    this.hooks.membershipChanged(thingName);
  }

  removeThingFromThingGroup(groupName: string, thingName: string): void {
    this.group(groupName);
    const t = this.thing(thingName);
    if (!t.groups.includes(groupName)) return;
    t.groups = t.groups.filter((g) => g !== groupName);
    this.members.get(groupName)?.delete(thingName);
    this.hooks.dirty();
    this.hooks.membershipChanged(thingName);
  }

  /** Things in the group (and, when recursive, in groups nested under it), sorted by name. */
  thingsInGroup(groupName: string, recursive: boolean): string[] {
    this.group(groupName);
    const groups = recursive ? this.descendants(groupName) : [groupName];
    const out = new Set<string>();
    for (const g of groups) for (const t of this.members.get(g) ?? []) out.add(t);
    return [...out].sort();
  }

  /** Direct groups of a thing plus all their ancestors: what a group target reaches. */
  effectiveGroups(thingName: string): Set<string> {
    const out = new Set<string>();
    for (const g of this.things.get(thingName)?.groups ?? []) {
      out.add(g);
      for (const a of this.ancestors(g)) out.add(a);
    }
    return out;
  }

  // ---- certificates and principals ----

  addCertificate(
    issued: Pick<IssuedCertificate, "certificateId" | "certificatePem">,
    active: boolean,
  ): Certificate {
    const c: Certificate = {
      certificateId: issued.certificateId,
      status: active ? "ACTIVE" : "INACTIVE",
      pem: issued.certificatePem,
      things: [],
      createdAt: this.now(),
    };
    this.certificates.set(c.certificateId, c);
    this.changed();
    return c;
  }

  certificate(id: string): Certificate {
    const c = this.certificates.get(id);
    if (!c) throw new IotServiceError("ResourceNotFoundException", `The certificate ${id} does not exist`);
    return c;
  }

  updateCertificate(id: string, status: CertificateStatus): void {
    const c = this.certificate(id);
    if (c.status === "REVOKED" && status !== "REVOKED") {
      throw new IotServiceError(
        "CertificateStateException",
        `Certificate ${id} is revoked and cannot change status`,
      );
    }
    c.status = status;
    this.changed();
  }

  attachPrincipal(thingName: string, certificateId: string): void {
    this.thing(thingName);
    const c = this.certificate(certificateId);
    if (!c.things.includes(thingName)) c.things.push(thingName);
    this.changed();
  }

  detachPrincipal(thingName: string, certificateId: string): void {
    this.thing(thingName);
    const c = this.certificate(certificateId);
    c.things = c.things.filter((t) => t !== thingName);
    this.changed();
  }

  readonly authority: DeviceAuthority = {
    checkConnect: (certificateId, clientId) => {
      const c = this.certificates.get(certificateId);
      if (!c) return `certificate ${certificateId.slice(0, 12)}… is not registered`;
      if (c.status !== "ACTIVE") return `certificate ${certificateId.slice(0, 12)}… is ${c.status}`;
      // A claim certificate belongs to no thing: any client id that can name a routing topic level.
      if (c.things.length === 0 && this.claimPolicy(certificateId)) {
        return CLAIM_CLIENT_ID.test(clientId)
          ? null
          : `client id ${clientId} is not allowed for a claim certificate`;
      }
      if (!this.things.has(clientId)) return `client id ${clientId} is not a registered thing`;
      if (!c.things.includes(clientId)) {
        return `certificate ${certificateId.slice(0, 12)}… is not attached to thing ${clientId}`;
      }
      return null;
    },
    onChange: (listener) => {
      this.listeners.add(listener);
      return () => void this.listeners.delete(listener);
    },
    listActiveCertificates: () =>
      [...this.certificates.values()]
        .filter((c) => c.status === "ACTIVE")
        .map((c) => ({ certificateId: c.certificateId, things: [...c.things] })),
    claimAccess: (certificateId) => {
      const c = this.certificates.get(certificateId);
      if (c?.status !== "ACTIVE" || c.things.length > 0) return undefined;
      return this.claimPolicy(certificateId);
    },
  };

  /** Policies or templates changed: brokers must re-read what claim certificates may do. */
  claimPoliciesChanged(): void {
    this.changed();
  }

  private changed(): void {
    this.hooks.dirty();
    for (const l of this.listeners) l();
  }

  private memberSet(group: string): Set<string> {
    return getOrCreate(this.members, group, () => new Set<string>());
  }

  private childSet(group: string): Set<string> {
    return getOrCreate(this.children, group, () => new Set<string>());
  }
}

function sorted(o: Record<string, string>): Array<[string, string]> {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}
