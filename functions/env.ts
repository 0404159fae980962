/**
 * Lambda configuration, read once and validated (docs/style.md). Each handler module parses
 * `process.env` at load; the local wiring passes its own record through the same schema, so both worlds
 * fail the same way on a missing or malformed variable.
 */
import { z } from "zod";
import { parseWith } from "../core/parse.ts";

const optionalUrl = z.url().optional();

export const EnvSchema = z.object({
  TABLE_NAME: z.string().min(1),
  BUCKET_NAME: z.string().min(1),
  /** Role AWS IoT assumes to presign the job document's S3 placeholders (read `releases/*` only). */
  PRESIGN_ROLE_ARN: z.string().min(20).max(2048).optional(),
  /** When set, new device certificates get this IoT policy; the local stand-in authorizes by itself. */
  THING_POLICY_NAME: z.string().min(1).optional(),
  /**
   * Fleet provisioning by claim (docs/fleets.md#fleet-provisioning-by-claim): the pre-provisioning hook
   * Lambda every fleet template names, and the role AWS IoT provisions with. Unset: no claim certificates.
   */
  PROVISIONING_HOOK_ARN: z.string().min(20).max(2048).optional(),
  PROVISIONING_ROLE_ARN: z.string().min(20).max(2048).optional(),
  /** Comma list of fleets the API accepts; empty = any fleet name. */
  FLEETS: z
    .string()
    .optional()
    .transform((s) =>
      (s ?? "")
        .split(",")
        .map((f) => f.trim())
        .filter((f) => f.length > 0),
    ),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  /** Set by the Lambda runtime; locally the wiring sets the dummy credentials. */
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
  /** Local endpoints; unset in AWS. */
  S3_ENDPOINT: optionalUrl,
  DYNAMODB_ENDPOINT: optionalUrl,
  IOT_ENDPOINT: optionalUrl,
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
});
export type Env = z.infer<typeof EnvSchema>;

export function parseEnv(record: Record<string, string | undefined>): Env {
  return parseWith(EnvSchema, record, "Lambda environment");
}

/** A variable only some handlers need: present, or the handler refuses to load. */
export function required<K extends keyof Env>(env: Env, name: K): NonNullable<Env[K]> {
  const v = env[name];
  if (v === undefined || v === null) throw new Error(`Lambda environment: ${String(name)} is required`);
  return v as NonNullable<Env[K]>;
}
