/**
 * The jobs engine (docs/iot-jobs.md): the job lifecycle (create, update, cancel, delete, add targets), the
 * control plane's view of executions, and what follows an execution's change of status (counters, retries,
 * abort, completion, events, notify / notify-next). Its parts, one job each:
 * - execution-machine.ts: the transition table every status change goes through;
 * - execution-index.ts: executions indexed by thing and by job;
 * - device-requests.ts: the MQTT jobs API (get, start-next, describe, update);
 * - wire.ts: what is published to devices, rendered at send time (fresh presigned URLs);
 * - execution-timers.ts: in-progress and step timeouts; rollout-pacer.ts: jobExecutionsRolloutConfig;
 * - continuous-targets.ts: the registry's hooks (CONTINUOUS joiners and leavers, deleted things).
 * Every change is synchronous, so a change is atomic; what it publishes is handed to the sink in order,
 * per thing. Per-operation cost is O(jobs of that thing) or O(things of that job), never O(all executions).
 */
import type { Clock } from "../contracts.ts";
import { type ArnContext, parseTargetArn, thingArn } from "./arns.ts";
import { ContinuousTargets } from "./continuous-targets.ts";
import { DeviceRequests } from "./device-requests.ts";
import type { EngineCore, EngineSink } from "./engine-core.ts";
import { IotServiceError } from "./errors.ts";
import { executionEvent, type JobOperation, jobEvent } from "./events.ts";
import { ExecutionIndex } from "./execution-index.ts";
import { type ExecutionEvent, executionTransition } from "./execution-machine.ts";
import { ExecutionTimers } from "./execution-timers.ts";
import type { SchedulingConfig } from "./maintenance-windows.ts";
import {
  type AbortConfig,
  type EventConfig,
  type Execution,
  type ExecutionStatus,
  emptyCounters,
  type Job,
  type PresignedUrlConfig,
  type RetryConfig,
  type RolloutConfig,
} from "./model.ts";
import type { Presigner } from "./presign.ts";
import type { Registry } from "./registry.ts";
import { RolloutPacer } from "./rollout-pacer.ts";
import { JobsWire, type Outgoing } from "./wire.ts";

export type { EngineSink } from "./engine-core.ts";
export type { Outgoing } from "./wire.ts";

/** AWS limits on a job (docs/iot-jobs.md); input limits are core/aws-limits.ts, checked before the engine. */
export const MAX_TARGETS = 100;
export const MAX_DOCUMENT_BYTES = 32 * 1024;

export interface CreateJobInput {
  jobId: string;
  targets: string[];
  document: string;
  description?: string;
  targetSelection?: "SNAPSHOT" | "CONTINUOUS";
  rolloutConfig?: RolloutConfig;
  abortConfig?: AbortConfig;
  timeoutConfig?: { inProgressTimeoutInMinutes?: number };
  retryConfig?: RetryConfig;
  presignedUrlConfig?: PresignedUrlConfig;
  schedulingConfig?: SchedulingConfig;
}

export interface UpdateJobInput {
  description?: string;
  rolloutConfig?: RolloutConfig;
  abortConfig?: AbortConfig;
  timeoutConfig?: { inProgressTimeoutInMinutes?: number };
  retryConfig?: RetryConfig;
  presignedUrlConfig?: PresignedUrlConfig;
}

export class JobsEngine implements EngineCore {
  readonly jobs = new Map<string, Job>();
  readonly index: ExecutionIndex;
  private readonly timers: ExecutionTimers;
  private readonly pacer: RolloutPacer;
  readonly wire: JobsWire;
  /** The MQTT jobs API (get, start-next, describe, update). */
  readonly device: DeviceRequests;
  private readonly targets: ContinuousTargets;
  private readonly deferred: Array<() => void> = [];
  /** CONTINUOUS jobs that may still be IN_PROGRESS: membership changes look only at these. */
  private depth = 0;
  private runningDeferred = false;
  eventConfig: EventConfig = { JOB: false, JOB_EXECUTION: false };

  constructor(
    private readonly ctx: ArnContext,
    private readonly clock: Clock,
    private readonly registry: Registry,
    presign: Presigner,
    readonly sink: EngineSink,
    private readonly dirty: () => void,
    state?: { jobs: Job[]; executions: Execution[]; eventConfig: EventConfig },
  ) {
    for (const j of state?.jobs ?? []) this.jobs.set(j.jobId, j);
    this.index = new ExecutionIndex(state?.executions);
    this.timers = new ExecutionTimers(clock, (e) => {
      const job = this.jobs.get(e.jobId);
      if (job) this.mutateThing(e.thingName, () => this.finish(job, e, "timeout"));
    });
    this.pacer = new RolloutPacer(
      clock,
      (job, thing) => this.mutateThing(thing, () => this.createExecution(job, thing)),
      dirty,
    );
    this.wire = new JobsWire(clock, presign, (jobId) => this.job(jobId));
    if (state) this.eventConfig = state.eventConfig;
    this.device = new DeviceRequests(this);
    this.targets = new ContinuousTargets(this, ctx, registry);
  }

  /** Re-arms every timer after a restart: execution timeouts and rollout pacing. */
  resumeTimers(): void {
    for (const list of this.index.lists()) {
      const e = list[list.length - 1];
      if (e) this.timers.arm(e);
    }
    for (const job of this.jobs.values()) {
      if (job.status === "IN_PROGRESS" && job.pendingRollout.length > 0) this.pacer.schedule(job);
    }
    // Jobs whose last execution ended just before the stop may still need to complete.
    for (const job of this.jobs.values()) this.checkCompletion(job);
  }

  stopTimers(): void {
    this.timers.stopAll();
    this.pacer.stopAll();
  }

  snapshot(): { jobs: Job[]; executions: Execution[] } {
    return { jobs: [...this.jobs.values()], executions: this.index.all() };
  }

  // ================= control plane: jobs =================

  job(jobId: string): Job {
    const j = this.jobs.get(jobId);
    if (!j) throw new IotServiceError("ResourceNotFoundException", `Job ${jobId} does not exist`);
    return j;
  }

  createJob(input: CreateJobInput): Job {
    if (this.jobs.has(input.jobId)) {
      throw new IotServiceError(
        "ResourceAlreadyExistsException",
        `Job with id ${input.jobId} already exists`,
      );
    }
    const size = Buffer.byteLength(input.document);
    if (size > MAX_DOCUMENT_BYTES) {
      throw new IotServiceError(
        "InvalidRequestException",
        `The job document is ${size} bytes; the maximum is ${MAX_DOCUMENT_BYTES} bytes`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(input.document);
    } catch {
      throw new IotServiceError("InvalidRequestException", "The job document is not valid JSON");
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new IotServiceError("InvalidRequestException", "The job document must be a JSON object");
    }
    if (input.targets.length > MAX_TARGETS) {
      throw new IotServiceError(
        "LimitExceededException",
        `A job can have at most ${MAX_TARGETS} targets; ${input.targets.length} were given`,
      );
    }
    const things = this.resolveTargets(input.targets);
    const now = this.clock.now();
    const job: Job = {
      jobId: input.jobId,
      description: input.description,
      document: input.document,
      targets: [...input.targets],
      targetSelection: input.targetSelection ?? "SNAPSHOT",
      status: "IN_PROGRESS",
      forceCanceled: false,
      createdAt: now,
      lastUpdatedAt: now,
      rolloutConfig: input.rolloutConfig,
      abortConfig: input.abortConfig,
      timeoutConfig: input.timeoutConfig,
      retryConfig: input.retryConfig,
      presignedUrlConfig: input.presignedUrlConfig,
      ...(input.schedulingConfig ? { schedulingConfig: input.schedulingConfig } : {}),
      pendingRollout: things,
      notified: 0,
      releasedInWindow: 0,
      counters: emptyCounters(),
      tally: { SUCCEEDED: 0, FAILED: 0, REJECTED: 0, TIMED_OUT: 0 },
    };
    this.jobs.set(job.jobId, job);
    this.targets.track(job);
    this.index.thingsOf(job.jobId);
    this.dirty();
    this.pacer.run(job);
    this.checkCompletion(job);
    return job;
  }

  /** Every target must exist (docs/iot-jobs.md); returns the things they reach, de-duplicated, in target order. */
  private resolveTargets(targets: string[]): string[] {
    const out = new Set<string>();
    for (const arn of targets) {
      const t = parseTargetArn(this.ctx, arn);
      if (!t) {
        throw new IotServiceError(
          "InvalidRequestException",
          `Target ${arn} is not a thing or thing group ARN of ${this.ctx.region}/${this.ctx.account}`,
        );
      }
      if (t.kind === "thing") {
        this.registry.thing(t.name);
        out.add(t.name);
      } else {
        for (const name of this.registry.thingsInGroup(t.name, true)) out.add(name);
      }
    }
    return [...out];
  }

  /** AssociateTargetsWithJob (docs/iot-jobs.md): IN_PROGRESS CONTINUOUS jobs only, at most 100 targets in all. */
  associateTargets(jobId: string, targets: string[], comment?: string): Job {
    const job = this.job(jobId);
    if (job.targetSelection !== "CONTINUOUS" || job.status !== "IN_PROGRESS") {
      throw new IotServiceError(
        "InvalidRequestException",
        `Targets can be added only to IN_PROGRESS CONTINUOUS jobs; job ${jobId} is ${job.status} ${job.targetSelection}`,
      );
    }
    const added = targets.filter((t) => !job.targets.includes(t));
    if (job.targets.length + added.length > MAX_TARGETS) {
      throw new IotServiceError(
        "LimitExceededException",
        `A job can have at most ${MAX_TARGETS} targets; job ${jobId} would have ${job.targets.length + added.length}`,
      );
    }
    const things = this.resolveTargets(added);
    job.targets.push(...added);
    if (comment !== undefined) job.comment = comment;
    job.lastUpdatedAt = this.clock.now();
    // Like later joiners of a CONTINUOUS job, the new things get their executions at once.
    for (const thing of things) {
      const e = this.index.latest(thing, jobId);
      if (!e || e.status === "REMOVED") this.mutateThing(thing, () => this.createExecution(job, thing));
    }
    this.dirty();
    return job;
  }

  listJobs(filter: { status?: string; targetSelection?: string; thingGroupName?: string }): Job[] {
    let groupArnSuffix: string | undefined;
    if (filter.thingGroupName !== undefined) groupArnSuffix = `:thinggroup/${filter.thingGroupName}`;
    return [...this.jobs.values()]
      .filter((j) => filter.status === undefined || j.status === filter.status)
      .filter((j) => filter.targetSelection === undefined || j.targetSelection === filter.targetSelection)
      .filter((j) => groupArnSuffix === undefined || j.targets.some((t) => t.endsWith(groupArnSuffix)))
      .sort((a, b) => b.createdAt - a.createdAt || a.jobId.localeCompare(b.jobId));
  }

  updateJob(jobId: string, patch: UpdateJobInput): void {
    const job = this.job(jobId);
    if (job.status === "DELETION_IN_PROGRESS") {
      throw new IotServiceError("InvalidStateTransitionException", `Job ${jobId} is being deleted`);
    }
    if (
      patch.timeoutConfig !== undefined &&
      [...this.index.ofJob(job.jobId)].some((e) => e.startedAt !== undefined)
    ) {
      // the in-progress timeout can change only before executions start.
      throw new IotServiceError(
        "InvalidRequestException",
        `timeoutConfig of job ${jobId} cannot change after executions have started`,
      );
    }
    if (patch.retryConfig?.criteriaList.some((c) => c.numberOfRetries !== 0)) {
      // after creation, UpdateJob can only set the retry counts to 0.
      throw new IotServiceError(
        "InvalidRequestException",
        "After creation numberOfRetries can only be set to 0",
      );
    }
    if (patch.description !== undefined) job.description = patch.description;
    if (patch.rolloutConfig !== undefined) job.rolloutConfig = patch.rolloutConfig;
    if (patch.abortConfig !== undefined) job.abortConfig = patch.abortConfig;
    if (patch.timeoutConfig !== undefined) job.timeoutConfig = patch.timeoutConfig;
    if (patch.retryConfig !== undefined) job.retryConfig = patch.retryConfig;
    if (patch.presignedUrlConfig !== undefined) job.presignedUrlConfig = patch.presignedUrlConfig;
    job.lastUpdatedAt = this.clock.now();
    this.dirty();
  }

  cancelJob(jobId: string, opts: { force: boolean; reasonCode?: string; comment?: string }): Job {
    const job = this.job(jobId);
    if (job.status === "COMPLETED" || job.status === "DELETION_IN_PROGRESS") {
      throw new IotServiceError(
        "InvalidStateTransitionException",
        `Job ${jobId} is ${job.status} and cannot be canceled`,
      );
    }
    // A repeated cancel is accepted and changes nothing, unless it upgrades to force (rollout retries
    // call CancelJob again; idempotence is the safer reading).
    if (job.status === "CANCELED" && (!opts.force || job.forceCanceled)) return job;
    this.emitJobEvent(job, "cancellation_in_progress");
    job.status = "CANCELED";
    job.forceCanceled = job.forceCanceled || opts.force;
    if (opts.reasonCode !== undefined) job.reasonCode = opts.reasonCode;
    if (opts.comment !== undefined) job.comment = opts.comment;
    job.lastUpdatedAt = this.clock.now();
    job.pendingRollout = [];
    this.pacer.stop(jobId);
    const event: ExecutionEvent = opts.force ? "force-cancel" : "cancel";
    for (const thing of this.index.thingsOf(jobId)) {
      const e = this.index.latest(thing, jobId);
      if (!e || executionTransition(e.status, event) === undefined) continue;
      this.mutateThing(thing, () => {
        if (e.status === "IN_PROGRESS") e.forceCanceled = true;
        this.finish(job, e, event);
      });
    }
    this.emitJobEvent(job, "canceled");
    this.dirty();
    return job;
  }

  deleteJob(jobId: string, force: boolean): void {
    const job = this.job(jobId);
    if (job.status === "DELETION_IN_PROGRESS") {
      throw new IotServiceError("InvalidStateTransitionException", `Job ${jobId} is already being deleted`);
    }
    if (!force && job.status !== "COMPLETED" && job.status !== "CANCELED") {
      throw new IotServiceError(
        "InvalidStateTransitionException",
        `Job ${jobId} is ${job.status}; only COMPLETED or CANCELED jobs can be deleted without force`,
      );
    }
    job.status = "DELETION_IN_PROGRESS";
    job.lastUpdatedAt = this.clock.now();
    this.emitJobEvent(job, "deletion_in_progress");
    this.pacer.stop(jobId);
    for (const thing of [...this.index.thingsOf(jobId)]) {
      this.mutateThing(thing, () => {
        for (const e of this.index.list(thing, jobId)) {
          this.timers.clear(e);
          this.emitExecutionEvent(e, true);
        }
        this.index.dropThingJob(thing, jobId);
      });
    }
    this.index.dropJob(jobId);
    this.jobs.delete(jobId);
    this.emitJobEvent(job, "deleted");
    this.dirty();
  }

  /** DescribeJob's jobProcessDetails (docs/iot-jobs.md). */
  processDetails(job: Job): Record<string, unknown> {
    const c = job.counters;
    const details: Record<string, unknown> = {
      numberOfQueuedThings: c.QUEUED,
      numberOfInProgressThings: c.IN_PROGRESS,
      numberOfSucceededThings: c.SUCCEEDED,
      numberOfFailedThings: c.FAILED,
      numberOfRejectedThings: c.REJECTED,
      numberOfCanceledThings: c.CANCELED,
      numberOfTimedOutThings: c.TIMED_OUT,
      numberOfRemovedThings: c.REMOVED,
    };
    if (job.pendingRollout.length > 0) details.processingTargets = job.targets;
    return details;
  }

  isConcurrent(job: Job): boolean {
    return job.status === "IN_PROGRESS" && job.pendingRollout.length > 0;
  }

  // ================= control plane: executions =================

  /** Latest execution of each thing of the job, in creation order. */
  executionsOfJob(job: Job): Generator<Execution> {
    return this.index.ofJob(job.jobId);
  }

  /** Latest execution of each job on the thing. */
  executionsOfThing(thing: string): Execution[] {
    return this.index.ofThing(thing);
  }

  execution(thing: string, jobId: string, executionNumber?: number): Execution | undefined {
    return this.index.execution(thing, jobId, executionNumber);
  }

  describeExecution(thing: string, jobId: string, executionNumber?: number): Execution {
    const e = this.execution(thing, jobId, executionNumber);
    if (!e) {
      throw new IotServiceError(
        "ResourceNotFoundException",
        `Job execution for job ${jobId} on thing ${thing}${executionNumber === undefined ? "" : ` (executionNumber ${executionNumber})`} does not exist`,
      );
    }
    return e;
  }

  approximateSecondsBeforeTimedOut(e: Execution): number | undefined {
    return this.timers.secondsBeforeTimedOut(e);
  }

  cancelExecution(
    thing: string,
    jobId: string,
    opts: { force: boolean; expectedVersion?: number; statusDetails?: Record<string, string> },
  ): void {
    const job = this.job(jobId);
    const e = this.describeExecution(thing, jobId);
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== e.versionNumber) {
      throw new IotServiceError(
        "VersionConflictException",
        `Expected version ${opts.expectedVersion} does not match the execution's version ${e.versionNumber}`,
      );
    }
    const event: ExecutionEvent = opts.force ? "force-cancel" : "cancel";
    if (executionTransition(e.status, event) === undefined) {
      throw new IotServiceError(
        "InvalidStateTransitionException",
        executionTransition(e.status, "force-cancel") === undefined
          ? `Job execution ${jobId} on ${thing} is already ${e.status}`
          : `Job execution ${jobId} on ${thing} is ${e.status}; cancel it with force`,
      );
    }
    this.mutateThing(thing, () => {
      if (opts.statusDetails !== undefined) e.statusDetails = { ...opts.statusDetails };
      if (e.status === "IN_PROGRESS") e.forceCanceled = true;
      this.finish(job, e, event);
    });
  }

  deleteExecution(thing: string, jobId: string, executionNumber: number, force: boolean): void {
    const e = this.describeExecution(thing, jobId, executionNumber);
    if (isPendingStatus(e.status) && !force) {
      throw new IotServiceError(
        "InvalidStateTransitionException",
        `Job execution ${jobId} #${executionNumber} on ${thing} is ${e.status}; delete it with force`,
      );
    }
    const job = this.jobs.get(jobId);
    this.mutateThing(thing, () => {
      const list = this.index.list(thing, jobId);
      const wasLatest = list[list.length - 1] === e;
      this.timers.clear(e);
      list.splice(list.indexOf(e), 1);
      if (job && wasLatest) {
        job.counters[e.status]--;
        const next = list[list.length - 1];
        if (next) job.counters[next.status]++;
      }
      if (list.length === 0) this.index.dropThingJob(thing, jobId);
      this.emitExecutionEvent(e, true);
      if (job) this.defer(() => this.checkCompletion(job));
    });
  }

  // ================= state machine internals =================

  /**
   * A device's IN_PROGRESS (UpdateJobExecution, or StartNext on a QUEUED head): from QUEUED it starts the
   * execution and its timers; on an IN_PROGRESS one it is a progress update that may set a new step timer.
   */
  progress(job: Job, e: Execution, stepTimeoutInMinutes: number | undefined): void {
    const from = e.status;
    const now = this.clock.now();
    e.status = this.transition(e, "device-in-progress");
    e.versionNumber++;
    e.lastUpdatedAt = now;
    if (from === "QUEUED") {
      e.startedAt = now;
      this.adjustCounters(job, e, from);
      this.timers.start(job, e, stepTimeoutInMinutes);
    } else if (stepTimeoutInMinutes !== undefined) {
      this.timers.setStep(e, stepTimeoutInMinutes);
    }
  }

  /** The table's answer; callers have already refused what the table refuses, so a refusal here is a bug. */
  private transition(e: Execution, event: ExecutionEvent): ExecutionStatus {
    const to = executionTransition(e.status, event);
    if (to === undefined)
      throw new Error(`execution transition ${e.status} --${event}--> is not in the table`);
    return to;
  }

  /** Moves an execution to the terminal status `event` leads to and does everything that follows. */
  finish(job: Job, e: Execution, event: ExecutionEvent): void {
    const from = e.status;
    const status = this.transition(e, event);
    e.status = status;
    e.versionNumber++; // [unconfirmed] service transitions bump the version too: the safe choice.
    e.lastUpdatedAt = this.clock.now();
    this.timers.end(e);
    this.adjustCounters(job, e, from);
    if (status === "SUCCEEDED" || status === "FAILED" || status === "REJECTED" || status === "TIMED_OUT") {
      job.tally[status]++;
    }
    this.emitExecutionEvent(e);
    if ((status === "FAILED" || status === "TIMED_OUT") && job.status === "IN_PROGRESS")
      this.maybeRetry(job, e, status);
    this.defer(() => this.checkAbort(job));
    this.defer(() => this.checkCompletion(job));
  }

  /** Retry: re-queue as executionNumber+1 while the matching criterion has retries left [inferred]. */
  private maybeRetry(job: Job, e: Execution, failure: "FAILED" | "TIMED_OUT"): void {
    const criteria = job.retryConfig?.criteriaList ?? [];
    const exact = criteria.find((c) => c.failureType === failure);
    const all = criteria.find((c) => c.failureType === "ALL");
    let allowed = false;
    if (exact && e.retriesUsed[failure] < exact.numberOfRetries) allowed = true;
    else if (!exact && all && e.retriesUsed.FAILED + e.retriesUsed.TIMED_OUT < all.numberOfRetries)
      allowed = true;
    if (!allowed) return;
    const used = { ...e.retriesUsed, [failure]: e.retriesUsed[failure] + 1 };
    this.createExecution(job, e.thingName, { retryAttempt: e.retryAttempt + 1, retriesUsed: used });
  }

  private checkAbort(job: Job): void {
    if (job.status !== "IN_PROGRESS" || !job.abortConfig) return;
    const t = job.tally;
    const executed = t.SUCCEEDED + t.FAILED + t.REJECTED + t.TIMED_OUT;
    for (const c of job.abortConfig.criteriaList) {
      if (executed < c.minNumberOfExecutedThings) continue;
      const failures = c.failureType === "ALL" ? t.FAILED + t.REJECTED + t.TIMED_OUT : t[c.failureType];
      if ((failures * 100) / executed >= c.thresholdPercentage) {
        // abort cancels only QUEUED executions; IN_PROGRESS ones keep running.
        this.cancelJob(job.jobId, {
          force: false,
          reasonCode: `${c.failureType}_THRESHOLD_EXCEEDED`,
          comment: `Job canceled by abortConfig: ${failures} of ${executed} executed things ${c.failureType === "ALL" ? "failed" : `are ${c.failureType}`} (threshold ${c.thresholdPercentage}%)`,
        });
        return;
      }
    }
  }

  checkCompletion(job: Job): void {
    if (job.status !== "IN_PROGRESS" || job.targetSelection !== "SNAPSHOT") return;
    if (job.pendingRollout.length > 0 || job.counters.QUEUED > 0 || job.counters.IN_PROGRESS > 0) return;
    const now = this.clock.now();
    job.status = "COMPLETED";
    job.completedAt = now;
    job.lastUpdatedAt = now;
    this.emitJobEvent(job, "completed");
    this.dirty();
  }

  createExecution(
    job: Job,
    thing: string,
    carry: { retryAttempt: number; retriesUsed: Execution["retriesUsed"] } = {
      retryAttempt: 0,
      retriesUsed: { FAILED: 0, TIMED_OUT: 0 },
    },
  ): Execution {
    const list = this.index.list(thing, job.jobId);
    const prev = list[list.length - 1];
    const now = this.clock.now();
    const e: Execution = {
      jobId: job.jobId,
      thingName: thing,
      executionNumber: (prev?.executionNumber ?? 0) + 1,
      status: "QUEUED",
      statusDetails: {},
      queuedAt: now,
      lastUpdatedAt: now,
      versionNumber: 1,
      forceCanceled: false,
      retryAttempt: carry.retryAttempt,
      retriesUsed: carry.retriesUsed,
    };
    list.push(e);
    this.index.thingsOf(job.jobId).add(thing);
    if (prev) job.counters[prev.status]--;
    job.counters.QUEUED++;
    this.dirty();
    return e;
  }

  /** Keeps numberOf…Things in step when the latest execution of a thing changes status. */
  private adjustCounters(job: Job, e: Execution, from: ExecutionStatus): void {
    if (this.index.latest(e.thingName, e.jobId) !== e) return;
    job.counters[from]--;
    job.counters[e.status]++;
  }

  // ---- notifications (docs/iot-jobs.md) ----

  /**
   * Runs a change for one thing and publishes what it caused, after `lead` (the response): notify when
   * the pending set changed, notify-next when its head changed (docs/iot-jobs.md).
   */
  mutateThing<T>(thing: string, fn: () => T, lead?: (result: T) => Outgoing[]): T {
    this.depth++;
    try {
      const before = this.pendingSignature(thing);
      const result = fn();
      const after = this.pendingSignature(thing);
      const out = lead ? lead(result) : [];
      if (before.all !== after.all) out.push(this.wire.notify(thing, this.index.pendingOf(thing)));
      if (before.head !== after.head) out.push(this.wire.notifyNext(thing, this.index.pendingOf(thing)[0]));
      if (out.length > 0) this.sink.publish(thing, out);
      this.dirty();
      return result;
    } finally {
      this.depth--;
      if (this.depth === 0) this.runDeferred();
    }
  }

  private pendingSignature(thing: string): { all: string; head: string } {
    const keys = this.index.pendingOf(thing).map((e) => `${e.jobId}#${e.executionNumber}`);
    return { all: [...keys].sort().join(","), head: keys[0] ?? "" };
  }

  // ---- events (docs/iot-jobs.md) ----

  private emitJobEvent(job: Job, op: JobOperation): void {
    const e = jobEvent(job, op, this.clock.now(), op === "completed" ? this.processDetails(job) : undefined);
    this.sink.event(e);
  }

  private emitExecutionEvent(e: Execution, deleted = false): void {
    this.sink.event(executionEvent(e, thingArn(this.ctx, e.thingName), this.clock.now(), deleted));
  }

  // ---- plumbing ----

  defer(fn: () => void): void {
    this.deferred.push(fn);
    if (this.depth === 0) this.runDeferred();
  }

  private runDeferred(): void {
    if (this.runningDeferred) return;
    this.runningDeferred = true;
    try {
      for (let fn = this.deferred.shift(); fn; fn = this.deferred.shift()) fn();
    } finally {
      this.runningDeferred = false;
    }
  }
}

const isPendingStatus = (s: ExecutionStatus): boolean => s === "QUEUED" || s === "IN_PROGRESS";
