/**
 * keel-agent as an object: everything it touches (config with its paths, BootControl, clock, logger,
 * reboot) is injected, and it keeps no process-global state, so the fleet simulator can run hundreds in
 * one process. It drives the transition table (state-machine.ts): persist the next state, then do that
 * state's work, whose result is the next event. On start it re-runs the work of the state it finds.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { describeError } from "../core/errors.ts";
import { type BootControl, otherSlot, type Slot } from "./boot/types.ts";
import { type AgentClock, backoffMs, systemClock } from "./clock.ts";
import type { AgentConfig } from "./config.ts";
import { AbortedError, BootedSlotError, CommandFailedError } from "./errors.ts";
import { runHealthChecks } from "./health.ts";
import { transferDetails } from "./install/delta.ts";
import { installedOn, stepFor } from "./install/steps.ts";
import type { DeviceStatus, JobExecution, JobsClient } from "./jobs-client.ts";
import { createLogger, type Logger } from "./logger.ts";
import {
  type AgentEvent,
  canTransition,
  isFailedTrial,
  PRE_ACTIVATION_STATES,
  phaseOf,
  type State,
  TERMINAL_STATES,
  TRIAL_STATES,
  transition,
} from "./state-machine.ts";
import {
  type CurrentJob,
  type JobKey,
  MAX_HANDLED,
  MAX_ROLLED_BACK,
  type PersistedState,
  StateStore,
  type Transfer,
} from "./state-store.ts";
import { TrustStore } from "./trust.ts";

export interface AgentOptions {
  config: AgentConfig;
  boot: BootControl;
  clock?: AgentClock;
  logger?: Logger;
  /**
   * Restart the machine. Default: run config.reboot.command. The agent does nothing after calling it
   * except wait to be stopped: the state saved before the call says what to do after the boot.
   */
  reboot?: () => Promise<void>;
  /** Connect to IoT Jobs when config.mqtt is set (default true). `install` runs without it. */
  connect?: boolean;
  /** Bytes written into the target slot so far (progress bars). */
  onBytes?: (done: number, total: number) => void;
  /** Called after every persisted transition (tests and the fleet simulator watch the chain). */
  onTransition?: (from: State, event: AgentEvent, to: State) => void;
}

export interface AgentStatus {
  booted: Slot;
  state: State;
  job: {
    jobId: string | null;
    target: Slot;
    version: string | null;
    offset: number;
    /** Delta updates: bytes fetched vs image size once the image is in the slot. */
    transfer: Transfer | null;
  } | null;
  slots: Record<
    Slot,
    { version: string | null; releaseCounter: number | null; good: boolean; bootable: boolean }
  >;
  bootNext: string | null;
  trial: Slot | null;
  lastResult: PersistedState["lastResult"];
}

/** The reason recorded when an operator cancels a pending trial with `keel-agent rollback`. */
export const OPERATOR_ROLLBACK = "rolled back by the operator";

const sameKey = (a: JobKey | null | undefined, b: JobKey | null | undefined) =>
  !!a && !!b && a.jobId === b.jobId && a.executionNumber === b.executionNumber;

/** The booted slot from a kernel command line (`keel.slot=A|B`). */
export async function readBootedSlot(cmdlinePath: string): Promise<Slot> {
  let text: string;
  try {
    text = await readFile(cmdlinePath, "utf8");
  } catch (err) {
    throw new BootedSlotError(`cannot read ${cmdlinePath} (${(err as Error).message})`, { cause: err });
  }
  const m = /(?:^|\s)keel\.slot=([AB])(?:\s|$)/.exec(text);
  if (!m) throw new BootedSlotError(`${cmdlinePath} has no keel.slot=A|B`);
  return m[1] as Slot;
}

/** Runs a shell command; rejects with its exit status and the tail of stderr. */
export function runCommand(command: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", command], { stdio: ["ignore", "ignore", "pipe"], signal });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-1000);
    });
    child.on("error", (err) => reject(new CommandFailedError(`${command}: ${err.message}`, { cause: err })));
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            new CommandFailedError(`${command}: exit ${code}${stderr.trim() ? `: ${stderr.trim()}` : ""}`),
          ),
    );
  });
}

export class Agent {
  readonly config: AgentConfig;
  readonly boot: BootControl;
  readonly clock: AgentClock;
  readonly logger: Logger;
  readonly store: StateStore;
  readonly trust: TrustStore;
  private readonly rebootFn: () => Promise<void>;
  private readonly stopCtl = new AbortController();
  private record: PersistedState | null = null;
  private booted: Slot | null = null;
  private jobs: JobsClient | null = null;
  private cancelCtl = new AbortController();
  private readonly queue: JobExecution[] = [];
  private wakeUp: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private rebootRequested = false;

  constructor(private readonly opts: AgentOptions) {
    this.config = opts.config;
    this.boot = opts.boot;
    this.clock = opts.clock ?? systemClock();
    this.logger =
      opts.logger ?? createLogger({ level: opts.config.log.level, fields: { thing: opts.config.thingName } });
    this.store = new StateStore(opts.config.stateDir);
    this.trust = new TrustStore(opts.config.trustRoot, opts.config.stateDir, this.clock, {
      maxTimeAheadMs: opts.config.trustedTime.maxAheadHours * 3600_000,
    });
    this.rebootFn = opts.reboot ?? (() => runCommand(this.config.reboot.command));
  }

  get state(): State {
    return this.currentState();
  }

  private currentState(): State {
    return this.record?.state ?? "Idle";
  }

  /** True once the agent asked for a reboot and is waiting to be stopped. */
  get awaitingReboot(): boolean {
    return this.rebootRequested;
  }

  private get stopSignal(): AbortSignal {
    return this.stopCtl.signal;
  }

  // ---------------------------------------------------------------- life cycle

  /** Loads state, connects (when configured) and runs until stop(); resolves once running. */
  async start(): Promise<void> {
    await this.prepare();
    if (this.opts.connect !== false && this.config.mqtt) {
      // Loaded only when connecting: MQTT.js is a large share of the agent's memory, and standalone
      // installs (air-gapped nodes, benchmarks) never need it.
      const { JobsClient } = await import("./jobs-client.ts");
      this.jobs = new JobsClient({
        thingName: this.config.thingName,
        mqtt: this.config.mqtt,
        clock: this.clock,
        logger: this.logger,
        reportBackoff: {
          initialMs: this.config.reportBackoff.initialMs,
          maxMs: this.config.reportBackoff.maxMs,
        },
        onExecution: (e) => this.onExecution(e),
        onNextChanged: (e) => this.onNextChanged(e),
      });
      await this.jobs.start();
    }
    this.loop = this.runLoop().catch((err: unknown) => {
      if (!this.stopSignal.aborted) this.logger.error("agent loop stopped on an error", { error: err });
    });
  }

  /** Resolves when the loop ends (stop() or an unrecoverable error). */
  async done(): Promise<void> {
    await this.loop;
  }

  async stop(): Promise<void> {
    this.stopCtl.abort(new AbortedError("agent stopping"));
    this.wakeUp?.();
    await this.loop;
    await this.jobs?.stop();
  }

  /** Reads the booted slot and the saved record; writes nothing (commands that refuse or only read). */
  private async load(): Promise<PersistedState> {
    this.booted = await readBootedSlot(this.config.cmdline);
    const record = await this.store.load();
    this.record = record;
    return record;
  }

  /**
   * The daemon resuming: only here does finding a state count as a re-entry (docs/style.md#shapes-we-follow, item 2), since only
   * here is that state's work about to run again. `install`, `status` and `rollback` use load().
   */
  private async prepare(): Promise<void> {
    const record = await this.load();
    this.logger.info("agent starting", { booted: this.booted, state: record.state, entries: record.entries });
    if (record.state !== "Idle" && record.job === null) {
      // Only a damaged record has a state without a job; nothing can be resumed from it.
      this.logger.error("saved state has no job; starting from Idle", { state: record.state });
      record.state = "Idle";
      record.entries = 0;
      await this.store.save(record);
    }
    if (record.state !== "Idle" && !TERMINAL_STATES.has(record.state)) {
      // Count re-entries so a crash/boot loop ends in `loop` instead of forever.
      record.entries++;
      await this.store.save(record);
    }
  }

  private get rec(): PersistedState {
    if (!this.record) throw new Error("agent not started");
    return this.record;
  }

  private get bootedSlot(): Slot {
    if (!this.booted) throw new Error("agent not started");
    return this.booted;
  }

  // ---------------------------------------------------------------- the loop

  private async runLoop(): Promise<void> {
    const rec = this.rec;
    if (rec.state !== "Idle" && rec.entries > this.config.maxReentries && canTransition(rec.state, "loop")) {
      await this.apply("loop", `state ${rec.state} re-entered ${rec.entries} times (crash or boot loop)`);
    }
    if (rec.state === "Idle") await this.everyBootCommit();
    while (!this.stopSignal.aborted) {
      if (this.rec.state === "Idle") {
        const exec = await this.nextQueued();
        if (!exec) continue;
        await this.takeJob(exec);
        continue;
      }
      const result = await this.work(this.rec.state);
      if (result === null) {
        // Waiting for the reboot (or stop) to end this run.
        await this.waitForStop();
        return;
      }
      await this.apply(result.event, result.reason);
    }
  }

  /** docs/bootloaders.md#agent-rules: on every boot, once health passes, commit the running slot if the loader says it is not. */
  private async everyBootCommit(): Promise<void> {
    const state = await this.boot.readState();
    if (state.slots[this.bootedSlot].good) return;
    const r = await runHealthChecks(
      this.config.health,
      this.config.healthDeadlineSeconds * 1000,
      this.healthContext(),
    );
    if (r.ok) {
      await this.boot.markGood(this.bootedSlot);
      this.logger.info("booted slot is healthy; marked good", { slot: this.bootedSlot });
    } else {
      // Write nothing: the loader falls back on the next boot (docs/bootloaders.md#agent-rules).
      this.logger.error("booted slot is unhealthy; not marking it good", {
        slot: this.bootedSlot,
        reason: r.reason,
      });
    }
  }

  private healthContext() {
    return {
      clock: this.clock,
      brokerConnected: () => this.jobs?.connected ?? false,
      logger: this.logger,
      signal: this.stopSignal,
    };
  }

  private async waitForStop(): Promise<void> {
    if (this.stopSignal.aborted) return;
    await new Promise<void>((resolve) =>
      this.stopSignal.addEventListener("abort", () => resolve(), { once: true }),
    );
  }

  private nextQueued(): Promise<JobExecution | null> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    return new Promise((resolve) => {
      this.wakeUp = () => {
        this.wakeUp = null;
        resolve(this.queue.shift() ?? null);
      };
    });
  }

  /** Persist, then announce: the next state is on disk before its work starts. */
  private async apply(event: AgentEvent, reason?: string): Promise<void> {
    const rec = this.rec;
    const from = rec.state;
    const to = transition(from, event);
    rec.state = to;
    rec.entries = 0;
    if (rec.job && reason !== undefined) rec.job.reason = reason;
    if (TERMINAL_STATES.has(to)) {
      rec.lastResult = {
        state: to,
        jobId: rec.job?.key?.jobId ?? null,
        version: rec.job?.release?.version ?? null,
        reason: rec.job?.reason ?? null,
        at: new Date(this.clock.now()).toISOString(),
      };
    }
    const version = rec.job?.release?.version;
    if (isFailedTrial(from, event) && version && reason !== OPERATOR_ROLLBACK) {
      // The release was tried here and failed: never install it again automatically. An operator's
      // rollback is no verdict on the release.
      rec.rolledBack = [...rec.rolledBack.filter((v) => v !== version), version].slice(-MAX_ROLLED_BACK);
    }
    if (to === "Idle") rec.job = null;
    await this.store.save(rec);
    this.logger.info("transition", { from, event, to, ...(reason ? { reason } : {}) });
    this.opts.onTransition?.(from, event, to);
    if (to === "Idle") {
      this.cancelCtl = new AbortController();
      void this.askForNext();
    } else if (!TERMINAL_STATES.has(to)) {
      await this.reportProgress({});
    }
  }

  private async takeJob(exec: JobExecution): Promise<void> {
    const rec = this.rec;
    const key = { jobId: exec.jobId, executionNumber: exec.executionNumber };
    if (rec.handled.some((k) => sameKey(k, key))) return;
    rec.handled = [...rec.handled, key].slice(-MAX_HANDLED);
    rec.job = this.newJob(key, exec.jobDocument, null);
    await this.apply("job");
  }

  private newJob(key: JobKey | null, document: unknown, standalone: CurrentJob["standalone"]): CurrentJob {
    const from = this.bootedSlot;
    // Record what the running slot holds before anything else happens: the factory baseline applies only
    // to the booted slot, so without this `status` booted from the new slot would call this one unknown.
    this.rec.slots[from] ??= installedOn(this.rec, this.config, from);
    return {
      key,
      document,
      parsed: null,
      standalone,
      release: null,
      from,
      target: otherSlot(from),
      fromVersion: installedOn(this.rec, this.config, from)?.version ?? null,
      offset: 0,
      reason: null,
    };
  }

  // ---------------------------------------------------------------- the work of each state

  /** Returns the next event, or null when the agent has asked for a reboot and must wait. */
  private async work(state: State): Promise<{ event: AgentEvent; reason?: string } | null> {
    const job = this.rec.job;
    if (!job) throw new Error(`state ${state} has no job`);
    const signal = AbortSignal.any([this.stopSignal, this.cancelCtl.signal]);
    try {
      const step = stepFor(state);
      if (step) {
        return await step.run({
          config: this.config,
          boot: this.boot,
          trust: this.trust,
          clock: this.clock,
          logger: this.logger.child({ step: step.name }),
          signal,
          record: this.rec,
          job,
          booted: this.bootedSlot,
          save: () => this.store.save(this.rec),
          progress: (d) => void this.reportProgress(d),
          onBytes: this.opts.onBytes,
          refreshDocument: () => this.refreshDocument(),
        });
      }
      switch (state) {
        case "Rebooting":
          return await this.rebooting(job);
        case "HealthChecking":
          return await this.healthChecking(job);
        case "RollingBack":
          return await this.rollingBack(job);
        case "Committed":
        case "RolledBack":
        case "Rejected":
        case "Failed":
        case "Cancelled":
          return await this.terminal(state, job);
        default:
          throw new Error(`no work defined for state ${state}`);
      }
    } catch (err) {
      if (this.stopSignal.aborted) return null;
      if (this.cancelCtl.signal.aborted && canTransition(state, "cancel")) {
        return { event: "cancel", reason: "the job was cancelled" };
      }
      if (canTransition(state, "fail")) return { event: "fail", reason: describeError(err) };
      // After activation there is no "give up": wait and do the (idempotent) work again.
      this.logger.error("state work failed; retrying", { state, error: err });
      await this.clock
        .sleep(
          backoffMs(3, this.config.reportBackoff.initialMs, this.config.reportBackoff.maxMs),
          this.stopSignal,
        )
        .catch(() => {});
      return this.stopSignal.aborted ? null : this.work(state);
    }
  }

  private async requestReboot(): Promise<null> {
    this.rebootRequested = true;
    this.logger.info("rebooting");
    await this.rebootFn();
    return null;
  }

  private async rebooting(job: CurrentJob) {
    if (this.bootedSlot === job.target) return { event: "booted-trial" as const };
    const state = await this.boot.readState();
    if (state.next !== job.target) {
      // We run the old slot and the loader will not try the new one: it was tried and fell back.
      return { event: "booted-old" as const, reason: "new slot never came up" };
    }
    for (const hook of this.config.hooks.preReboot) {
      try {
        await runCommand(hook, this.stopSignal);
      } catch (err) {
        return { event: "fail" as const, reason: `pre-reboot hook failed: ${describeError(err)}` };
      }
    }
    return this.requestReboot();
  }

  private async healthChecking(job: CurrentJob) {
    if (this.bootedSlot !== job.target)
      return { event: "booted-old" as const, reason: "new slot never came up" };
    const deadline = (job.parsed?.policy.healthDeadlineSeconds ?? this.config.healthDeadlineSeconds) * 1000;
    const r = await runHealthChecks(this.config.health, deadline, this.healthContext());
    return r.ok ? { event: "healthy" as const } : { event: "unhealthy" as const, reason: r.reason };
  }

  private async rollingBack(job: CurrentJob) {
    if (this.bootedSlot === job.from) return { event: "booted-old" as const };
    await this.boot.markBad(job.target);
    await this.boot.forceSlot(job.from);
    return this.requestReboot();
  }

  private async terminal(state: State, job: CurrentJob) {
    const toVersion = job.release?.version ?? job.parsed?.version ?? "";
    let status: DeviceStatus | null = null;
    let details: Record<string, string> = {};
    switch (state) {
      case "Committed": {
        const boot = await this.boot.readState();
        if (!boot.slots[job.target].good) await this.boot.markGood(job.target);
        for (const hook of this.config.hooks.postCommit) {
          await runCommand(hook, this.stopSignal).catch((err: unknown) =>
            this.logger.error("post-commit hook failed", { hook, error: err }),
          );
        }
        status = "SUCCEEDED";
        details = {
          phase: "committed",
          version: toVersion,
          fromVersion: job.fromVersion ?? "unknown",
          slot: job.target,
          ...transferDetails(job.transfer), // delta updates: bytes fetched vs image size
        };
        break;
      }
      case "RolledBack": {
        const boot = await this.boot.readState();
        if (!boot.slots[this.bootedSlot].good || boot.slots[job.target].bootable) {
          await this.boot.markGoodAndBad(this.bootedSlot, job.target);
        }
        status = "FAILED";
        details = {
          rolledBack: "true",
          reason: job.reason ?? "rolled back",
          fromVersion: job.fromVersion ?? "unknown",
          toVersion,
          slot: this.bootedSlot,
        };
        break;
      }
      case "Rejected":
        status = "REJECTED";
        details = { reason: job.reason ?? "rejected", ...(toVersion ? { toVersion } : {}) };
        break;
      case "Failed":
        status = "FAILED";
        details = {
          rolledBack: "false",
          reason: job.reason ?? "failed",
          fromVersion: job.fromVersion ?? "unknown",
          ...(toVersion ? { toVersion } : {}),
        };
        break;
      default:
        status = null; // Cancelled: the job is gone; nobody to tell
    }
    if (status && job.key) {
      if (!this.jobs) {
        this.logger.warn("no broker configured; cannot report", { status });
        return { event: "reported" as const };
      }
      const r = await this.jobs.reportUntilAccepted(
        job.key.jobId,
        job.key.executionNumber,
        status,
        details,
        this.stopSignal,
      );
      this.logger.info("terminal status reported", { jobId: job.key.jobId, status, result: r, ...details });
    }
    return { event: "reported" as const };
  }

  // ---------------------------------------------------------------- IoT Jobs

  private onExecution(exec: JobExecution): void {
    const rec = this.record;
    if (!rec) return;
    const key = { jobId: exec.jobId, executionNumber: exec.executionNumber };
    if (rec.job && sameKey(rec.job.key, key)) {
      // The job we carry, delivered again (start-next after a reboot, notify-next): keep its fresh URLs.
      rec.job.document = exec.jobDocument;
      return;
    }
    if (rec.handled.some((k) => sameKey(k, key))) return;
    if (this.queue.some((q) => sameKey({ jobId: q.jobId, executionNumber: q.executionNumber }, key))) return;
    this.queue.push(exec);
    this.wakeUp?.();
  }

  /** docs/iot-jobs.md §6.6: the head of the queue changed away from our job: ask whether it was cancelled or removed. */
  private onNextChanged(exec: JobExecution | null): void {
    const key = this.record?.job?.key;
    if (!key || exec?.jobId === key.jobId) return;
    void this.checkCancelled(key);
  }

  private async checkCancelled(key: JobKey): Promise<void> {
    try {
      const e = await this.jobs?.describe(key.jobId, key.executionNumber);
      if (e && (e.status === "QUEUED" || e.status === "IN_PROGRESS")) return;
      this.onCancelled(key, e?.status ?? "deleted");
    } catch (err) {
      this.logger.warn("could not check the job's status", { jobId: key.jobId, error: err });
    }
  }

  private onCancelled(key: JobKey, status: string): void {
    const rec = this.record;
    if (!rec?.job || !sameKey(rec.job.key, key)) return;
    if (PRE_ACTIVATION_STATES.has(rec.state)) {
      this.logger.warn("job cancelled; abandoning the install", { jobId: key.jobId, status });
      this.cancelCtl.abort(new AbortedError(`job ${key.jobId} is ${status}`));
    } else {
      this.logger.warn("job cancelled after activation; finishing the boot decision", {
        jobId: key.jobId,
        status,
        state: rec.state,
      });
    }
  }

  private async askForNext(): Promise<void> {
    if (!this.jobs?.connected) return;
    try {
      const exec = await this.jobs.startNext();
      if (exec) this.onExecution(exec);
    } catch (err) {
      this.logger.warn("start-next failed", { error: err });
    }
  }

  private async refreshDocument(): Promise<void> {
    const key = this.rec.job?.key;
    if (!key || !this.jobs) return;
    const e = await this.jobs.describe(key.jobId, key.executionNumber);
    if (e && this.rec.job) this.rec.job.document = e.jobDocument;
  }

  /** IN_PROGRESS with the phase (docs/iot-jobs.md §6.3); best effort. "gone" before activation means cancelled. */
  private async reportProgress(extra: Record<string, string>): Promise<void> {
    const rec = this.rec;
    const job = rec.job;
    if (!job?.key || !this.jobs?.connected) return;
    const details: Record<string, string> = {
      phase: phaseOf(rec.state),
      slot: job.target,
      ...(job.release ? { version: job.release.version } : job.parsed ? { version: job.parsed.version } : {}),
      ...(job.fromVersion ? { fromVersion: job.fromVersion } : {}),
      ...extra,
    };
    try {
      const r = await this.jobs.update(job.key.jobId, job.key.executionNumber, "IN_PROGRESS", details);
      if (r === "gone") this.onCancelled(job.key, "no longer in progress");
    } catch (err) {
      this.logger.debug("progress report not delivered", { error: err });
    }
  }

  // ---------------------------------------------------------------- standalone and operator commands

  /**
   * `keel-agent install`: the same pipeline without the cloud, stopping once the new slot is set to be
   * tried (state Rebooting, saved: `keel-agent run` after the reboot finishes the job). Returns the final
   * state reached: Rebooting, Committed (already installed) or a refusal/failure with its reason.
   */
  async installStandalone(
    manifestPath: string,
    image: string,
  ): Promise<{ state: State; reason: string | null }> {
    // A refusal below must leave the record as it was: no re-entry counted, nothing written.
    await this.load();
    if (this.rec.state !== "Idle") {
      throw new CommandFailedError(
        `an update is already in progress (state ${this.rec.state}); finish or roll it back first`,
      );
    }
    this.rec.job = this.newJob(null, null, { manifestPath, image });
    await this.apply("job");
    for (;;) {
      const state = this.currentState();
      if (state === "Rebooting" || TERMINAL_STATES.has(state)) {
        const reason = this.rec.job?.reason ?? null;
        if (TERMINAL_STATES.has(state)) {
          const r = await this.work(state);
          if (r) await this.apply(r.event);
        }
        return { state, reason };
      }
      const r = await this.work(state);
      if (!r) return { state: this.rec.state, reason: "stopped" };
      await this.apply(r.event, r.reason);
    }
  }

  /**
   * `keel-agent rollback`: go back to the committed good slot. With a trial pending (installed, set to be
   * tried, booted or not) that means cancelling the trial: mark the new slot bad, make the old one primary
   * and record the job as rolled back; otherwise the other slot becomes primary if it is good. Refuses,
   * changing nothing, when there is no good slot to go back to or an install is still being written.
   */
  async rollback(): Promise<{ slot: Slot; cancelled: string | null; reboot: boolean }> {
    const rec = await this.load();
    const booted = this.bootedSlot;
    const boot = await this.boot.readState();
    const job = rec.job;
    if (job && (rec.state === "Rebooting" || rec.state === "HealthChecking")) {
      if (!boot.slots[job.from].good) {
        throw new CommandFailedError(
          `slot ${job.from}, the one the pending update would go back to, is not marked good; refusing`,
        );
      }
      await this.boot.markBad(job.target);
      await this.boot.forceSlot(job.from);
      await this.apply(rec.state === "Rebooting" ? "fail" : "unhealthy", OPERATOR_ROLLBACK);
      if (booted === job.from) {
        // Already on the good slot: finish here. A cloud job stays RolledBack for the daemon to report.
        const r = await this.work(this.currentState());
        if (r) await this.apply(r.event, r.reason);
        if (job.key === null && this.currentState() === "RolledBack") {
          const done = await this.work("RolledBack");
          if (done) await this.apply(done.event);
        }
      }
      return { slot: job.from, cancelled: job.release?.version ?? null, reboot: booted !== job.from };
    }
    if (rec.state !== "Idle") {
      throw new CommandFailedError(
        `an update is in progress (state ${rec.state}); wait for it to finish or fail, then roll back`,
      );
    }
    const other = otherSlot(booted);
    if (!boot.slots[other].good) {
      throw new CommandFailedError(`slot ${other} is not marked good; refusing to make it the boot slot`);
    }
    await this.boot.forceSlot(other);
    return { slot: other, cancelled: null, reboot: true };
  }

  /** Reads only: the saved record and the bootloader, never a write. */
  async status(): Promise<AgentStatus> {
    const booted = await readBootedSlot(this.config.cmdline);
    const rec = await this.store.load();
    const boot = await this.boot.readState();
    // The agent's own record says whether a slot is on trial: the loader may already flag a slot that
    // was written and set to be tried, never booted, as OK, which is not the same as committed.
    const trial = rec.job && TRIAL_STATES.has(rec.state) ? rec.job.target : boot.trial;
    const slot = (s: Slot) => {
      const inst = rec.slots[s] ?? (s === booted ? (this.config.factory ?? null) : null);
      return {
        version: inst?.version ?? null,
        releaseCounter: inst?.releaseCounter ?? null,
        good: boot.slots[s].good && s !== trial,
        bootable: boot.slots[s].bootable,
      };
    };
    return {
      booted,
      state: rec.state,
      job: rec.job
        ? {
            jobId: rec.job.key?.jobId ?? null,
            target: rec.job.target,
            version: rec.job.release?.version ?? null,
            offset: rec.job.offset,
            transfer: rec.job.transfer ?? null,
          }
        : null,
      slots: { A: slot("A"), B: slot("B") },
      bootNext: boot.next,
      trial,
      lastResult: rec.lastResult,
    };
  }
}
