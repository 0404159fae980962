/**
 * The rollout API's contract: every request body, path parameter, query string and response body as a
 * zod schema. The handlers parse requests with these and build responses of these types; the CLI (and
 * the web console, through cli/api-client.ts) parse answers with the same schemas, so the two sides
 * cannot drift. Documented route by route in docs/api.md.
 */
import { z } from "zod";
import { MAX_CSR_PEM_CHARS } from "../../core/csr.ts";
import { RolloutIdSchema } from "../../core/job-document.ts";
import { MaintenanceWindowSchema, MaintenanceWindowsSchema } from "../../core/maintenance-window.ts";
import { SemverSchema } from "../../core/version.ts";
import { FleetTargetSchema } from "../rollout/convergence.ts";
import {
  DeviceOutcomeSchema,
  DeviceTotalsSchema,
  FleetNameSchema,
  GroupNameSchema,
  MAX_JOB_TARGETS,
  MAX_WAVES,
  RolloutSchema,
  ThingNameSchema,
} from "../rollout/model.ts";

export { RolloutIdSchema };

// Requests: POST /rollouts ------------------------------------------------------------------------

const gateFields = {
  /** Bake time after the success threshold is met, before the next wave starts. */
  bakeMinutes: z.number().min(0).max(10080).optional(),
  /** Same in seconds, so demos can bake for a few seconds without special cases. */
  bakeSeconds: z.number().min(0).max(604800).optional(),
  /** Abort the rollout when more than this share of the wave's devices failed, rejected or timed out. */
  failureThresholdPercent: z.number().min(0).max(100).optional(),
  /** Start baking once at least this share of the wave's devices succeeded. */
  successThresholdPercent: z.number().min(0).max(100).optional(),
};

export const PercentWaveInputSchema = z.strictObject({
  percent: z.number().gt(0).max(100),
  ...gateFields,
});
export const CanaryWaveInputSchema = z.strictObject({
  canary: z.array(ThingNameSchema).min(1).max(MAX_JOB_TARGETS),
  ...gateFields,
});
export type WaveInput = z.infer<typeof PercentWaveInputSchema> | z.infer<typeof CanaryWaveInputSchema>;
/**
 * A wave is a canary wave when it names `canary`, else a percent wave. Choosing the branch by that key,
 * instead of a plain union, lets a bad item's issues name the field and what was expected
 * (`waves[0].percent: … expected number`) rather than a bare "Invalid input" for the whole item.
 */
export const WaveInputSchema = z.unknown().transform((v, ctx): WaveInput => {
  const isCanary = typeof v === "object" && v !== null && "canary" in v;
  const r = (isCanary ? CanaryWaveInputSchema : PercentWaveInputSchema).safeParse(v);
  if (r.success) return r.data;
  for (const i of r.error.issues)
    ctx.addIssue({ code: "custom", message: i.message, path: i.path, input: v });
  return z.NEVER;
});

export const CreateRolloutBodySchema = z
  .strictObject({
    release: SemverSchema,
    fleets: z.array(FleetNameSchema).min(1).max(MAX_JOB_TARGETS).optional(),
    thingGroups: z.array(GroupNameSchema).min(1).max(MAX_JOB_TARGETS).optional(),
    waves: z.array(WaveInputSchema).min(1).max(MAX_WAVES),
    rolloutRate: z
      .strictObject({ maximumPerMinute: z.int().min(1).max(1000) })
      .default({ maximumPerMinute: 1000 }),
    inProgressTimeoutMinutes: z.int().min(1).max(10080).default(60),
    healthDeadlineSeconds: z.int().min(5).max(86400).default(300),
    force: z.boolean().default(false),
  })
  .superRefine((b, ctx) => {
    if ((b.fleets === undefined) === (b.thingGroups === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["fleets"],
        message: "give exactly one of fleets or thingGroups",
      });
    }
    let previous = 0;
    b.waves.forEach((w, i) => {
      if (w.bakeMinutes !== undefined && w.bakeSeconds !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["waves", i, "bakeSeconds"],
          message: "give bakeMinutes or bakeSeconds, not both",
        });
      }
      if (!("percent" in w)) return;
      if (w.percent <= previous) {
        ctx.addIssue({
          code: "custom",
          path: ["waves", i, "percent"],
          message: `must be more than the previous wave's ${previous}`,
        });
      }
      previous = w.percent;
    });
    const last = b.waves[b.waves.length - 1];
    if (last && !("percent" in last && last.percent === 100)) {
      ctx.addIssue({
        code: "custom",
        path: ["waves", b.waves.length - 1],
        message: "the last wave must be {percent: 100} so the rollout reaches the whole fleet",
      });
    }
  });
export type CreateRolloutBody = z.infer<typeof CreateRolloutBodySchema>;

// Requests: the other bodies ----------------------------------------------------------------------

/** POST /rollouts/{id}/pause|resume|abort. The reason becomes the abort's CancelJob comment. */
export const ActionBodySchema = z.strictObject({ reason: z.string().min(1).max(1000).optional() });
export type ActionBody = z.infer<typeof ActionBodySchema>;
export const ROLLOUT_ACTIONS = ["pause", "resume", "abort"] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

/** POST /fleets/{fleet}/things. */
export const RegisterThingBodySchema = z.strictObject({
  thingName: ThingNameSchema,
  /** The version the device was installed with at the factory, for `fleet status` until it reports. */
  version: SemverSchema.optional(),
  /**
   * A PKCS#10 CSR (PEM) made on the node: the certificate is issued for its key (CreateCertificateFromCsr)
   * and no private key is made in the cloud. Without it, CreateKeysAndCertificate as before.
   */
  csr: z.string().min(1).max(MAX_CSR_PEM_CHARS).optional(),
});
export type RegisterThingBody = z.infer<typeof RegisterThingBodySchema>;

// Path parameters ---------------------------------------------------------------------------------

export const RolloutPathSchema = z.strictObject({ id: RolloutIdSchema });
export const FleetPathSchema = z.strictObject({ fleet: FleetNameSchema });
export const RolloutActionPathSchema = z.strictObject({
  id: RolloutIdSchema,
  action: z.enum(ROLLOUT_ACTIONS),
});

// Query strings and pagination --------------------------------------------------------------------

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;

/** `limit`: a whole number 1–MAX_PAGE_LIMIT, written in decimal digits only. */
export const LimitSchema = z
  .string()
  .regex(/^[1-9]\d{0,3}$/, `must be a whole number from 1 to ${MAX_PAGE_LIMIT}`)
  .transform(Number)
  .refine((n) => n <= MAX_PAGE_LIMIT, `must be at most ${MAX_PAGE_LIMIT}`);

/** An opaque cursor as it travels: base64url text, at most 1 KB. */
export const CursorTextSchema = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[A-Za-z0-9_-]+$/, "is not a cursor this API handed out");

export const PageQuerySchema = z.strictObject({
  limit: LimitSchema.optional(),
  cursor: CursorTextSchema.optional(),
});
export type PageQuery = z.infer<typeof PageQuerySchema>;

/** An ISO 8601 UTC instant, as the audit log's `at` is written (`2026-01-02T03:04:05.678Z`). */
const InstantSchema = z.iso.datetime({ offset: false, local: false });

export const AuditQuerySchema = PageQuerySchema.extend({
  rollout: RolloutIdSchema.optional(),
  fleet: FleetNameSchema.optional(),
  /** Entries at or after this instant. */
  since: InstantSchema.optional(),
  /** Entries before this instant. */
  until: InstantSchema.optional(),
}).refine((q) => !q.since || !q.until || q.since < q.until, {
  path: ["until"],
  message: "must be after since",
});
export type AuditQuery = z.infer<typeof AuditQuerySchema>;

/** Routes that take no query parameters refuse any (a typo must not be silently ignored). */
export const NoQuerySchema = z.strictObject({});

// Responses ---------------------------------------------------------------------------------------

const nextCursor = { nextCursor: CursorTextSchema.optional() };

export type { Rollout } from "../rollout/model.ts";
export { RolloutSchema };

/** GET /rollouts: newest first, one page. */
export const RolloutListSchema = z.object({ rollouts: z.array(RolloutSchema), ...nextCursor });
export type RolloutList = z.infer<typeof RolloutListSchema>;

/**
 * GET /rollouts/{id}: the rollout, one page of its devices' outcomes (by thing name) and, on the first
 * page, their totals.
 */
export const RolloutViewSchema = RolloutSchema.extend({
  devices: z.array(DeviceOutcomeSchema).default([]),
  totals: DeviceTotalsSchema.optional(),
  /** Not finished and has fleets: whether their maintenance windows are open now, and until or from when. */
  window: z
    .object({
      restricted: z.boolean(),
      open: z.boolean(),
      closesAt: z.string().optional(),
      opensAt: z.string().optional(),
    })
    .optional(),
  ...nextCursor,
});
export type RolloutView = z.infer<typeof RolloutViewSchema>;

/** GET /fleets/{fleet}: a summary (first page only) and one page of its things, by name. */
export const FleetStatusSchema = z.object({
  fleet: z.string(),
  devices: z.number().optional(),
  versions: z.record(z.string(), z.number()).optional(),
  highestVersion: z.string().optional(),
  activeRollout: z.object({ id: z.string(), status: z.string(), release: z.string() }).optional(),
  /** The fleet's target release and its convergence job (docs/fleets.md#target-release-and-convergence). */
  target: FleetTargetSchema.optional(),
  things: z.array(
    z.object({
      thingName: z.string(),
      version: z.string().optional(),
      lastStatus: z.string().optional(),
      bucket: z.number(),
    }),
  ),
  ...nextCursor,
});
export type FleetStatus = z.infer<typeof FleetStatusSchema>;

/**
 * POST /fleets/{fleet}/things: the new device's identity. Registered without a CSR, the private key exists
 * only in this answer; with one (and on enrolment), there is none: the key never left the node.
 */
export const RegisteredThingSchema = z.object({
  thingName: z.string(),
  fleet: z.string(),
  group: z.string(),
  certificateArn: z.string().optional(),
  certificateId: z.string().optional(),
  certificatePem: z.string(),
  privateKey: z.string().optional(),
  endpoint: z.string().optional(),
});
export type RegisteredThing = z.infer<typeof RegisteredThingSchema>;

export const ReleaseStatus = { Verified: "VERIFIED", Rejected: "REJECTED" } as const;
export type ReleaseStatus = (typeof ReleaseStatus)[keyof typeof ReleaseStatus];

/** A published release as register-release recorded it (the store keeps exactly this shape). */
export const ReleaseSchema = z.object({
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
export type Release = z.infer<typeof ReleaseSchema>;

/** GET /releases: newest first. */
export const ReleaseListSchema = z.object({ releases: z.array(ReleaseSchema) });

/** One audit log entry: who changed what (the store keeps exactly this shape). */
export const AuditEntrySchema = z.object({
  at: z.string(),
  who: z.string(),
  action: z.string(),
  target: z.string(),
  /** The fleets the change concerns, for GET /audit?fleet= (absent on entries from before it existed). */
  fleets: z.array(z.string()).optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/** GET /audit: newest first, one page. */
export const AuditListSchema = z.object({ entries: z.array(AuditEntrySchema), ...nextCursor });
export type AuditList = z.infer<typeof AuditListSchema>;

/** Every non-2xx answer: a message, and for a 400 the field paths at fault. */
export const ErrorBodySchema = z.object({
  error: z.string().optional(),
  /** What a Function URL itself answers (403 before the function runs). */
  Message: z.string().optional(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

// Maintenance windows and retries (issue 12, "windows") ---------------------------------------------

/** PUT /fleets/{fleet}/windows: the fleet's windows, replacing any before; `[]` clears them. */
export const FleetWindowsBodySchema = z.strictObject({ windows: MaintenanceWindowsSchema });
export type FleetWindowsBody = z.infer<typeof FleetWindowsBodySchema>;

/** Whether a time is inside the windows, and when that changes (ISO instants). */
export const WindowStateViewSchema = z.object({
  open: z.boolean(),
  closesAt: z.string().optional(),
  opensAt: z.string().optional(),
});
export type WindowStateView = z.infer<typeof WindowStateViewSchema>;

/** GET and PUT /fleets/{fleet}/windows: the windows and their state now. */
export const FleetWindowsViewSchema = z.object({
  fleet: z.string(),
  windows: z.array(MaintenanceWindowSchema),
  updatedAt: z.string().optional(),
  updatedBy: z.string().optional(),
  at: z.string(),
  state: WindowStateViewSchema,
});
export type FleetWindowsView = z.infer<typeof FleetWindowsViewSchema>;

/** POST /rollouts/{id}/retry. */
export const RetryBodySchema = z.strictObject({
  /** Also retry devices that failed and rolled back to their previous release. */
  includeRolledBack: z.boolean().default(false),
  /** Start even if the fleet already has a rollout running (as POST /rollouts `force`). */
  force: z.boolean().default(false),
});
export type RetryBody = z.infer<typeof RetryBodySchema>;
// Enrolment (issue 12: CSR registration, self-enrolment, removal) ---------------------------------

/** POST /fleets/{fleet}/things without a CSR: the answer carries the key the cloud made. */
export const RegisteredThingWithKeySchema = RegisteredThingSchema.extend({ privateKey: z.string() });

const AccountIdSchema = z.string().regex(/^\d{12}$/, "must be a 12-digit AWS account id");
/** An IAM role ARN, with or without a path: arn:aws:iam::<account>:role/[path/]name. */
export const RoleArnSchema = z
  .string()
  .max(2048)
  .regex(
    /^arn:aws[a-z-]*:iam::\d{12}:role\/([\x21-\x7e]+\/)?[\w+=,.@-]{1,64}$/,
    "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
  );
const TagRuleSchema = z.strictObject({
  key: z.string().min(1).max(128),
  value: z.string().max(256),
});

/**
 * PUT /fleets/{fleet}/enrolment, and what GET answers: who may enrol nodes into the fleet with their own AWS
 * identity. A caller is allowed when ANY rule matches: its account, its role, or a tag its role carries.
 * All three empty: nobody (the default for a fleet never configured).
 */
export const EnrolmentPolicySchema = z.strictObject({
  accounts: z.array(AccountIdSchema).max(100).default([]),
  roles: z.array(RoleArnSchema).max(100).default([]),
  tags: z.array(TagRuleSchema).max(50).default([]),
});
export type EnrolmentPolicy = z.output<typeof EnrolmentPolicySchema>;

/** POST /fleets/{fleet}/enrolments: a node enrols itself; only its CSR leaves it. */
export const EnrolBodySchema = z.strictObject({
  thingName: ThingNameSchema,
  csr: z.string().min(1).max(MAX_CSR_PEM_CHARS),
  version: SemverSchema.optional(),
});

/** DELETE /fleets/{fleet}/things/{thing}. */
export const FleetThingPathSchema = z.strictObject({ fleet: FleetNameSchema, thing: ThingNameSchema });

/** DELETE /fleets/{fleet}/things/{thing}: what was undone (an empty list when it was already gone). */
export const RemovedThingSchema = z.object({
  thingName: z.string(),
  fleet: z.string(),
  /** False when neither AWS IoT nor the table knew the thing: a repeat, nothing to do. */
  removed: z.boolean(),
  certificates: z.array(z.string()),
  groups: z.array(z.string()),
});
export type RemovedThing = z.infer<typeof RemovedThingSchema>;
// Fleet provisioning by claim (issue 12; docs/fleets.md#fleet-provisioning-by-claim) ----------------

/** POST /fleets/{fleet}/claim-rule: which thing names may enrol with the fleet's claim certificate. */
export const ClaimRuleBodySchema = z.strictObject({
  /** A regular expression the whole thing name must match, e.g. `edge-[0-9]{6}`. */
  thingNamePattern: z.string().min(1).max(256).optional(),
  thingNames: z.array(ThingNameSchema).max(10_000).default([]),
});

/** POST /fleets/{fleet}/claim-certificates: the claim certificate to bake into factory images (key only here). */
export const ClaimCertificateSchema = z.object({
  fleet: z.string(),
  templateName: z.string(),
  certificateId: z.string(),
  certificateArn: z.string(),
  certificatePem: z.string(),
  privateKey: z.string(),
  endpoint: z.string().optional(),
});
export type ClaimCertificate = z.infer<typeof ClaimCertificateSchema>;
// Fleet target and convergence (issue 12) ---------------------------------------------------------

/** PUT /fleets/{fleet}/target: the release the fleet converges to, and why (for the audit log). */
export const SetTargetBodySchema = z.strictObject({
  release: SemverSchema,
  reason: z.string().min(1).max(1000),
  /** Accept a release that is not VERIFIED or is a downgrade for the fleet. */
  force: z.boolean().default(false),
});
export type SetTargetBody = z.infer<typeof SetTargetBodySchema>;

export type { FleetTarget } from "../rollout/convergence.ts";
/** PUT /fleets/{fleet}/target's answer: the target as stored, with its convergence job. */
export { FleetTargetSchema };
