/**
 * Execution timeouts (docs/iot-jobs.md): the in-progress timer starts when an execution enters
 * IN_PROGRESS; a step timer (StartNext / Update `stepTimeoutInMinutes`) replaces the previous one and never
 * outlasts the in-progress deadline; -1 cancels it. Deadlines live on the execution (so they survive a
 * restart); this module keeps the clock timers that fire them.
 */
import type { Clock } from "../contracts.ts";
import { executionTransition } from "./execution-machine.ts";
import type { Execution, Job } from "./model.ts";
import { TERMINAL } from "./model.ts";

const MINUTE_MS = 60_000;

const keyOf = (e: Execution): string => `${e.thingName}\u0000${e.jobId}`;

export class ExecutionTimers {
  private readonly timers = new Map<string, { cancel(): void }>();

  constructor(
    private readonly clock: Clock,
    /** Called once an execution's deadline has passed while the table still allows `timeout`. */
    private readonly expired: (e: Execution) => void,
  ) {}

  /** On entry to IN_PROGRESS: the job's in-progress deadline, and the step timer if one was asked for. */
  start(job: Job, e: Execution, stepMinutes?: number): void {
    const minutes = job.timeoutConfig?.inProgressTimeoutInMinutes;
    e.inProgressDeadline = minutes === undefined ? undefined : this.clock.now() + minutes * MINUTE_MS;
    if (stepMinutes !== undefined) this.setStep(e, stepMinutes);
    else this.arm(e);
  }

  /** A new step timer replaces the old one, never outlasts the in-progress deadline; -1 cancels it. */
  setStep(e: Execution, minutes: number): void {
    if (minutes === -1) e.stepDeadline = undefined;
    else {
      const step = this.clock.now() + minutes * MINUTE_MS;
      e.stepDeadline = e.inProgressDeadline === undefined ? step : Math.min(step, e.inProgressDeadline);
    }
    this.arm(e);
  }

  /** Ends both timers (the execution left IN_PROGRESS). */
  end(e: Execution): void {
    e.inProgressDeadline = undefined;
    e.stepDeadline = undefined;
    this.clear(e);
  }

  secondsBeforeTimedOut(e: Execution): number | undefined {
    const deadline = this.deadline(e);
    if (deadline === undefined || TERMINAL.has(e.status)) return undefined;
    return Math.max(0, Math.ceil((deadline - this.clock.now()) / 1000));
  }

  /** (Re)arms the clock timer for the execution's earliest deadline, if it can time out at all. */
  arm(e: Execution): void {
    this.clear(e);
    const deadline = this.deadline(e);
    if (executionTransition(e.status, "timeout") === undefined || deadline === undefined) return;
    const key = keyOf(e);
    this.timers.set(
      key,
      this.clock.setTimeout(
        () => {
          this.timers.delete(key);
          const d = this.deadline(e);
          if (executionTransition(e.status, "timeout") === undefined || d === undefined) return;
          if (d > this.clock.now()) {
            this.arm(e);
            return;
          }
          this.expired(e);
        },
        Math.max(0, deadline - this.clock.now()),
      ),
    );
  }

  clear(e: Execution): void {
    const key = keyOf(e);
    this.timers.get(key)?.cancel();
    this.timers.delete(key);
  }

  stopAll(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
  }

  private deadline(e: Execution): number | undefined {
    const ds = [e.inProgressDeadline, e.stepDeadline].filter((d): d is number => d !== undefined);
    return ds.length ? Math.min(...ds) : undefined;
  }
}
