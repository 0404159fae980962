/**
 * Rollout pacing (`jobExecutionsRolloutConfig`, docs/iot-jobs.md): executions of a job's resolved targets
 * are created in one-minute windows, at most `maximumPerMinute` (default 1000) per window, or at an
 * exponential rate growing by `incrementFactor` each `numberOfNotifiedThings` / `numberOfSucceededThings`.
 * The window and the things still to release live on the job (so they survive a restart). A job with
 * `schedulingConfig.maintenanceWindows` rolls out only inside one (local/iot/maintenance-windows.ts).
 */
import type { Clock } from "../contracts.ts";
import { jobWindowState } from "./maintenance-windows.ts";
import type { Job } from "./model.ts";

const MINUTE_MS = 60_000;
const DEFAULT_MAX_PER_MINUTE = 1000;

export class RolloutPacer {
  private readonly timers = new Map<string, { cancel(): void }>();

  constructor(
    private readonly clock: Clock,
    /** Creates the execution of one released thing (and publishes what that causes). */
    private readonly release: (job: Job, thing: string) => void,
    private readonly dirty: () => void,
  ) {}

  /** Executions the rollout may create per minute now: maximumPerMinute, or the exponential rate. */
  ratePerMinute(job: Job): number {
    const cfg = job.rolloutConfig;
    const max = cfg?.maximumPerMinute ?? DEFAULT_MAX_PER_MINUTE;
    const exp = cfg?.exponentialRate;
    if (!exp) return max;
    const c = exp.rateIncreaseCriteria;
    const steps =
      c.numberOfNotifiedThings !== undefined
        ? Math.floor(job.notified / c.numberOfNotifiedThings)
        : Math.floor(job.tally.SUCCEEDED / (c.numberOfSucceededThings ?? 1));
    return Math.max(1, Math.min(max, Math.floor(exp.baseRatePerMinute * exp.incrementFactor ** steps)));
  }

  /** Creates as many executions as this minute's window allows, and schedules the next window. */
  run(job: Job): void {
    this.timers.delete(job.jobId);
    if (job.status !== "IN_PROGRESS" || job.pendingRollout.length === 0) return;
    const now = this.clock.now();
    // Outside the job's maintenance windows nothing rolls out; the rollout carries on when one opens.
    const maintenance = jobWindowState(job.schedulingConfig, now);
    if (!maintenance.open) {
      if (maintenance.opensAt !== undefined) this.arm(job, maintenance.opensAt);
      return;
    }
    if (job.rolloutWindowStart === undefined || now >= job.rolloutWindowStart + MINUTE_MS) {
      job.rolloutWindowStart = now;
      job.releasedInWindow = 0;
    }
    const n = Math.min(
      Math.max(0, this.ratePerMinute(job) - job.releasedInWindow),
      job.pendingRollout.length,
    );
    const batch = job.pendingRollout.splice(0, n);
    job.releasedInWindow += n;
    for (const thing of batch) {
      job.notified++;
      this.release(job, thing);
    }
    this.dirty();
    this.schedule(job);
  }

  /** Arms the next window's timer unless nothing is left or one is already armed. */
  schedule(job: Job): void {
    if (job.pendingRollout.length === 0 || this.timers.has(job.jobId)) return;
    this.arm(job, (job.rolloutWindowStart ?? this.clock.now()) + MINUTE_MS);
  }

  private arm(job: Job, at: number): void {
    this.timers.set(
      job.jobId,
      this.clock.setTimeout(() => this.run(job), Math.max(0, at - this.clock.now())),
    );
  }

  /** The job was canceled or deleted: no more windows. */
  stop(jobId: string): void {
    this.timers.get(jobId)?.cancel();
    this.timers.delete(jobId);
  }

  stopAll(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
  }
}
