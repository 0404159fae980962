/**
 * Job and job-execution events (docs/iot-jobs.md) as they reach advance-rollout through the
 * IoT rule, and what we keep of them: the device's outcome, then a gate run for that rollout only.
 */
import { z } from "zod";
import { parseWith } from "../../core/parse.ts";
import type { RolloutDeps } from "../deps.ts";
import { advanceRollout } from "../rollout/advance.ts";
import { isConvergenceJobId } from "../rollout/convergence.ts";
import { FAILURE_STATUSES, failureNeedsGate, parseJobId } from "../rollout/engine.ts";

const StatusDetailsSchema = z.record(z.string(), z.unknown()).transform((m) => {
  // The control plane wraps details as {detailsMap}; events and MQTT send the flat map.
  const flat =
    typeof m.detailsMap === "object" && m.detailsMap !== null ? (m.detailsMap as Record<string, unknown>) : m;
  return Object.fromEntries(
    Object.entries(flat).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
  );
});

export const JobExecutionEventSchema = z.object({
  eventType: z.literal("JOB_EXECUTION"),
  jobId: z.string(),
  thingArn: z.string(),
  status: z.string(),
  statusDetails: StatusDetailsSchema.optional(),
  timestamp: z.number().optional(),
});
export const JobEventSchema = z.object({ eventType: z.literal("JOB"), jobId: z.string() });
export const IotEventSchema = z.discriminatedUnion("eventType", [JobExecutionEventSchema, JobEventSchema]);
export type IotJobEvent = z.infer<typeof IotEventSchema>;

export function isIotEvent(event: unknown): boolean {
  return typeof event === "object" && event !== null && "eventType" in event;
}

/** Epoch seconds (10 digits) or milliseconds (13 digits): AWS documents both (docs/iot-jobs.md; units unconfirmed). */
const toMs = (t: number) => (t < 1e11 ? t * 1000 : t);

export async function handleIotEvent(deps: RolloutDeps, raw: unknown): Promise<void> {
  const e = parseWith(IotEventSchema, raw, "IoT job event");
  if (isConvergenceJobId(e.jobId)) {
    // A node moved (or not) by its fleet's convergence job: only its record changes; no rollout to gate.
    if (e.eventType === "JOB_EXECUTION") await recordConvergenceOutcome(deps, e);
    return;
  }
  const ref = parseJobId(e.jobId);
  if (!ref) {
    deps.log.debug("event for a job that is not ours", { jobId: e.jobId });
    return;
  }
  if (e.eventType === "JOB_EXECUTION") {
    const thingName = e.thingArn.slice(e.thingArn.lastIndexOf("/") + 1);
    const at = toMs(e.timestamp ?? deps.now());
    const wave = ref.waveIndex + 1;
    const { stored, previous } = await deps.store.recordDeviceOutcome(ref.rolloutId, {
      thingName,
      wave,
      status: e.status,
      ...(e.statusDetails ? { statusDetails: e.statusDetails } : {}),
      at,
    });
    const rollout = await deps.store.getRollout(ref.rolloutId);
    if (rollout) {
      await deps.store.updateThingOutcome(
        thingName,
        e.status,
        rollout.id,
        e.status === "SUCCEEDED" ? rollout.release : undefined,
        new Date(at).toISOString(),
      );
    }
    // Only a failure can need the gate now (to abort early). Successes are counted by the job's own
    // `completed` event and the schedule, so DescribeJob calls do not grow with the number of devices;
    // failures are counted here and run the gate only when they could pass the threshold.
    const newFailure =
      stored &&
      FAILURE_STATUSES.has(e.status) &&
      !(previous?.wave === wave && FAILURE_STATUSES.has(previous.status));
    if (!rollout || !newFailure) return;
    const failures = await deps.store.addWaveFailure(ref.rolloutId, ref.waveIndex);
    if (!failureNeedsGate(rollout, ref.waveIndex, failures)) return;
  }
  await advanceRollout(deps, ref.rolloutId);
}

/** The version a converged node reports (statusDetails.version on SUCCEEDED) goes into its thing record. */
async function recordConvergenceOutcome(
  deps: RolloutDeps,
  e: z.infer<typeof JobExecutionEventSchema>,
): Promise<void> {
  const thingName = e.thingArn.slice(e.thingArn.lastIndexOf("/") + 1);
  const version = e.status === "SUCCEEDED" ? e.statusDetails?.version : undefined;
  const at = new Date(toMs(e.timestamp ?? deps.now())).toISOString();
  await deps.store.updateThingOutcome(thingName, e.status, e.jobId, version, at);
}
