/**
 * Fleet provisioning by claim (issue 12, docs/fleets.md#fleet-provisioning-by-claim): the rule a fleet's
 * pre-provisioning hook applies, under `FLEET#<fleet>` / `CLAIM`. Which thing names may enrol with the
 * fleet's claim certificate: a pattern (serial numbers of one factory batch) and/or an explicit list.
 * No record: nobody may enrol by claim (closed by default).
 */
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { parseWith } from "../core/parse.ts";
import { ThingNameSchema } from "./rollout/model.ts";
import { TABLE_KEY_SCHEMA as K } from "./table-definition.ts";

/** AWS thing names; the pattern is anchored when applied, so it must match the whole name. */
export const ClaimRuleSchema = z.strictObject({
  /** A JavaScript regular expression the whole thing name must match (e.g. `edge-[0-9]{6}`). */
  thingNamePattern: z
    .string()
    .min(1)
    .max(256)
    .refine((p) => {
      try {
        new RegExp(`^(?:${p})$`, "u");
        return true;
      } catch {
        return false;
      }
    }, "must be a valid regular expression")
    .optional(),
  /** Thing names allowed one by one. */
  thingNames: z.array(ThingNameSchema).max(10_000).default([]),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
export type ClaimRule = z.output<typeof ClaimRuleSchema>;

export class ClaimStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async getClaimRule(fleet: string): Promise<ClaimRule | undefined> {
    const r = await this.ddb.send(
      new GetCommand({
        TableName: this.table,
        Key: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "CLAIM" },
      }),
    );
    if (!r.Item) return undefined;
    const { [K.partitionKey]: _pk, [K.sortKey]: _sk, ...rest } = r.Item;
    return parseWith(ClaimRuleSchema, rest, `claim rule of fleet ${fleet}`);
  }

  async putClaimRule(fleet: string, rule: ClaimRule): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { [K.partitionKey]: `FLEET#${fleet}`, [K.sortKey]: "CLAIM", ...rule },
      }),
    );
  }
}

/** Whether the rule lets `thingName` enrol; the reason when it does not. */
export function claimRuleAllows(rule: ClaimRule | undefined, thingName: string): string | null {
  if (!rule) return "the fleet has no claim rule (nobody may enrol by claim)";
  if (rule.thingNames.includes(thingName)) return null;
  if (rule.thingNamePattern && new RegExp(`^(?:${rule.thingNamePattern})$`, "u").test(thingName)) return null;
  return `${thingName} is not allowed by the fleet's claim rule`;
}
