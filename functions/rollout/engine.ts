/**
 * The rollout engine: plain functions over plain data (docs/architecture.md, advance-rollout). State comes
 * in, observed job counters come in, a new state comes out; the handlers do the I/O. Every state change
 * is written before its side effect runs, and side effects are idempotent, so a crash or a duplicate
 * invocation at any point converges on the same result.
 */
import { SchemaError } from "../../core/errors.ts";
import type { WindowState } from "../../core/maintenance-window.ts";
import { bucketGroupName, waveBuckets } from "../../core/waves.ts";
import { ConflictError } from "../errors.ts";
import type { CreateRolloutBody } from "../rollout-api/contract.ts";
import {
  DEFAULT_FAILURE_THRESHOLD_PERCENT,
  DEFAULT_SUCCESS_THRESHOLD_PERCENT,
  type DeviceOutcome,
  type DeviceTotals,
  MAX_JOB_TARGETS,
  MAX_WAVES,
  type Rollout,
  RolloutStatus,
  TERMINAL_STATUSES,
  type Wave,
  type WaveCounts,
} from "./model.ts";

const iso = (ms: number) => new Date(ms).toISOString();

/** Derived job ids make a retried CreateJob hit "already exists" instead of creating a second job. */
export function jobIdFor(rolloutId: string, waveIndex: number): string {
  return `keel-${rolloutId}-w${waveIndex + 1}`;
}

export function parseJobId(jobId: string): { rolloutId: string; waveIndex: number } | null {
  const m = /^keel-([a-z0-9][a-z0-9-]*)-w(\d+)$/.exec(jobId);
  if (!m?.[1] || !m[2]) return null;
  return { rolloutId: m[1], waveIndex: Number(m[2]) - 1 };
}

export interface ReleaseRef {
  version: string;
  releaseCounter: number;
  manifestKey: string;
  imageKey: string;
}

/** Turns a validated API body into the initial rollout: waves resolved to bucket groups or things. */
export function planRollout(input: {
  id: string;
  body: CreateRolloutBody;
  release: ReleaseRef;
  now: number;
  by: string;
}): Rollout {
  const { body, release, now } = input;
  const issues: Array<{ path: string; message: string }> = [];
  let previousPercent = 0;
  const waves: Wave[] = body.waves.map((w, i) => {
    const bakeSeconds = w.bakeSeconds ?? (w.bakeMinutes ?? 0) * 60;
    const gate = {
      bakeSeconds,
      failureThresholdPercent: w.failureThresholdPercent ?? DEFAULT_FAILURE_THRESHOLD_PERCENT,
      successThresholdPercent: w.successThresholdPercent ?? DEFAULT_SUCCESS_THRESHOLD_PERCENT,
      jobId: jobIdFor(input.id, i),
    };
    if ("canary" in w) return { kind: "canary" as const, things: [...new Set(w.canary)], ...gate };
    let groups: string[];
    if (body.fleets) {
      const buckets = waveBuckets(previousPercent, w.percent);
      if (buckets.length === 0) {
        issues.push({
          path: `waves[${i}].percent`,
          message: `${w.percent}% adds no bucket beyond the previous wave's ${previousPercent}%`,
        });
      }
      groups = body.fleets.flatMap((f) => buckets.map((b) => bucketGroupName(f, b)));
    } else {
      // Thing groups cannot be split by percent: the whole groups go in the first percent wave that
      // reaches 100, which the schema requires to be the last.
      groups = w.percent === 100 ? [...(body.thingGroups ?? [])] : [];
      if (w.percent !== 100) {
        issues.push({
          path: `waves[${i}].percent`,
          message: "with thingGroups, only canary waves and a final {percent: 100} wave are possible",
        });
      }
    }
    if (groups.length > MAX_JOB_TARGETS) {
      issues.push({
        path: `waves[${i}].percent`,
        message: `targets ${groups.length} bucket groups; a job takes at most ${MAX_JOB_TARGETS} (use smaller steps or fewer fleets)`,
      });
    }
    previousPercent = w.percent;
    return { kind: "percent" as const, percent: w.percent, groups, ...gate };
  });
  if (issues.length > 0) throw new SchemaError("rollout request", issues);
  const first = waves[0];
  if (first) first.startedAt = iso(now);
  return {
    id: input.id,
    release: release.version,
    releaseCounter: release.releaseCounter,
    manifestKey: release.manifestKey,
    imageKey: release.imageKey,
    fleets: body.fleets ?? [],
    thingGroups: body.thingGroups ?? [],
    waves,
    current: 0,
    status: RolloutStatus.Running,
    maximumPerMinute: body.rolloutRate.maximumPerMinute,
    inProgressTimeoutMinutes: body.inProgressTimeoutMinutes,
    healthDeadlineSeconds: body.healthDeadlineSeconds,
    forced: body.force,
    createdAt: iso(now),
    createdBy: input.by,
    updatedAt: iso(now),
    timeline: [
      {
        at: iso(now),
        event: "created",
        detail: `release ${release.version}, ${waves.length} wave(s)${body.force ? ", forced" : ""}`,
        by: input.by,
      },
    ],
    version: 1,
  };
}

export function isTerminal(r: Rollout): boolean {
  return TERMINAL_STATUSES.includes(r.status);
}

/** What DescribeJob tells the gate: counters, never per-device data. */
export interface Observation {
  jobStatus: string;
  counts: WaveCounts;
  /** Targets the job is still resolving into executions (rollout rate); success waits for them. */
  processing: boolean;
  reasonCode?: string | undefined;
  comment?: string | undefined;
}

export function countsFrom(d: Partial<Record<string, unknown>> | undefined): WaveCounts {
  const n = (k: string) => {
    const v = d?.[k];
    return typeof v === "number" && Number.isFinite(v) ? v : 0;
  };
  return {
    queued: n("numberOfQueuedThings"),
    inProgress: n("numberOfInProgressThings"),
    succeeded: n("numberOfSucceededThings"),
    failed: n("numberOfFailedThings"),
    rejected: n("numberOfRejectedThings"),
    canceled: n("numberOfCanceledThings"),
    timedOut: n("numberOfTimedOutThings"),
    removed: n("numberOfRemovedThings"),
  };
}

export function totalOf(c: WaveCounts): number {
  return c.queued + c.inProgress + c.succeeded + c.failed + c.rejected + c.canceled + c.timedOut + c.removed;
}

/** Devices that tried and did not succeed: FAILED (incl. rolled back), REJECTED, TIMED_OUT. */
export function failuresOf(c: WaveCounts): number {
  return c.failed + c.rejected + c.timedOut;
}

const pct = (part: number, total: number) => (total === 0 ? 0 : (part / total) * 100);
const fmt = (p: number) => `${Math.round(p * 10) / 10}%`;

function sameCounts(a: WaveCounts | undefined, b: WaveCounts): boolean {
  return a !== undefined && (Object.keys(b) as Array<keyof WaveCounts>).every((k) => a[k] === b[k]);
}

function withEntry(r: Rollout, now: number, event: string, detail?: string, by?: string): Rollout {
  return {
    ...r,
    updatedAt: iso(now),
    timeline: [...r.timeline, { at: iso(now), event, ...(detail ? { detail } : {}), ...(by ? { by } : {}) }],
  };
}

function replaceWave(r: Rollout, index: number, patch: Partial<Wave>): Rollout {
  return { ...r, waves: r.waves.map((w, i) => (i === index ? { ...w, ...patch } : w)) };
}

/**
 * The wave gate. Returns the new state, or null when nothing changed (so the caller skips the write).
 * Order matters: a wave whose failures pass its threshold aborts even while baking; a paused rollout
 * still records counters, success and bake, and still aborts; it only never advances.
 */
export function gate(r: Rollout, obs: Observation, now: number): Rollout | null {
  if (isTerminal(r)) return null;
  const wave = r.waves[r.current];
  if (!wave?.jobCreatedAt) return null;
  const n = r.current + 1;
  let next: Rollout = r;
  let changed = false;
  if (!sameCounts(wave.counts, obs.counts)) {
    next = replaceWave(next, r.current, { counts: obs.counts });
    changed = true;
  }
  const total = totalOf(obs.counts);
  const failures = failuresOf(obs.counts);
  const failurePct = pct(failures, total);
  if (obs.jobStatus === "CANCELED") {
    const why = [obs.reasonCode, obs.comment].filter(Boolean).join(": ");
    return withEntry(
      {
        ...next,
        status: RolloutStatus.Aborted,
        reason: `wave ${n} job was canceled${why ? ` (${why})` : ""}`,
        cancelDone: true,
      },
      now,
      "aborted",
      `wave ${n} job ${wave.jobId} was canceled outside the engine${why ? `: ${why}` : ""}`,
    );
  }
  if (failures > 0 && failurePct > wave.failureThresholdPercent) {
    const reason = `wave ${n}: ${failures} of ${total} device(s) failed (${fmt(failurePct)} > threshold ${wave.failureThresholdPercent}%)`;
    return withEntry(
      { ...next, status: RolloutStatus.Aborted, reason, cancelDone: false },
      now,
      "aborted",
      reason,
    );
  }
  // An empty wave (bucket groups with no devices yet) has nothing to wait for once the job has resolved
  // its targets; otherwise the share of succeeded devices must reach the threshold.
  const successMet =
    !obs.processing &&
    (total === 0 ? true : pct(obs.counts.succeeded, total) >= wave.successThresholdPercent);
  let w = next.waves[r.current] ?? wave;
  if (successMet && !w.thresholdMetAt) {
    next = withEntry(
      replaceWave(next, r.current, { thresholdMetAt: iso(now) }),
      now,
      "wave-succeeded",
      `wave ${n}: ${obs.counts.succeeded} of ${total} succeeded${w.bakeSeconds > 0 ? `; baking ${w.bakeSeconds}s` : ""}`,
    );
    changed = true;
    w = next.waves[r.current] ?? w;
  }
  // Paused: the wave's success and bake are still tracked (pausing does not restart a bake), but no wave
  // starts and the rollout does not finish until it is resumed.
  if (r.status !== RolloutStatus.Running) return changed ? { ...next, updatedAt: iso(now) } : null;
  if (w.thresholdMetAt && now >= Date.parse(w.thresholdMetAt) + w.bakeSeconds * 1000) {
    // Outside the fleets' windows the next wave waits (its bake is done; it starts when one opens).
    if (r.waitingForWindow && r.current < r.waves.length - 1) {
      return changed ? { ...next, updatedAt: iso(now) } : null;
    }
    next = replaceWave(next, r.current, { completedAt: iso(now) });
    if (r.current === r.waves.length - 1) {
      return withEntry(
        { ...next, status: RolloutStatus.Succeeded },
        now,
        "succeeded",
        `all ${r.waves.length} wave(s) done`,
      );
    }
    next = replaceWave({ ...next, current: r.current + 1 }, r.current + 1, { startedAt: iso(now) });
    return withEntry(next, now, "wave-started", `wave ${n + 1} of ${r.waves.length}`);
  }
  return changed ? { ...next, updatedAt: iso(now) } : null;
}

export function pause(r: Rollout, now: number, by: string): Rollout {
  if (r.status !== RolloutStatus.Running) {
    throw new ConflictError(`rollout ${r.id} is ${r.status}; only a RUNNING rollout can be paused`);
  }
  return withEntry({ ...r, status: RolloutStatus.Paused }, now, "paused", undefined, by);
}

/** PAUSED → RUNNING; STALLED → RUNNING with a fresh set of attempts at the call that stalled it. */
export function resume(r: Rollout, now: number, by: string): Rollout {
  if (r.status !== RolloutStatus.Paused && r.status !== RolloutStatus.Stalled) {
    throw new ConflictError(
      `rollout ${r.id} is ${r.status}; only a PAUSED or STALLED rollout can be resumed`,
    );
  }
  const { effectFailure: _retry, reason: _reason, ...rest } = r;
  const next = r.status === RolloutStatus.Stalled ? rest : r;
  return withEntry({ ...next, status: RolloutStatus.Running }, now, "resumed", undefined, by);
}

/** Attempts at one effect before the rollout stalls (one per invocation: about one a minute in AWS). */
export const MAX_EFFECT_ATTEMPTS = 5;

/**
 * Records a failed attempt at an effect. Once the attempts are used up, or at once for an error no retry
 * can fix (`permanent`), the failure is marked stalled; a RUNNING rollout whose job cannot be created
 * becomes STALLED (visible, alarmed, and left alone until an operator resumes or aborts it). An ABORTED
 * rollout whose cancel fails stays ABORTED, shows the stalled cancel, and keeps retrying it: its devices
 * are installing until the cancel lands.
 */
export function effectFailed(
  r: Rollout,
  effect: Effect,
  error: string,
  permanent: boolean,
  now: number,
): Rollout {
  const same = r.effectFailure?.effect === effect.kind ? r.effectFailure : undefined;
  const attempts = (same?.attempts ?? 0) + 1;
  const stalled = permanent || attempts >= MAX_EFFECT_ATTEMPTS;
  const next: Rollout = {
    ...r,
    updatedAt: iso(now),
    effectFailure: {
      effect: effect.kind,
      attempts,
      error: error.slice(0, 2000),
      firstAt: same?.firstAt ?? iso(now),
      lastAt: iso(now),
      stalled,
    },
  };
  if (!stalled || same?.stalled) return next;
  const what = `${effect.kind} failed ${attempts} time(s)${permanent && attempts < MAX_EFFECT_ATTEMPTS ? " (not retryable)" : ""}: ${error}`;
  if (effect.kind === "create-job" && r.status === RolloutStatus.Running) {
    const reason = `wave ${effect.waveIndex + 1}: ${what}`.slice(0, 2000);
    return withEntry({ ...next, status: RolloutStatus.Stalled, reason }, now, "stalled", reason);
  }
  return withEntry(next, now, "stalled", what.slice(0, 2000));
}

/** A failure that just became stalled, for the one log line the stalled-rollouts alarm counts. */
export function becameStalled(before: Rollout, after: Rollout): boolean {
  return after.effectFailure?.stalled === true && before.effectFailure?.stalled !== true;
}

export function abort(r: Rollout, now: number, by: string, reason?: string): Rollout {
  if (isTerminal(r)) {
    throw new ConflictError(`rollout ${r.id} is already ${r.status}; it cannot be aborted`);
  }
  const why = reason ? `aborted by ${by}: ${reason}` : `aborted by ${by}`;
  return withEntry(
    { ...r, status: RolloutStatus.Aborted, reason: why, cancelDone: false },
    now,
    "aborted",
    reason,
    by,
  );
}

/** Job-execution statuses that count against a wave's failure threshold (see failuresOf). */
export const FAILURE_STATUSES: ReadonlySet<string> = new Set(["FAILED", "REJECTED", "TIMED_OUT"]);

/**
 * Whether a failure event is worth a gate run (a DescribeJob) now. Failures are counted from events
 * (atomically, so each count is seen by exactly one event) and the gate runs for the count that first
 * passes the threshold against the wave's size last read — or, while that size is unknown, for the
 * wave's first failure, which reads it. Below the threshold the gate could not abort; above it, the run
 * at the crossing aborted already, or the job's counters lagged the events and the schedule's next read
 * aborts. So however many devices fail, failure events cost a DescribeJob or two per wave.
 */
export function failureNeedsGate(r: Rollout, waveIndex: number, failuresSeen: number): boolean {
  if (isTerminal(r) || waveIndex !== r.current) return false;
  const wave = r.waves[waveIndex];
  if (!wave?.jobCreatedAt) return false;
  const total = wave.counts ? totalOf(wave.counts) : 0;
  if (total === 0) return failuresSeen === 1;
  // The least number of failures that is more than the threshold share of `total`.
  const crossing = Math.floor((total * wave.failureThresholdPercent) / 100) + 1;
  return failuresSeen === crossing;
}

/** Side effects a state asks for, one at a time; each is idempotent and marked done afterwards. */
export type Effect =
  | { kind: "create-job"; waveIndex: number }
  | { kind: "cancel-job"; waveIndex: number }
  | { kind: "release-locks" };

/**
 * How long a claim to create a wave's job keeps other invocations away. Longer than a function may run
 * (advance-rollout's timeout is 60 s), so a live holder is never doubled; a dead one delays the wave by
 * at most this much. Engine time, which the local cloud may scale.
 */
export const JOB_CLAIM_LEASE_MS = 120_000;

/** Whether someone other than `by` holds a live claim on creating wave `waveIndex`'s job. */
export function jobClaimedByOther(r: Rollout, waveIndex: number, by: string, now: number): boolean {
  const claim = r.waves[waveIndex]?.jobClaim;
  return claim !== undefined && claim.by !== by && now < Date.parse(claim.at) + JOB_CLAIM_LEASE_MS;
}

/** The state that claims creating wave `waveIndex`'s job for `by` (written conditionally by the caller). */
export function claimJob(r: Rollout, waveIndex: number, by: string, now: number): Rollout {
  return { ...replaceWave(r, waveIndex, { jobClaim: { by, at: iso(now) } }), updatedAt: iso(now) };
}

/** Gives a claim back after a failed attempt so the next invocation need not wait for the lease. */
export function releaseJobClaim(r: Rollout, waveIndex: number, now: number): Rollout {
  const waves = r.waves.map((w, i) => {
    if (i !== waveIndex) return w;
    const { jobClaim: _released, ...rest } = w;
    return rest;
  });
  return { ...r, waves, updatedAt: iso(now) };
}

/** A transition into ABORTED, for the one log line the aborted-rollouts alarm counts. */
export function becameAborted(before: Rollout | undefined, after: Rollout): boolean {
  return after.status === RolloutStatus.Aborted && before?.status !== RolloutStatus.Aborted;
}

export function nextEffect(r: Rollout): Effect | null {
  // Stalled: no call until an operator resumes (a fresh set of attempts) or aborts; it keeps its locks.
  if (r.status === RolloutStatus.Stalled) return null;
  if (r.status === RolloutStatus.Running || r.status === RolloutStatus.Paused) {
    // A paused rollout keeps its current wave's job: pausing stops advancing, it does not stop devices.
    const w = r.waves[r.current];
    // Outside the fleets' maintenance windows no wave's job is created (applyWindow).
    if (w && !w.jobCreatedAt && r.status === RolloutStatus.Running && !r.waitingForWindow)
      return { kind: "create-job", waveIndex: r.current };
    return null;
  }
  if (r.status === RolloutStatus.Aborted && r.cancelDone === false)
    return { kind: "cancel-job", waveIndex: r.current };
  if (!r.locksReleased) return { kind: "release-locks" };
  return null;
}

export function markEffectDone(before: Rollout, e: Effect, now: number): Rollout {
  // The call went through: whatever failed before it is over.
  const { effectFailure: _over, ...r } = before;
  switch (e.kind) {
    case "create-job":
      return withEntry(
        replaceWave(r, e.waveIndex, { jobCreatedAt: iso(now) }),
        now,
        "job-created",
        r.waves[e.waveIndex]?.jobId,
      );
    case "cancel-job":
      return withEntry({ ...r, cancelDone: true }, now, "job-canceled", r.waves[e.waveIndex]?.jobId);
    case "release-locks":
      return { ...r, locksReleased: true, updatedAt: iso(now) };
  }
}

/** Still needs the advance function: running, paused, terminal with follow-up work left, or settling. */
export function isActive(r: Rollout): boolean {
  return !isTerminal(r) || nextEffect(r) !== null || isSettling(r);
}

/**
 * An ABORTED rollout whose aborted wave had a job: its executions may still finish (devices that were
 * installing fail and roll back, or succeed), so its counts are read until they are final.
 */
export function isSettling(r: Rollout): boolean {
  return r.status === RolloutStatus.Aborted && r.settled !== true && !!r.waves[r.current]?.jobCreatedAt;
}

/**
 * Records the aborted wave's latest counters. Settled once nothing is queued or in progress, or once the
 * in-progress timeout (plus a minute) has passed since the abort: an execution still open then is one
 * IoT no longer times out for us, and reading it forever would keep the rollout active forever.
 */
export function settle(r: Rollout, obs: Observation, now: number): Rollout | null {
  if (!isSettling(r)) return null;
  const abortedAt = [...r.timeline].reverse().find((t) => t.event === "aborted")?.at ?? r.updatedAt;
  const deadline = Date.parse(abortedAt) + (r.inProgressTimeoutMinutes + 1) * 60_000;
  const settled = obs.counts.queued + obs.counts.inProgress === 0 || now >= deadline;
  const wave = r.waves[r.current];
  if (!settled && sameCounts(wave?.counts, obs.counts)) return null;
  const next = replaceWave(r, r.current, { counts: obs.counts });
  return { ...next, ...(settled ? { settled: true } : {}), updatedAt: iso(now) };
}

/** Each device once, by its latest outcome in the rollout (outcomes are stored one per device). */
export function deviceTotals(outcomes: readonly DeviceOutcome[]): DeviceTotals {
  const t: DeviceTotals = { devices: 0, succeeded: 0, failed: 0, rolledBack: 0, other: 0 };
  for (const o of new Map(outcomes.map((d) => [d.thingName, d])).values()) {
    t.devices++;
    if (o.status === "SUCCEEDED") t.succeeded++;
    else if (FAILURE_STATUSES.has(o.status)) {
      t.failed++;
      if (o.statusDetails?.rolledBack === "true") t.rolledBack++;
    } else t.other++;
  }
  return t;
}

/**
 * Records whether the rollout's fleets are inside their maintenance windows now
 * (docs/fleets.md#maintenance-windows). Closed: `waitingForWindow` is set, so no wave's job is created
 * and no wave advances; open again: it is cleared and the rollout carries on from where it stopped.
 * Returns null when nothing changed. A finished rollout only loses a `waitingForWindow` it still carried.
 */
export function applyWindow(r: Rollout, state: WindowState, now: number): Rollout | null {
  if (isTerminal(r)) {
    // Aborted while waiting: nothing waits any more.
    if (!r.waitingForWindow) return null;
    const { waitingForWindow: _over, ...rest } = r;
    return { ...rest, updatedAt: iso(now) };
  }
  if (r.status === RolloutStatus.Stalled) return null;
  if (state.open) {
    if (!r.waitingForWindow) return null;
    const { waitingForWindow: _open, ...rest } = r;
    return withEntry(rest, now, "window-opened", `waves resume at wave ${r.current + 1}`);
  }
  const opensAt = state.opensAt === undefined ? undefined : iso(state.opensAt);
  if (r.waitingForWindow && r.waitingForWindow.opensAt === opensAt) return null;
  const waiting = { since: r.waitingForWindow?.since ?? iso(now), ...(opensAt ? { opensAt } : {}) };
  if (r.waitingForWindow) return { ...r, waitingForWindow: waiting, updatedAt: iso(now) };
  return withEntry(
    { ...r, waitingForWindow: waiting },
    now,
    "window-closed",
    `outside the maintenance windows; next opens ${opensAt ?? "not within the search horizon"}`,
  );
}

/** A retry reaches at most this many devices: MAX_WAVES jobs of MAX_JOB_TARGETS things. */
export const MAX_RETRY_DEVICES = MAX_WAVES * MAX_JOB_TARGETS;

/**
 * The devices a retry of a rollout targets (docs/fleets.md#retrying-failed-devices): each device's latest
 * outcome is FAILED, TIMED_OUT or REJECTED — and, unless asked, it did not roll back. Sorted by name.
 */
export function retryTargets(outcomes: readonly DeviceOutcome[], includeRolledBack: boolean): string[] {
  const latest = new Map(outcomes.map((d) => [d.thingName, d]));
  return [...latest.values()]
    .filter((o) => FAILURE_STATUSES.has(o.status))
    .filter((o) => includeRolledBack || o.statusDetails?.rolledBack !== "true")
    .map((o) => o.thingName)
    .sort();
}

/**
 * A new rollout of `original`'s release to only `things`, in waves of at most MAX_JOB_TARGETS named
 * things (a job takes at most 100 targets), with the gates of the original's last wave and no bake.
 * It holds the same fleets (their lock, their windows) as the original.
 */
export function planRetry(input: {
  id: string;
  original: Rollout;
  things: readonly string[];
  now: number;
  by: string;
  forced: boolean;
  /** The devices include ones where the release rolled back: their jobs must say so (see model.ts). */
  includeRolledBack?: boolean;
}): Rollout {
  const { original: o, things, now } = input;
  if (things.length === 0 || things.length > MAX_RETRY_DEVICES) {
    throw new RangeError(`a retry takes 1–${MAX_RETRY_DEVICES} devices, got ${things.length}`);
  }
  const last = o.waves[o.waves.length - 1];
  const waves: Wave[] = [];
  for (let i = 0; i * MAX_JOB_TARGETS < things.length; i++) {
    waves.push({
      kind: "things",
      things: things.slice(i * MAX_JOB_TARGETS, (i + 1) * MAX_JOB_TARGETS),
      bakeSeconds: 0,
      failureThresholdPercent: last?.failureThresholdPercent ?? DEFAULT_FAILURE_THRESHOLD_PERCENT,
      successThresholdPercent: last?.successThresholdPercent ?? DEFAULT_SUCCESS_THRESHOLD_PERCENT,
      jobId: jobIdFor(input.id, i),
      ...(i === 0 ? { startedAt: iso(now) } : {}),
    });
  }
  return {
    id: input.id,
    release: o.release,
    releaseCounter: o.releaseCounter,
    manifestKey: o.manifestKey,
    imageKey: o.imageKey,
    fleets: o.fleets,
    thingGroups: o.thingGroups,
    waves,
    current: 0,
    status: RolloutStatus.Running,
    maximumPerMinute: o.maximumPerMinute,
    inProgressTimeoutMinutes: o.inProgressTimeoutMinutes,
    healthDeadlineSeconds: o.healthDeadlineSeconds,
    forced: input.forced,
    createdAt: iso(now),
    createdBy: input.by,
    updatedAt: iso(now),
    retryOf: o.id,
    ...(input.includeRolledBack ? { includeRolledBack: true as const } : {}),
    timeline: [
      {
        at: iso(now),
        event: "created",
        detail: `retry of ${o.id}: release ${o.release} to ${things.length} device(s) in ${waves.length} wave(s)${input.forced ? ", forced" : ""}`,
        by: input.by,
      },
    ],
    version: 1,
  };
}
