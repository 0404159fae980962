/**
 * What the jobs engine's parts share: the executions, the jobs, and the few operations that change an
 * execution's status (each through the transition table in execution-machine.ts) and publish what the
 * change caused. The engine (jobs-engine.ts) implements it; device requests (device-requests.ts) and the
 * registry hooks (continuous-targets.ts) are written against it.
 */
import type { IotEvent } from "../contracts.ts";
import type { ExecutionIndex } from "./execution-index.ts";
import type { ExecutionEvent } from "./execution-machine.ts";
import type { Execution, Job } from "./model.ts";
import type { JobsWire, Outgoing } from "./wire.ts";

export interface EngineSink {
  /** Messages for one thing, to be published in this order after everything queued before for it. */
  publish(thingName: string, messages: Outgoing[]): void;
  event(e: IotEvent): void;
}

export interface EngineCore {
  readonly jobs: ReadonlyMap<string, Job>;
  readonly index: ExecutionIndex;
  readonly wire: JobsWire;
  readonly sink: EngineSink;
  /** The job, or ResourceNotFoundException. */
  job(jobId: string): Job;
  /**
   * Runs a change for one thing and publishes what it caused, after `lead` (the response): notify when
   * the pending set changed, notify-next when its head changed.
   */
  mutateThing<T>(thing: string, fn: () => T, lead?: (result: T) => Outgoing[]): T;
  /** A device's IN_PROGRESS: starts a QUEUED execution (and its timers) or records progress. */
  progress(job: Job, e: Execution, stepTimeoutInMinutes: number | undefined): void;
  /** Moves an execution to the terminal status `event` leads to, and everything that follows. */
  finish(job: Job, e: Execution, event: ExecutionEvent): void;
  /** A new QUEUED execution of the job on the thing (executionNumber + 1). */
  createExecution(job: Job, thing: string): Execution;
  /** Runs `fn` once the current change is complete (abort and completion checks). */
  defer(fn: () => void): void;
  checkCompletion(job: Job): void;
}
