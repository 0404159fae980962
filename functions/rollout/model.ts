/**
 * Rollout data: the stored rollout state and the names it is built from, as zod schemas so the store
 * parses items with the same rules the API answers with; the engine works on the inferred types. The
 * API's request and response bodies are in functions/rollout-api/contract.ts.
 */
import { z } from "zod";
import { RolloutIdSchema } from "../../core/job-document.ts";

/** IoT thing names: 1–128 of `[a-zA-Z0-9:_-]` (docs/aws-limits.md). */
export const ThingNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-zA-Z0-9:_-]+$/, "may contain only letters, digits and : _ -");
/** A fleet name leaves room for the `-bNN` bucket group suffix inside IoT's 128-character group names. */
export const FleetNameSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-zA-Z0-9_-]+$/, "may contain only letters, digits, _ and -");
export const GroupNameSchema = ThingNameSchema;

export const MAX_WAVES = 20;
/** A job has at most 100 targets (bucket groups or things) (docs/iot-jobs.md). */
export const MAX_JOB_TARGETS = 100;

export const DEFAULT_FAILURE_THRESHOLD_PERCENT = 10;
export const DEFAULT_SUCCESS_THRESHOLD_PERCENT = 90;

export const RolloutStatus = {
  Running: "RUNNING",
  Paused: "PAUSED",
  Succeeded: "SUCCEEDED",
  Aborted: "ABORTED",
  /** An AWS call the rollout needs kept failing; it waits for an operator (resume retries, or abort). */
  Stalled: "STALLED",
} as const;
export type RolloutStatus = (typeof RolloutStatus)[keyof typeof RolloutStatus];
export const TERMINAL_STATUSES: readonly RolloutStatus[] = [RolloutStatus.Succeeded, RolloutStatus.Aborted];

export const WaveCountsSchema = z.object({
  queued: z.number(),
  inProgress: z.number(),
  succeeded: z.number(),
  failed: z.number(),
  rejected: z.number(),
  canceled: z.number(),
  timedOut: z.number(),
  removed: z.number(),
});
export type WaveCounts = z.infer<typeof WaveCountsSchema>;

export const WaveSchema = z.object({
  /**
   * What the wave targets: bucket groups (already resolved) or named things — canary things, or the
   * devices a retry (`keel rollout retry`) sends the release to again, at most 100 per wave.
   */
  kind: z.enum(["percent", "canary", "things"]),
  percent: z.number().optional(),
  things: z.array(z.string()).optional(),
  groups: z.array(z.string()).optional(),
  bakeSeconds: z.number(),
  failureThresholdPercent: z.number(),
  successThresholdPercent: z.number(),
  jobId: z.string(),
  startedAt: z.string().optional(),
  /**
   * The invocation that won the conditional write to create this wave's job, and when. Only it calls
   * IoT; others wait for the job (or for the claim to lapse, if its holder died before finishing).
   */
  jobClaim: z.object({ by: z.string(), at: z.string() }).optional(),
  jobCreatedAt: z.string().optional(),
  counts: WaveCountsSchema.optional(),
  thresholdMetAt: z.string().optional(),
  completedAt: z.string().optional(),
});
export type Wave = z.infer<typeof WaveSchema>;

export const TimelineEntrySchema = z.object({
  at: z.string(),
  event: z.string(),
  detail: z.string().optional(),
  by: z.string().optional(),
});
export type TimelineEntry = z.infer<typeof TimelineEntrySchema>;

export const EffectFailureSchema = z.object({
  effect: z.enum(["create-job", "cancel-job", "release-locks"]),
  attempts: z.int().min(1),
  error: z.string(),
  firstAt: z.string(),
  lastAt: z.string(),
  stalled: z.boolean(),
});
export type EffectFailure = z.infer<typeof EffectFailureSchema>;

export const RolloutSchema = z.object({
  id: RolloutIdSchema,
  release: z.string(),
  releaseCounter: z.number(),
  manifestKey: z.string(),
  imageKey: z.string(),
  fleets: z.array(z.string()),
  thingGroups: z.array(z.string()),
  waves: z.array(WaveSchema).min(1),
  current: z.int().min(0),
  status: z.enum(["RUNNING", "PAUSED", "SUCCEEDED", "ABORTED", "STALLED"]),
  reason: z.string().optional(),
  maximumPerMinute: z.number(),
  inProgressTimeoutMinutes: z.number(),
  healthDeadlineSeconds: z.number(),
  forced: z.boolean(),
  createdAt: z.string(),
  createdBy: z.string(),
  updatedAt: z.string(),
  /** Follow-up work a state change left: the current wave's job canceled, fleet locks released. */
  cancelDone: z.boolean().optional(),
  locksReleased: z.boolean().optional(),
  /**
   * ABORTED only: the aborted wave's counts are final — no execution queued or in progress any more, or
   * the in-progress timeout has passed. Until then the engine keeps reading them, so devices that finish
   * (fail and roll back, say) after the abort show in the wave's counts.
   */
  settled: z.boolean().optional(),
  /**
   * The effect (an AWS call) that failed on its latest attempts, until it succeeds: how often, since when,
   * the last error, and whether it is stalled (attempts used up, or an error no retry can fix).
   */
  effectFailure: EffectFailureSchema.optional(),
  timeline: z.array(TimelineEntrySchema),
  /**
   * RUNNING but outside its fleets' maintenance windows (docs/fleets.md#maintenance-windows): no wave
   * starts or advances until they are all open (`opensAt`, when known); the current wave's devices wait
   * for a window themselves. Absent while inside a window or when the fleets have no windows.
   */
  waitingForWindow: z.object({ since: z.string(), opensAt: z.string().optional() }).optional(),
  /** A retry (`keel rollout retry`): the rollout whose failed devices this one targets. */
  retryOf: RolloutIdSchema.optional(),
  /**
   * A retry that names devices where the release rolled back (`--include-rolled-back`): its job documents
   * say `includeRolledBack`, the only thing that lets an agent install a release it rolled back from.
   */
  includeRolledBack: z.literal(true).optional(),
  /** Optimistic-lock counter: every write is conditional on the version it read. */
  version: z.int().min(1),
});
export type Rollout = z.infer<typeof RolloutSchema>;

/** The last job-execution outcome a device reported in a rollout (from job events). */
export const DeviceOutcomeSchema = z.object({
  thingName: z.string(),
  wave: z.number(),
  status: z.string(),
  statusDetails: z.record(z.string(), z.string()).optional(),
  at: z.number(),
});
export type DeviceOutcome = z.infer<typeof DeviceOutcomeSchema>;

/**
 * The rollout's outcome per device, each device counted once whatever number of waves targeted it (a
 * canary device is in its percent wave's bucket groups too, so the per-wave counts include it twice).
 */
export const DeviceTotalsSchema = z.object({
  devices: z.number(),
  succeeded: z.number(),
  /** FAILED, REJECTED or TIMED_OUT. */
  failed: z.number(),
  /** Failed devices that reported they rolled back to their previous release. */
  rolledBack: z.number(),
  /** Any other status: queued, in progress, canceled, removed. */
  other: z.number(),
});
export type DeviceTotals = z.infer<typeof DeviceTotalsSchema>;
