/**
 * The `keel.update` job document: what the rollout engine puts in each wave's IoT job and what the agent
 * accepts. Devices see URLs after AWS IoT (or the local stand-in) has replaced the presigned-URL
 * placeholders, so the device schema requires plain http(s) URLs.
 */
import { z } from "zod";
import { type MaintenanceWindow, MaintenanceWindowsSchema } from "./maintenance-window.ts";
import { SemverSchema } from "./version.ts";

/** AWS IoT Jobs limit on a job document (docs/iot-jobs.md §3). */
export const MAX_JOB_DOCUMENT_BYTES = 32 * 1024;
export const JOB_OPERATION = "keel.update";

export const RolloutIdSchema = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[a-z0-9][a-z0-9-]*$/, "must be lower-case letters, digits and -");

const HttpUrlSchema = z
  .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
  .max(4096, "URL is longer than 4096 characters");

export const InstallPolicySchema = z.strictObject({
  /** Seconds after boot within which every health check must pass, else roll back. */
  healthDeadlineSeconds: z.number().int().min(5).max(86400).default(300),
  /** Read the slot back after writing and hash it again before switching the bootloader. */
  readBack: z.boolean().default(true),
});
export type InstallPolicy = z.infer<typeof InstallPolicySchema>;

export const JobDocumentSchema = z.strictObject({
  operation: z.literal(JOB_OPERATION),
  schemaVersion: z.literal(1),
  rolloutId: RolloutIdSchema,
  version: SemverSchema,
  manifestUrl: HttpUrlSchema,
  imageUrl: HttpUrlSchema,
  /** Newer trust roots (root.N+1.json, …) in order, for devices to walk forward before verifying. */
  rootUrls: z.array(HttpUrlSchema).max(16).default([]),
  policy: InstallPolicySchema.default({ healthDeadlineSeconds: 300, readBack: true }),
  /**
   * The fleet's maintenance windows: the agent begins a download or a reboot only inside one
   * (docs/fleets.md#maintenance-windows). Absent: no restriction.
   */
  maintenanceWindows: MaintenanceWindowsSchema.optional(),
  /**
   * A fleet's convergence job (docs/fleets.md#target-release-and-convergence): it moves nodes that are
   * not on the fleet's target. Such a job never installs a release that rolled back on the node.
   */
  convergence: z.literal(true).optional(),
  /**
   * An operator's retry that explicitly includes nodes where this release rolled back: only such a job
   * may install a release the node remembers as rolled back. Never set on convergence jobs.
   */
  includeRolledBack: z.literal(true).optional(),
});
export type JobDocument = z.infer<typeof JobDocumentSchema>;
export type JobDocumentInput = z.input<typeof JobDocumentSchema>;

/** The placeholder AWS IoT replaces with a fresh presigned GET URL on every delivery (§3). */
export function presignedPlaceholder(region: string, bucket: string, key: string): string {
  return `\${aws:iot:s3-presigned-url:https://s3.${region}.amazonaws.com/${bucket}/${key}}`;
}

/** Builds the document the cloud submits, with placeholders where devices will see presigned URLs. */
export function buildJobDocument(input: {
  rolloutId: string;
  version: string;
  region: string;
  bucket: string;
  manifestKey: string;
  imageKey: string;
  rootKeys?: string[];
  policy?: Partial<InstallPolicy>;
  maintenanceWindows?: readonly MaintenanceWindow[];
  convergence?: boolean;
  includeRolledBack?: boolean;
}): Record<string, unknown> {
  return {
    operation: JOB_OPERATION,
    schemaVersion: 1,
    rolloutId: input.rolloutId,
    version: input.version,
    manifestUrl: presignedPlaceholder(input.region, input.bucket, input.manifestKey),
    imageUrl: presignedPlaceholder(input.region, input.bucket, input.imageKey),
    rootUrls: (input.rootKeys ?? []).map((k) => presignedPlaceholder(input.region, input.bucket, k)),
    policy: InstallPolicySchema.parse(input.policy ?? {}),
    ...(input.maintenanceWindows?.length ? { maintenanceWindows: input.maintenanceWindows } : {}),
    ...(input.convergence ? { convergence: true } : {}),
    ...(input.includeRolledBack ? { includeRolledBack: true } : {}),
  };
}
