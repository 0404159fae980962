/**
 * DynamoDB access for the three functions (single table, functions/table-definition.ts). Items:
 *   RELEASE#<version> / RELEASE          release record (VERIFIED | REJECTED + reason)      gsi1: RELEASES
 *   ROLLOUT#<id>      / ROLLOUT          rollout state + `version` (optimistic lock)       gsi1: ROLLOUTS#ACTIVE|DONE
 *   ROLLOUT#<id>      / DEVICE#<thing>   last job-execution outcome of a device
 *   ROLLOUT#<id>      / FAILURES#w<n>    devices of wave n that reported a failure (from job events)
 *   THING#<name>      / THING            registered device: fleet, bucket, version         gsi1: FLEET#<fleet>
 *   FLEET#<fleet>     / LOCK             the one rollout allowed to run on the fleet
 *   FLEET#<fleet>     / META             highest version/counter the fleet has reached (downgrade check)
 *   FLEET#<fleet>     / WINDOWS          the fleet's maintenance windows (functions/rollout/windows.ts)
 *   FLEET#<fleet>     / ENROLMENT        who may enrol nodes into the fleet (accounts, roles, role tags)
 *   FLEET#<fleet>     / TARGET           target release + its convergence job (optimistic lock) gsi1: FLEET-TARGETS
 *   AUDIT             / <time>#<random>  who changed what
 */
import { randomBytes } from "node:crypto";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { MaintenanceWindowsSchema } from "../core/maintenance-window.ts";
import { parseWith } from "../core/parse.ts";
import { awsErrorName, StaleStateError } from "./errors.ts";
import { type FleetTarget, FleetTargetSchema } from "./rollout/convergence.ts";
import { isActive } from "./rollout/engine.ts";
import { type DeviceOutcome, DeviceOutcomeSchema, type Rollout, RolloutSchema } from "./rollout/model.ts";
import {
  type AuditEntry,
  AuditEntrySchema,
  type EnrolmentPolicy,
  EnrolmentPolicySchema,
  type Release,
  ReleaseSchema,
  ReleaseStatus,
} from "./rollout-api/contract.ts";
import { TABLE_KEY_SCHEMA } from "./table-definition.ts";

/** The store keeps releases and audit entries in exactly the shape the API answers with. */
export type ReleaseRecord = Release;
export { ReleaseStatus };

export const ThingRecordSchema = z.object({
  thingName: z.string(),
  fleet: z.string(),
  bucket: z.number(),
  group: z.string(),
  version: z.string().optional(),
  lastStatus: z.string().optional(),
  lastRollout: z.string().optional(),
  /** The AWS principal that enrolled the node itself (POST /fleets/{fleet}/enrolments); absent when registered. */
  enrolledBy: z.string().optional(),
  registeredAt: z.string(),
  updatedAt: z.string(),
});
export type ThingRecord = z.infer<typeof ThingRecordSchema>;

export const FleetMetaSchema = z.object({
  highestVersion: z.string().optional(),
  highestCounter: z.number().optional(),
});
export type FleetMeta = z.infer<typeof FleetMetaSchema>;

export const FleetWindowsSchema = z.object({
  windows: MaintenanceWindowsSchema,
  updatedAt: z.string(),
  updatedBy: z.string(),
});
export type FleetWindows = z.infer<typeof FleetWindowsSchema>;

const K = TABLE_KEY_SCHEMA;

/** One page of a listing; `next` is the sort key of the last item when more follow. */
export interface Page<T> {
  items: T[];
  next?: string;
}

export interface AuditFilter {
  rollout?: string | undefined;
  fleet?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}
const isConditionFailure = (err: unknown) => awsErrorName(err) === "ConditionalCheckFailedException";

export class Store {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  private async get(pk: string, sk: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.ddb.send(
      new GetCommand({
        TableName: this.table,
        Key: { [K.partitionKey]: pk, [K.sortKey]: sk },
        ConsistentRead: true,
      }),
    );
    return r.Item;
  }

  private async queryAll(input: Omit<QueryCommandInput, "TableName">): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await this.ddb.send(
        new QueryCommand({ TableName: this.table, ...input, ExclusiveStartKey: start }),
      );
      out.push(...(r.Items ?? []));
      start = r.LastEvaluatedKey;
    } while (start);
    return out;
  }

  private queryGsi(pk: string, ascending = true) {
    return this.queryAll({
      IndexName: K.gsi1.name,
      KeyConditionExpression: "#pk = :pk",
      ExpressionAttributeNames: { "#pk": K.gsi1.partitionKey },
      ExpressionAttributeValues: { ":pk": pk },
      ScanIndexForward: ascending,
    });
  }

  /**
   * One page of a query: up to `limit` items after the query's start, and the key of the last one when
   * more follow. One item more than asked is read to know whether more follow, so the last page never
   * hands out a cursor to an empty one. A filter makes DynamoDB return fewer items per call: it loops.
   */
  private async pageOf<T>(
    input: Omit<QueryCommandInput, "TableName" | "Limit">,
    limit: number,
    parse: (item: Record<string, unknown>) => T,
    keyOf: (item: T) => string,
  ): Promise<Page<T>> {
    const out: T[] = [];
    let start = input.ExclusiveStartKey;
    do {
      const r = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          ...input,
          ExclusiveStartKey: start,
          Limit: limit + 1 - out.length,
        }),
      );
      for (const i of r.Items ?? []) out.push(parse(i));
      start = r.LastEvaluatedKey;
    } while (start && out.length <= limit);
    if (out.length <= limit) return { items: out };
    const items = out.slice(0, limit);
    return { items, next: keyOf(items[limit - 1] as T) };
  }

  // Releases ---------------------------------------------------------------------------------------

  async putRelease(rec: ReleaseRecord): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          [K.partitionKey]: `RELEASE#${rec.version}`,
          [K.sortKey]: "RELEASE",
          [K.gsi1.partitionKey]: "RELEASES",
          [K.gsi1.sortKey]: `${rec.registeredAt}#${rec.version}`,
          ...rec,
        },
      }),
    );
  }

  async getRelease(version: string): Promise<ReleaseRecord | undefined> {
    const item = await this.get(`RELEASE#${version}`, "RELEASE");
    return item ? parseWith(ReleaseSchema, item, `release record ${version}`) : undefined;
  }

  async listReleases(): Promise<ReleaseRecord[]> {
    const items = await this.queryGsi("RELEASES", false);
    return items.map((i) => parseWith(ReleaseSchema, i, "release record"));
  }

  // Rollouts ---------------------------------------------------------------------------------------

  /**
   * Writes the rollout if nobody else wrote since `r.version` was read (or, for a new rollout, if the id
   * is free); bumps the version. Throws StaleStateError so the caller re-reads and decides again.
   */
  async saveRollout(r: Rollout, isNew = false): Promise<Rollout> {
    const next: Rollout = isNew ? r : { ...r, version: r.version + 1 };
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            [K.partitionKey]: `ROLLOUT#${r.id}`,
            [K.sortKey]: "ROLLOUT",
            [K.gsi1.partitionKey]: isActive(next) ? "ROLLOUTS#ACTIVE" : "ROLLOUTS#DONE",
            [K.gsi1.sortKey]: `${r.createdAt}#${r.id}`,
            version: next.version,
            state: next,
          },
          ConditionExpression: isNew ? "attribute_not_exists(#pk)" : "#v = :v",
          ExpressionAttributeNames: isNew ? { "#pk": K.partitionKey } : { "#v": "version" },
          ...(isNew ? {} : { ExpressionAttributeValues: { ":v": r.version } }),
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) {
        throw new StaleStateError(`rollout ${r.id} changed since version ${r.version} was read`, {
          cause: err,
        });
      }
      throw err;
    }
    return next;
  }

  async getRollout(id: string): Promise<Rollout | undefined> {
    const item = await this.get(`ROLLOUT#${id}`, "ROLLOUT");
    return item ? parseWith(RolloutSchema, item.state, `rollout ${id}`) : undefined;
  }

  async listRollouts(which: "active" | "all"): Promise<Rollout[]> {
    const parts = which === "active" ? ["ROLLOUTS#ACTIVE"] : ["ROLLOUTS#ACTIVE", "ROLLOUTS#DONE"];
    const items = (await Promise.all(parts.map((p) => this.queryGsi(p, false)))).flat();
    return items
      .map((i) => parseWith(RolloutSchema, i.state, "rollout"))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /**
   * Rollouts newest first, `before` the sort key (`<createdAt>#<id>`) of the last one a previous page
   * returned. Active and finished rollouts live under two index keys; a page reads both and merges them,
   * so the order is by creation whatever each rollout's state, and a rollout that finishes between two
   * pages keeps its place (its sort key does not change).
   */
  async listRolloutsPage(limit: number, before?: string): Promise<Page<Rollout>> {
    const keyOf = (r: Rollout) => `${r.createdAt}#${r.id}`;
    const parts = await Promise.all(
      ["ROLLOUTS#ACTIVE", "ROLLOUTS#DONE"].map((pk) =>
        this.pageOf(
          {
            IndexName: K.gsi1.name,
            KeyConditionExpression: before ? "#pk = :pk AND #sk < :before" : "#pk = :pk",
            ExpressionAttributeNames: {
              "#pk": K.gsi1.partitionKey,
              ...(before ? { "#sk": K.gsi1.sortKey } : {}),
            },
            ExpressionAttributeValues: { ":pk": pk, ...(before ? { ":before": before } : {}) },
            ScanIndexForward: false,
          },
          limit,
          (i) => parseWith(RolloutSchema, i.state, "rollout"),
          keyOf,
        ),
      ),
    );
    const merged = parts.flatMap((p) => p.items).sort((a, b) => keyOf(b).localeCompare(keyOf(a)));
    const more = merged.length > limit || parts.some((p) => p.next !== undefined);
    const items = merged.slice(0, limit);
    const last = items[items.length - 1];
    return more && last ? { items, next: keyOf(last) } : { items };
  }

  /**
   * Latest outcome per device; events arrive unordered, so an older one never overwrites a newer one, and
   * a success in an earlier wave is never overwritten by a later wave's.
   * Returns whether it was stored and the outcome it replaced, so callers can tell a new failure from a
   * repeated event.
   */
  async recordDeviceOutcome(
    rolloutId: string,
    o: DeviceOutcome,
  ): Promise<{ stored: boolean; previous?: DeviceOutcome | undefined }> {
    try {
      const r = await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { [K.partitionKey]: `ROLLOUT#${rolloutId}`, [K.sortKey]: `DEVICE#${o.thingName}`, ...o },
          // A device that succeeded in one wave is shown under that wave: a later wave's job reaches it
          // too (a canary is in its percent wave's bucket group) and finds it already updated.
          ConditionExpression:
            "attribute_not_exists(#at) OR (#at <= :at AND NOT (#status = :succeeded AND #wave < :wave))",
          ExpressionAttributeNames: { "#at": "at", "#status": "status", "#wave": "wave" },
          ExpressionAttributeValues: { ":at": o.at, ":succeeded": "SUCCEEDED", ":wave": o.wave },
          ReturnValues: "ALL_OLD",
        }),
      );
      const previous = r.Attributes
        ? parseWith(DeviceOutcomeSchema, r.Attributes, `device outcome ${o.thingName}`)
        : undefined;
      return { stored: true, previous };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { stored: false };
    }
  }

  /** Counts one more failed device in a wave (atomic); returns the count so far. */
  async addWaveFailure(rolloutId: string, waveIndex: number): Promise<number> {
    const r = await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { [K.partitionKey]: `ROLLOUT#${rolloutId}`, [K.sortKey]: `FAILURES#w${waveIndex + 1}` },
        UpdateExpression: "ADD failures :one",
        ExpressionAttributeValues: { ":one": 1 },
        ReturnValues: "UPDATED_NEW",
      }),
    );
    const n = r.Attributes?.failures;
    return typeof n === "number" ? n : 1;
  }

  async listDeviceOutcomes(rolloutId: string): Promise<DeviceOutcome[]> {
    const items = await this.queryAll({
      KeyConditionExpression: "#pk = :pk AND begins_with(#sk, :sk)",
      ExpressionAttributeNames: { "#pk": K.partitionKey, "#sk": K.sortKey },
      ExpressionAttributeValues: { ":pk": `ROLLOUT#${rolloutId}`, ":sk": "DEVICE#" },
    });
    return items.map((i) => parseWith(DeviceOutcomeSchema, i, "device outcome"));
  }

  /** Device outcomes of a rollout by thing name, `after` the last name a previous page returned. */
  async listDeviceOutcomesPage(
    rolloutId: string,
    limit: number,
    after?: string,
  ): Promise<Page<DeviceOutcome>> {
    const pk = `ROLLOUT#${rolloutId}`;
    return this.pageOf(
      {
        KeyConditionExpression: "#pk = :pk AND begins_with(#sk, :sk)",
        ExpressionAttributeNames: { "#pk": K.partitionKey, "#sk": K.sortKey },
        ExpressionAttributeValues: { ":pk": pk, ":sk": "DEVICE#" },
        ...(after ? { ExclusiveStartKey: { [K.partitionKey]: pk, [K.sortKey]: `DEVICE#${after}` } } : {}),
      },
      limit,
      (i) => parseWith(DeviceOutcomeSchema, i, "device outcome"),
      (o) => o.thingName,
    );
  }

  // Fleets and things ------------------------------------------------------------------------------

  async getFleetLock(fleet: string): Promise<string | undefined> {
    const item = await this.get(`FLEET#${fleet}`, "LOCK");
    return typeof item?.rolloutId === "string" ? item.rolloutId : undefined;
  }

  /** Takes the fleet for `rolloutId` if it still holds what the caller saw (`seen`, or nothing). */
  async takeFleetLock(fleet: string, rolloutId: string, seen: string | undefined): Promise<boolean> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "LOCK", rolloutId },
          ConditionExpression: seen === undefined ? "attribute_not_exists(rolloutId)" : "rolloutId = :seen",
          ...(seen === undefined ? {} : { ExpressionAttributeValues: { ":seen": seen } }),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Frees the fleet only if this rollout still holds it (a forced rollout may have taken it over). */
  async releaseFleetLock(fleet: string, rolloutId: string): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "LOCK" },
          UpdateExpression: "REMOVE rolloutId",
          ConditionExpression: "rolloutId = :id",
          ExpressionAttributeValues: { ":id": rolloutId },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async getFleetMeta(fleet: string): Promise<FleetMeta> {
    const item = await this.get(`FLEET#${fleet}`, "META");
    return item ? parseWith(FleetMetaSchema, item, `fleet ${fleet}`) : {};
  }

  /** Raises the fleet's high-water mark; never lowers it (concurrent writers race safely). */
  async raiseFleetMeta(fleet: string, version: string, counter: number | undefined): Promise<void> {
    const c = counter ?? -1;
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "META" },
          UpdateExpression: "SET highestVersion = :v, highestCounter = :c",
          ConditionExpression: "attribute_not_exists(highestCounter) OR highestCounter <= :c",
          ExpressionAttributeValues: { ":v": version, ":c": c },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async getThing(name: string): Promise<ThingRecord | undefined> {
    const item = await this.get(`THING#${name}`, "THING");
    return item ? parseWith(ThingRecordSchema, item, `thing ${name}`) : undefined;
  }

  async putThing(t: ThingRecord): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          [K.partitionKey]: `THING#${t.thingName}`,
          [K.sortKey]: "THING",
          [K.gsi1.partitionKey]: `FLEET#${t.fleet}`,
          [K.gsi1.sortKey]: t.thingName,
          ...t,
        },
      }),
    );
  }

  /** A device's reported outcome; things registered elsewhere (no record) are left alone. */
  async updateThingOutcome(
    name: string,
    status: string,
    rolloutId: string,
    version: string | undefined,
    at: string,
  ): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [K.partitionKey]: `THING#${name}`, [K.sortKey]: "THING" },
          UpdateExpression: `SET lastStatus = :s, lastRollout = :r, updatedAt = :at${version ? ", version = :ver" : ""}`,
          ConditionExpression: "attribute_exists(#pk)",
          ExpressionAttributeNames: { "#pk": K.partitionKey },
          ExpressionAttributeValues: {
            ":s": status,
            ":r": rolloutId,
            ":at": at,
            ...(version ? { ":ver": version } : {}),
          },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /** Whether any device is registered in the fleet: one item read, however large the fleet. */
  async fleetHasThings(fleet: string): Promise<boolean> {
    const r = await this.ddb.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: K.gsi1.name,
        KeyConditionExpression: "#pk = :pk",
        ExpressionAttributeNames: { "#pk": K.gsi1.partitionKey },
        ExpressionAttributeValues: { ":pk": `FLEET#${fleet}` },
        Limit: 1,
      }),
    );
    return (r.Items?.length ?? 0) > 0;
  }

  async listThings(fleet: string): Promise<ThingRecord[]> {
    const items = await this.queryGsi(`FLEET#${fleet}`);
    return items.map((i) => parseWith(ThingRecordSchema, i, "thing"));
  }

  /** A fleet's things by name, `after` the last name a previous page returned. */
  async listThingsPage(fleet: string, limit: number, after?: string): Promise<Page<ThingRecord>> {
    return this.pageOf(
      {
        IndexName: K.gsi1.name,
        KeyConditionExpression: after ? "#pk = :pk AND #sk > :after" : "#pk = :pk",
        ExpressionAttributeNames: { "#pk": K.gsi1.partitionKey, ...(after ? { "#sk": K.gsi1.sortKey } : {}) },
        ExpressionAttributeValues: { ":pk": `FLEET#${fleet}`, ...(after ? { ":after": after } : {}) },
      },
      limit,
      (i) => parseWith(ThingRecordSchema, i, "thing"),
      (t) => t.thingName,
    );
  }

  // Audit ------------------------------------------------------------------------------------------

  async audit(e: AuditEntry): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { [K.partitionKey]: "AUDIT", [K.sortKey]: `${e.at}#${randomBytes(6).toString("hex")}`, ...e },
      }),
    );
  }

  /** Every audit entry, oldest first (tests; the API pages with listAuditPage). */
  async listAudit(): Promise<AuditEntry[]> {
    const items = await this.queryAll({
      KeyConditionExpression: "#pk = :pk",
      ExpressionAttributeNames: { "#pk": K.partitionKey },
      ExpressionAttributeValues: { ":pk": "AUDIT" },
    });
    return items.map((i) => parseWith(AuditEntrySchema, stripKeys(i), "audit entry"));
  }

  /**
   * Audit entries newest first, in [since, until), of one rollout and/or one fleet, `before` the sort key
   * (`<at>#<random>`) of the last entry a previous page returned.
   */
  async listAuditPage(
    filter: AuditFilter,
    limit: number,
    before?: string,
  ): Promise<Page<AuditEntry & { key: string }>> {
    const names: Record<string, string> = { "#pk": K.partitionKey, "#sk": K.sortKey };
    const values: Record<string, unknown> = {
      ":pk": "AUDIT",
      // ISO instants sort as text; every sort key is `<at>#…`, so `until` itself is excluded.
      ":from": filter.since ?? "0",
      ":to": filter.until ?? "~",
    };
    const conditions: string[] = [];
    if (filter.rollout) {
      names["#target"] = "target";
      values[":rollout"] = filter.rollout;
      conditions.push("#target = :rollout");
    }
    if (filter.fleet) {
      names["#fleets"] = "fleets";
      values[":fleet"] = filter.fleet;
      conditions.push("contains(#fleets, :fleet)");
    }
    return this.pageOf(
      {
        KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :from AND :to",
        ...(conditions.length ? { FilterExpression: conditions.join(" AND ") } : {}),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ScanIndexForward: false,
        ...(before ? { ExclusiveStartKey: { [K.partitionKey]: "AUDIT", [K.sortKey]: before } } : {}),
      },
      limit,
      (i) => ({ ...parseWith(AuditEntrySchema, stripKeys(i), "audit entry"), key: String(i[K.sortKey]) }),
      (e) => e.key,
    );
  }

  // Maintenance windows (FLEET#<fleet> / WINDOWS) ---------------------------------------------------

  /** A fleet's maintenance windows; none stored = no restriction. */
  async getFleetWindows(fleet: string): Promise<FleetWindows | undefined> {
    const item = await this.get(`FLEET#${fleet}`, "WINDOWS");
    return item ? parseWith(FleetWindowsSchema, stripKeys(item), `fleet ${fleet} windows`) : undefined;
  }

  /** Replaces a fleet's windows (an empty list clears them). */
  async putFleetWindows(fleet: string, w: FleetWindows): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "WINDOWS", ...w },
      }),
    );
  }

  // ---- Enrolment (issue 12): FLEET#<fleet> / ENROLMENT, the allow-list; removing a thing's record ----

  async getEnrolmentPolicy(fleet: string): Promise<EnrolmentPolicy | undefined> {
    const item = await this.get(`FLEET#${fleet}`, "ENROLMENT");
    return item ? parseWith(EnrolmentPolicySchema, stripKeys(item), `fleet ${fleet} enrolment`) : undefined;
  }

  async putEnrolmentPolicy(fleet: string, policy: EnrolmentPolicy): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "ENROLMENT", ...policy },
      }),
    );
  }

  /** Forgets a device (`keel fleet remove`); absent already is fine (removal is idempotent). */
  async deleteThing(name: string): Promise<void> {
    await this.ddb.send(
      new DeleteCommand({
        TableName: this.table,
        Key: { [K.partitionKey]: `THING#${name}`, [K.sortKey]: "THING" },
      }),
    );
  }

  // Fleet target and convergence (issue 12: FLEET#<fleet>/TARGET) -----------------------------------

  async getFleetTarget(fleet: string): Promise<FleetTarget | undefined> {
    const item = await this.get(`FLEET#${fleet}`, "TARGET");
    return item ? parseWith(FleetTargetSchema, item.state, `fleet ${fleet} target`) : undefined;
  }

  /**
   * Writes the target if nobody else wrote since `t.version` was read (or, for the first target, if the
   * fleet has none); bumps the version. Throws StaleStateError so the caller re-reads and decides again.
   */
  async saveFleetTarget(t: FleetTarget, isNew = false): Promise<FleetTarget> {
    const next: FleetTarget = isNew ? t : { ...t, version: t.version + 1 };
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            [K.partitionKey]: `FLEET#${t.fleet}`,
            [K.sortKey]: "TARGET",
            [K.gsi1.partitionKey]: "FLEET-TARGETS",
            [K.gsi1.sortKey]: t.fleet,
            version: next.version,
            state: next,
          },
          ConditionExpression: isNew ? "attribute_not_exists(#pk)" : "#v = :v",
          ExpressionAttributeNames: isNew ? { "#pk": K.partitionKey } : { "#v": "version" },
          ...(isNew ? {} : { ExpressionAttributeValues: { ":v": t.version } }),
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) {
        throw new StaleStateError(`fleet ${t.fleet} target changed since version ${t.version} was read`, {
          cause: err,
        });
      }
      throw err;
    }
    return next;
  }

  /** Every fleet that has a target: one query, however many fleets. */
  async listFleetTargets(): Promise<FleetTarget[]> {
    const items = await this.queryGsi("FLEET-TARGETS");
    return items.map((i) => parseWith(FleetTargetSchema, i.state, "fleet target"));
  }
}

/** An item without the table's key attributes: what the item stores of the record itself. */
function stripKeys(item: Record<string, unknown>): Record<string, unknown> {
  const { [K.partitionKey]: _pk, [K.sortKey]: _sk, ...rest } = item;
  return rest;
}
