/**
 * The stack's settings: what can vary between deployments (fleets, log retention, removal policy,
 * physical names). Props and `-c key=value` context go through the same zod schema, so a typo in either
 * stops synth with the field and the reason instead of deploying something half-configured.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Node } from "constructs";
import { z } from "zod";
import { parseWith } from "../core/parse.ts";
import { FleetNameSchema } from "../functions/rollout/model.ts";

/** The retention periods CloudWatch Logs accepts (numeric members of RetentionDays). */
export const RETENTION_DAYS: readonly number[] = Object.values(RetentionDays).filter(
  (v): v is number => typeof v === "number",
);

export const DEFAULT_STACK_NAME = "Keel";
export const DEFAULT_LOG_RETENTION_DAYS = 30;

export const KeelSettingsSchema = z.object({
  /** Fleets the rollout API accepts; empty accepts any valid fleet name (functions/env.ts FLEETS). */
  fleets: z
    .array(FleetNameSchema)
    .max(100)
    .refine((f) => new Set(f).size === f.length, "fleet names must be unique")
    .default([]),
  logRetentionDays: z
    .number()
    .int()
    .refine((d) => RETENTION_DAYS.includes(d), {
      message: `must be one of the CloudWatch Logs retention periods: ${RETENTION_DAYS.join(", ")}`,
    })
    .default(DEFAULT_LOG_RETENTION_DAYS),
  /** retain (default) keeps the bucket and table when the stack is deleted; destroy deletes them too. */
  removalPolicy: z.enum(["retain", "destroy"]).default("retain"),
  /** S3 bucket naming rules (3–63 lowercase letters, digits, dots and hyphens). */
  bucketName: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be a valid S3 bucket name")
    .optional(),
  tableName: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{3,255}$/, "must be a valid DynamoDB table name")
    .optional(),
  devicePolicyName: z
    .string()
    .regex(/^[\w+=,.@-]{1,128}$/, "must be a valid IoT policy name")
    .optional(),
  /** Subscribes this address to the alarm topic (SNS sends a confirmation mail first). */
  alarmEmail: z.email().max(320).optional(),
});
export type KeelSettingsInput = z.input<typeof KeelSettingsSchema>;
export type KeelSettings = z.output<typeof KeelSettingsSchema>;

export function parseSettings(input: unknown, what: string): KeelSettings {
  return parseWith(KeelSettingsSchema, input, what);
}

export function toRemovalPolicy(policy: KeelSettings["removalPolicy"]): RemovalPolicy {
  return policy === "destroy" ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
}

/**
 * `-c` values arrive as strings (`-c fleets=edge,lab`, `-c logRetentionDays=30`); cdk.json may hold
 * real JSON types. Both shapes are accepted and then validated by KeelSettingsSchema.
 */
const ContextSchema = z.object({
  stackName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, "must be a valid CloudFormation stack name")
    .default(DEFAULT_STACK_NAME),
  fleets: z
    .union([
      z.string().transform((s) =>
        s
          .split(",")
          .map((f) => f.trim())
          .filter((f) => f.length > 0),
      ),
      z.array(z.string()),
    ])
    .optional(),
  logRetentionDays: z.coerce.number().optional(),
  removalPolicy: z.string().optional(),
  bucketName: z.string().optional(),
  tableName: z.string().optional(),
  devicePolicyName: z.string().optional(),
  alarmEmail: z.string().optional(),
});

export const CONTEXT_KEYS = Object.keys(ContextSchema.shape) as ReadonlyArray<
  keyof typeof ContextSchema.shape
>;

export interface ContextSettings {
  readonly stackName: string;
  readonly settings: KeelSettings;
}

/** Reads the stack name and settings from CDK context (`-c key=value` or cdk.json "context"). */
export function settingsFromContext(node: Node): ContextSettings {
  const raw: Record<string, unknown> = {};
  for (const key of CONTEXT_KEYS) {
    const value: unknown = node.tryGetContext(key);
    if (value !== undefined) raw[key] = value;
  }
  const { stackName, ...rest } = parseWith(ContextSchema, raw, "CDK context");
  const settings = parseSettings(rest, "CDK context");
  return { stackName, settings };
}
