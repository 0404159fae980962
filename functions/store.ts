/**
 * DynamoDB access for the three functions (single table, functions/table-definition.ts). Items:
 *   RELEASE#<version> / RELEASE          release record (VERIFIED | REJECTED + reason)      gsi1: RELEASES
 *   ROLLOUT#<id>      / ROLLOUT          rollout state + `version` (optimistic lock)       gsi1: ROLLOUTS#ACTIVE|DONE
 *   ROLLOUT#<id>      / DEVICE#<thing>   last job-execution outcome of a device
 *   ROLLOUT#<id>      / FAILURES#w<n>    devices of wave n that reported a failure (from job events)
 *   THING#<name>      / THING            registered device: fleet, bucket, version         gsi1: FLEET#<fleet>
 *   FLEET#<fleet>     / LOCK             the one rollout allowed to run on the fleet
 *   FLEET#<fleet>     / META             highest version/counter the fleet has reached (downgrade check)
 *   AUDIT             / <time>#<random>  who changed what
 */
import { randomBytes } from "node:crypto";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { parseWith } from "../core/parse.ts";
import { awsErrorName, StaleStateError } from "./errors.ts";
import { isActive } from "./rollout/engine.ts";
import { type DeviceOutcome, DeviceOutcomeSchema, type Rollout, RolloutSchema } from "./rollout/model.ts";
import { TABLE_KEY_SCHEMA } from "./table-definition.ts";

export const ReleaseStatus = { Verified: "VERIFIED", Rejected: "REJECTED" } as const;
export type ReleaseStatus = (typeof ReleaseStatus)[keyof typeof ReleaseStatus];

export const ReleaseRecordSchema = z.object({
  version: z.string(),
  status: z.enum(["VERIFIED", "REJECTED"]),
  reason: z.string().optional(),
  manifestKey: z.string(),
  manifestSha256: z.string(),
  imageKey: z.string().optional(),
  imageSize: z.number().optional(),
  imageSha256: z.string().optional(),
  releaseCounter: z.number().optional(),
  os: z.string().optional(),
  compatible: z.array(z.string()).optional(),
  signers: z.array(z.string()).optional(),
  rootVersion: z.number().optional(),
  expiresAt: z.string().optional(),
  registeredAt: z.string(),
});
export type ReleaseRecord = z.infer<typeof ReleaseRecordSchema>;

export const ThingRecordSchema = z.object({
  thingName: z.string(),
  fleet: z.string(),
  bucket: z.number(),
  group: z.string(),
  version: z.string().optional(),
  lastStatus: z.string().optional(),
  lastRollout: z.string().optional(),
  registeredAt: z.string(),
  updatedAt: z.string(),
});
export type ThingRecord = z.infer<typeof ThingRecordSchema>;

export const FleetMetaSchema = z.object({
  highestVersion: z.string().optional(),
  highestCounter: z.number().optional(),
});
export type FleetMeta = z.infer<typeof FleetMetaSchema>;

export const AuditEntrySchema = z.object({
  at: z.string(),
  who: z.string(),
  action: z.string(),
  target: z.string(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

const K = TABLE_KEY_SCHEMA;
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
    return item ? parseWith(ReleaseRecordSchema, item, `release record ${version}`) : undefined;
  }

  async listReleases(): Promise<ReleaseRecord[]> {
    const items = await this.queryGsi("RELEASES", false);
    return items.map((i) => parseWith(ReleaseRecordSchema, i, "release record"));
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
   * Latest outcome per device; events arrive unordered, so an older one never overwrites a newer one.
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
          ConditionExpression: "attribute_not_exists(#at) OR #at <= :at",
          ExpressionAttributeNames: { "#at": "at" },
          ExpressionAttributeValues: { ":at": o.at },
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

  // Audit ------------------------------------------------------------------------------------------

  async audit(e: AuditEntry): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { [K.partitionKey]: "AUDIT", [K.sortKey]: `${e.at}#${randomBytes(6).toString("hex")}`, ...e },
      }),
    );
  }

  async listAudit(): Promise<AuditEntry[]> {
    const items = await this.queryAll({
      KeyConditionExpression: "#pk = :pk",
      ExpressionAttributeNames: { "#pk": K.partitionKey },
      ExpressionAttributeValues: { ":pk": "AUDIT" },
    });
    return items.map((i) => parseWith(AuditEntrySchema, i, "audit entry"));
  }
}
