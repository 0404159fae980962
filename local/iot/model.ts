/**
 * The stand-in's records. Defined as zod schemas because they are also what is read back from disk after
 * a restart (outside input like any other). Times are epoch milliseconds of the (possibly scaled) clock.
 */
import { z } from "zod";
import { EXECUTION_STATUS_VALUES } from "../../core/aws-limits.ts";
import { SchedulingConfigSchema } from "./maintenance-windows.ts";
import { ProvisioningStateSchema } from "./provisioning-model.ts";

/** AWS's JobExecutionStatus enum, as the limits table holds it (one list for the stand-in and the edge). */
export const EXECUTION_STATUSES = EXECUTION_STATUS_VALUES;
export const ExecutionStatusSchema = z.enum(EXECUTION_STATUSES);
export type ExecutionStatus = z.infer<typeof ExecutionStatusSchema>;
export const TERMINAL: ReadonlySet<ExecutionStatus> = new Set([
  "SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
  "REJECTED",
  "REMOVED",
  "CANCELED",
]);
export const isPending = (s: ExecutionStatus): boolean => s === "QUEUED" || s === "IN_PROGRESS";

export const ThingSchema = z.object({
  thingName: z.string(),
  thingId: z.string(),
  thingTypeName: z.string().optional(),
  attributes: z.record(z.string(), z.string()),
  version: z.number().int(),
  /** Direct group memberships (AWS: at most 10). */
  groups: z.array(z.string()),
  createdAt: z.number(),
});
export type Thing = z.infer<typeof ThingSchema>;

export const ThingGroupSchema = z.object({
  groupName: z.string(),
  groupId: z.string(),
  parentGroupName: z.string().optional(),
  description: z.string().optional(),
  attributes: z.record(z.string(), z.string()),
  version: z.number().int(),
  createdAt: z.number(),
});
export type ThingGroup = z.infer<typeof ThingGroupSchema>;

export const CertificateStatusSchema = z.enum(["ACTIVE", "INACTIVE", "REVOKED"]);
export type CertificateStatus = z.infer<typeof CertificateStatusSchema>;
export const CertificateSchema = z.object({
  certificateId: z.string(),
  status: CertificateStatusSchema,
  pem: z.string(),
  /** Things this certificate is attached to (AttachThingPrincipal). */
  things: z.array(z.string()),
  createdAt: z.number(),
});
export type Certificate = z.infer<typeof CertificateSchema>;

export const FailureTypeSchema = z.enum(["FAILED", "REJECTED", "TIMED_OUT", "ALL"]);

export const RolloutConfigSchema = z.object({
  maximumPerMinute: z.number().int().min(1).max(1000).optional(),
  exponentialRate: z
    .object({
      baseRatePerMinute: z.number().int().min(1).max(1000),
      incrementFactor: z.number().min(1.1).max(5),
      rateIncreaseCriteria: z
        .object({
          numberOfNotifiedThings: z.number().int().min(1).optional(),
          numberOfSucceededThings: z.number().int().min(1).optional(),
        })
        .refine(
          (c) => (c.numberOfNotifiedThings === undefined) !== (c.numberOfSucceededThings === undefined),
          "exactly one of numberOfNotifiedThings and numberOfSucceededThings",
        ),
    })
    .optional(),
});
export type RolloutConfig = z.infer<typeof RolloutConfigSchema>;

export const AbortConfigSchema = z.object({
  criteriaList: z
    .array(
      z.object({
        failureType: FailureTypeSchema,
        action: z.literal("CANCEL"),
        thresholdPercentage: z.number().min(0).max(100),
        minNumberOfExecutedThings: z.number().int().min(1),
      }),
    )
    .min(1),
});
export type AbortConfig = z.infer<typeof AbortConfigSchema>;

export const TimeoutConfigSchema = z.object({
  inProgressTimeoutInMinutes: z.number().int().min(1).max(10080).optional(),
});

export const RetryConfigSchema = z.object({
  criteriaList: z
    .array(
      z.object({
        failureType: z.enum(["FAILED", "TIMED_OUT", "ALL"]),
        numberOfRetries: z.number().int().min(0).max(10),
      }),
    )
    .min(1)
    .max(2),
});
export type RetryConfig = z.infer<typeof RetryConfigSchema>;

export const PresignedUrlConfigSchema = z.object({
  roleArn: z.string().min(20).max(2048).optional(),
  expiresInSec: z.number().int().min(60).max(3600).optional(),
});
export type PresignedUrlConfig = z.infer<typeof PresignedUrlConfigSchema>;

export const JobStatusSchema = z.enum([
  "IN_PROGRESS",
  "CANCELED",
  "COMPLETED",
  "DELETION_IN_PROGRESS",
  "SCHEDULED",
]);
export type JobStatus = z.infer<typeof JobStatusSchema>;

/** Per-attempt terminal tallies that abortConfig reads (each retry attempt counts, so aborts come early). */
export const TallySchema = z.object({
  SUCCEEDED: z.number().int(),
  FAILED: z.number().int(),
  REJECTED: z.number().int(),
  TIMED_OUT: z.number().int(),
});
export type Tally = z.infer<typeof TallySchema>;

export const JobSchema = z.object({
  jobId: z.string(),
  description: z.string().optional(),
  document: z.string(),
  targets: z.array(z.string()),
  targetSelection: z.enum(["SNAPSHOT", "CONTINUOUS"]),
  status: JobStatusSchema,
  forceCanceled: z.boolean(),
  reasonCode: z.string().optional(),
  comment: z.string().optional(),
  createdAt: z.number(),
  lastUpdatedAt: z.number(),
  completedAt: z.number().optional(),
  rolloutConfig: RolloutConfigSchema.optional(),
  abortConfig: AbortConfigSchema.optional(),
  timeoutConfig: TimeoutConfigSchema.optional(),
  retryConfig: RetryConfigSchema.optional(),
  presignedUrlConfig: PresignedUrlConfigSchema.optional(),
  /** Maintenance windows: executions are rolled out only inside one (local/iot/maintenance-windows.ts). */
  schedulingConfig: SchedulingConfigSchema.optional(),
  /** Things resolved from the targets that have no execution yet (rollout pacing). */
  pendingRollout: z.array(z.string()),
  /** Executions created by the rollout so far (numberOfNotifiedThings). */
  notified: z.number().int(),
  rolloutWindowStart: z.number().optional(),
  releasedInWindow: z.number().int(),
  /** numberOf…Things, by the latest execution of each thing. */
  counters: z.record(ExecutionStatusSchema, z.number().int()),
  tally: TallySchema,
});
export type Job = z.infer<typeof JobSchema>;

export const ExecutionSchema = z.object({
  jobId: z.string(),
  thingName: z.string(),
  executionNumber: z.number().int(),
  status: ExecutionStatusSchema,
  statusDetails: z.record(z.string(), z.string()),
  queuedAt: z.number(),
  startedAt: z.number().optional(),
  lastUpdatedAt: z.number(),
  versionNumber: z.number().int(),
  forceCanceled: z.boolean(),
  retryAttempt: z.number().int(),
  /** Retries already spent per failure type; carried to the next attempt. */
  retriesUsed: z.object({ FAILED: z.number().int(), TIMED_OUT: z.number().int() }),
  inProgressDeadline: z.number().optional(),
  stepDeadline: z.number().optional(),
});
export type Execution = z.infer<typeof ExecutionSchema>;

export const EventConfigSchema = z.object({ JOB: z.boolean(), JOB_EXECUTION: z.boolean() });
export type EventConfig = z.infer<typeof EventConfigSchema>;

export const PersistedStateSchema = z.object({
  version: z.literal(1),
  things: z.array(ThingSchema),
  groups: z.array(ThingGroupSchema),
  certificates: z.array(CertificateSchema),
  jobs: z.array(JobSchema),
  executions: z.array(ExecutionSchema),
  eventConfig: EventConfigSchema,
  /** Fleet provisioning's templates and policies (absent in state saved before it existed). */
  provisioning: ProvisioningStateSchema.optional(),
});
export type PersistedState = z.infer<typeof PersistedStateSchema>;

export function emptyCounters(): Record<ExecutionStatus, number> {
  return Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, 0])) as Record<ExecutionStatus, number>;
}

/** The map's value for key, created with make() on first use. */
export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
