/**
 * keel-agent as an object: everything it touches (config with its paths, BootControl, clock, logger,
 * reboot) is injected, and it keeps no process-global state, so the fleet simulator can run hundreds in
 * one process. One driver, drive(), runs the transition table (state-machine.ts) for every entry point
 * (the daemon, `install`, `rollback`): persist the next state, then run that state's handler
 * (states/registry.ts) with an explicit context; its result is the next event. On start the daemon
 * re-runs the handler of the state it finds (docs/agent.md).
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { describeError } from "../core/errors.ts";
import { type BootControl, otherSlot, type Slot } from "./boot/types.ts";
import { type AgentClock, backoffMs, systemClock } from "./clock.ts";
import type { AgentConfig } from "./config.ts";
import {
  AbortedError,
  AgentNotStartedError,
  BootedSlotError,
  CommandFailedError,
  MissingJobError,
} from "./errors.ts";
import { runHealthChecks } from "./health.ts";
import { installedOn } from "./install/steps.ts";
import type { JobExecution, JobsClient } from "./jobs-client.ts";
import type { KubernetesCoordinator } from "./kubernetes/coordinator.ts";
import { AgentMetrics, type MetricsServer, serveMetrics } from "./kubernetes/metrics.ts";
import { createLogger, type Logger } from "./logger.ts";
import type { TerminalReport } from "./report.ts";
import {
  type AgentEvent,
  canTransition,
  isFailedTrial,
  PRE_ACTIVATION_STATES,
  phaseOf,
  STANDALONE_STATES,
  type State,
  TERMINAL_STATES,
  TRIAL_STATES,
  transition,
  type WorkState,
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
import { AWAIT_REBOOT, type AwaitReboot, type StateContext, type Transition } from "./states/context.ts";
import { HANDLERS } from "./states/registry.ts";
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
    throw new BootedSlotError(`cannot read ${cmdlinePath} (${describeError(err)})`, { cause: err });
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
  /** Air-gapped daemon: a timer that keeps the process alive while it waits for nothing but stop(). */
  private keepAlive: NodeJS.Timeout | null = null;
  /** The cluster around this node, when agent.json has a `kubernetes` section (docs/kubernetes.md). */
  private cluster: KubernetesCoordinator | undefined;
  readonly metrics = new AgentMetrics();
  private metricsServer: MetricsServer | null = null;
  private bytesSeen = 0;

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
    await this.startCluster();
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
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.wakeUp?.();
    await this.loop;
    this.cluster?.stopRenewing();
    await this.metricsServer?.stop();
    await this.jobs?.stop();
  }

  /** What each slot holds, for the metrics (best effort: a bootloader read error only leaves them stale). */
  private async slotMetrics(): Promise<void> {
    try {
      const boot = await this.boot.readState();
      for (const s of ["A", "B"] as const) {
        const inst = this.rec.slots[s] ?? (s === this.bootedSlot ? (this.config.factory ?? null) : null);
        this.metrics.setSlot(s, inst?.version ?? null, s === this.bootedSlot, boot.slots[s].good);
      }
    } catch (err) {
      this.logger.debug("slot metrics not updated", { error: err });
    }
  }

  /** The Kubernetes client and the metrics endpoint, each only when configured. */
  private async startCluster(): Promise<void> {
    this.metrics.setState(this.currentState());
    await this.slotMetrics();
    if (this.config.metrics) {
      this.metricsServer = await serveMetrics(this.metrics, this.config.metrics);
      this.logger.info("metrics served", { url: this.metricsServer.url });
    }
    const k = this.config.kubernetes;
    if (!k) return;
    // Loaded only when configured: @kubernetes/client-node is large, and most simulated nodes share one process.
    const [{ createKubeClient, loadKubeConfig }, { KubernetesCoordinator }] = await Promise.all([
      import("./kubernetes/client.ts"),
      import("./kubernetes/coordinator.ts"),
    ]);
    this.cluster = new KubernetesCoordinator({
      config: k,
      thingName: this.config.thingName,
      client: createKubeClient(loadKubeConfig(k.kubeconfig)),
      clock: this.clock,
      logger: this.logger,
      metrics: this.metrics,
    });
    // A slot held across the reboot keeps being renewed until the job finishes.
    await this.cluster
      .resume()
      .catch((err: unknown) => this.logger.warn("cannot read the reboot slots yet", { error: err }));
  }

  /** Reads the booted slot and the saved record; writes nothing (commands that refuse or only read). */
  private async load(): Promise<PersistedState> {
    this.booted = await readBootedSlot(this.config.cmdline);
    const record = await this.store.load();
    this.record = record;
    return record;
  }

  /**
   * The daemon resuming: only here does finding a state count as a re-entry (docs/agent.md), since only
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
    if (this.cutStandalone()) return; // not the daemon's to resume: nothing counted, nothing written
    await this.countReentry();
  }

  /** Counts a re-entry so a crash/boot loop ends in `loop` instead of going on forever. */
  private async countReentry(): Promise<void> {
    const record = this.rec;
    if (record.state !== "Idle" && !TERMINAL_STATES.has(record.state)) {
      record.entries++;
      await this.store.save(record);
    }
  }

  /** A standalone install cut before activation: `install --resume` or `abandon` decide, not the daemon. */
  private cutStandalone(): boolean {
    const rec = this.rec;
    return rec.job?.standalone != null && STANDALONE_STATES.has(rec.state) && rec.state !== "Activating";
  }

  /**
   * The new slot is on trial in this boot: only the health check may commit it. Any other boot runs the
   * slot that was good before, whatever the saved state says (a cut mid-install included), and must
   * re-mark it good or the next boot finds it tried and goes to rescue.
   */
  private bootedOnTrial(): boolean {
    const { job, state } = this.rec;
    return (
      job !== null && this.bootedSlot === job.target && job.target !== job.from && !TERMINAL_STATES.has(state)
    );
  }

  /** Gives up a state re-entered too often (crash or boot loop), where the table allows it. */
  private async endLoop(): Promise<void> {
    const rec = this.rec;
    if (rec.state !== "Idle" && rec.entries > this.config.maxReentries && canTransition(rec.state, "loop")) {
      await this.apply("loop", `state ${rec.state} re-entered ${rec.entries} times (crash or boot loop)`);
    }
  }

  private get rec(): PersistedState {
    if (!this.record) throw new AgentNotStartedError("the agent has not loaded its state yet");
    return this.record;
  }

  private get bootedSlot(): Slot {
    if (!this.booted) throw new AgentNotStartedError("the agent has not read the booted slot yet");
    return this.booted;
  }

  // ---------------------------------------------------------------- the loop

  private async runLoop(): Promise<void> {
    if (this.cutStandalone()) {
      await this.everyBootCommit();
      this.logger.warn(
        "a standalone install was cut before activation; finish it with `keel-agent install --resume` or drop it with `keel-agent abandon`",
        { state: this.rec.state },
      );
      await this.waitForStop();
      return;
    }
    await this.endLoop();
    if (!this.bootedOnTrial()) await this.everyBootCommit();
    if (!this.jobs && this.rec.state === "Idle") {
      // Air-gapped: nothing will ever be queued. Stay up (the unit would restart an exited agent every
      // few seconds) and do nothing until stopped; `keel-agent install` runs beside it.
      this.logger.info("no mqtt configured; air-gapped mode: waiting for standalone installs");
      this.keepAlive = setInterval(() => {}, 1 << 30);
    }
    await this.drive(() => false);
  }

  /**
   * The one driver: runs the handler of the current state and applies its event until `until` holds for
   * the state reached, the agent stops, or a handler asked for a reboot. In Idle it takes the next
   * queued job (only the daemon ever waits there: the other entry points stop at Idle).
   */
  private async drive(until: (state: State) => boolean): Promise<void> {
    while (!this.stopSignal.aborted) {
      const state = this.currentState();
      if (until(state)) return;
      if (state === "Idle") {
        const exec = await this.nextQueued();
        if (exec) await this.takeJob(exec);
        continue;
      }
      const result = await this.work(state);
      if (result === null) {
        // Waiting for the reboot (or stop) to end this run.
        await this.waitForStop();
        return;
      }
      await this.apply(result.event, result.reason);
    }
  }

  /** On every boot, once health passes, commit the running slot if the loader says it is not (docs/bootloaders.md). */
  private async everyBootCommit(): Promise<void> {
    const state = await this.boot.readState();
    if (state.slots[this.bootedSlot].good) return;
    const r = await this.checkHealth(this.config.healthDeadlineSeconds * 1000);
    if (r.ok) {
      await this.boot.markGood(this.bootedSlot);
      this.logger.info("booted slot is healthy; marked good", { slot: this.bootedSlot });
    } else {
      // Write nothing: the loader falls back on the next boot (docs/bootloaders.md).
      this.logger.error("booted slot is unhealthy; not marking it good", {
        slot: this.bootedSlot,
        reason: r.reason,
      });
    }
  }

  private checkHealth(deadlineMs: number) {
    return runHealthChecks(this.config.health, deadlineMs, {
      clock: this.clock,
      brokerConnected: () => this.jobs?.connected ?? false,
      logger: this.logger,
      signal: this.stopSignal,
    });
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
        // A job answered without fetching its manifest ("already running") knows its version only from
        // the job document.
        version: rec.job?.release?.version ?? rec.job?.parsed?.version ?? null,
        reason: rec.job?.reason ?? null,
        at: new Date(this.clock.now()).toISOString(),
      };
    }
    const version = rec.job?.release?.version;
    if (isFailedTrial(from, event) && version) {
      // The release was tried here and failed: never install it again automatically.
      rec.rolledBack = [...rec.rolledBack.filter((v) => v !== version), version].slice(-MAX_ROLLED_BACK);
    }
    if (to === "Idle") rec.job = null;
    await this.store.save(rec);
    this.logger.info("transition", { from, event, to, ...(reason ? { reason } : {}) });
    this.metrics.setState(to);
    if (rec.lastResult && TERMINAL_STATES.has(to)) {
      this.metrics.setLastResult(to, rec.lastResult.version, this.clock.now());
    }
    if (to === "Idle") await this.slotMetrics();
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
      armed: false,
    };
  }

  // ---------------------------------------------------------------- the work of each state

  /** The context a handler works with: everything it may touch, nothing of the agent itself. */
  private context(state: WorkState, job: CurrentJob): StateContext {
    return {
      config: this.config,
      boot: this.boot,
      trust: this.trust,
      clock: this.clock,
      logger: this.logger.child({ step: HANDLERS[state].name }),
      signal: AbortSignal.any([this.stopSignal, this.cancelCtl.signal]),
      stopSignal: this.stopSignal,
      record: this.rec,
      job,
      booted: this.bootedSlot,
      save: () => this.store.save(this.rec),
      progress: (d) => void this.reportProgress(d),
      onBytes: (done, total) => {
        // done restarts from the resume offset after a cut: count only what is new.
        if (done > this.bytesSeen) this.metrics.addDownloadedBytes(done - this.bytesSeen);
        this.bytesSeen = done;
        this.opts.onBytes?.(done, total);
      },
      cluster: this.cluster,
      refreshDocument: () => this.refreshDocument(),
      reboot: () => this.requestReboot(),
      checkHealth: (deadlineMs) => this.checkHealth(deadlineMs),
      runHook: (command) => runCommand(command, this.stopSignal),
      report: (r) => this.sendReport(job, r),
    };
  }

  /**
   * Runs the handler of `state`; returns the next event, or null when the agent asked for a reboot (or is
   * stopping) and must wait. An error becomes `cancel` or `fail` where the table has such a row; after
   * activation there is no giving up, so the (idempotent) work is retried after a backoff.
   */
  private async work(state: WorkState): Promise<Transition | null> {
    const job = this.rec.job;
    if (!job) throw new MissingJobError(`state ${state} has no job`);
    try {
      const r = await HANDLERS[state].run(this.context(state, job));
      return "wait" in r ? null : r;
    } catch (err) {
      if (this.stopSignal.aborted) return null;
      if (this.cancelCtl.signal.aborted && canTransition(state, "cancel")) {
        return { event: "cancel", reason: "the job was cancelled" };
      }
      if (canTransition(state, "fail")) return { event: "fail", reason: describeError(err) };
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

  private async requestReboot(): Promise<AwaitReboot> {
    this.rebootRequested = true;
    this.logger.info("rebooting");
    await this.rebootFn();
    return AWAIT_REBOOT;
  }

  /** The terminal report to IoT Jobs, retried until accepted; a standalone install has nobody to tell. */
  private async sendReport(job: CurrentJob, { status, details }: TerminalReport): Promise<void> {
    if (!job.key) return;
    if (!this.jobs) {
      this.logger.warn("no broker configured; cannot report", { status });
      return;
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

  /** The head of the queue changed away from our job: ask whether it was cancelled or removed (docs/iot-jobs.md). */
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

  /**
   * A presigned URL expired: DescribeJobExecution with the document (`$aws/things/T/jobs/<jobId>/get`,
   * includeJobDocument) returns it with freshly presigned URLs. Retried with backoff while the broker
   * connection comes up; the fresh document is saved so a restart does not start from stale URLs.
   */
  private async refreshDocument(): Promise<void> {
    const key = this.rec.job?.key;
    if (!key || !this.jobs) return;
    this.logger.warn("a presigned URL expired; asking IoT Jobs for a fresh job document", {
      jobId: key.jobId,
    });
    const { initialMs, maxMs } = this.config.reportBackoff;
    for (let attempt = 0; ; attempt++) {
      try {
        const e = await this.jobs.describe(key.jobId, key.executionNumber);
        const job = this.rec.job;
        if (e?.jobDocument && job && sameKey(job.key, key)) {
          job.document = e.jobDocument;
          await this.store.save(this.rec);
        }
        return;
      } catch (err) {
        if (attempt >= 5 || this.stopSignal.aborted) throw err;
        await this.clock.sleep(backoffMs(attempt, initialMs, maxMs), this.stopSignal);
      }
    }
  }

  /** IN_PROGRESS with the phase (docs/iot-jobs.md); best effort. "gone" before activation means cancelled. */
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
    // The slot we run must be committed before the other one is touched: after a power cut without the
    // daemon, this boot may have used its try (nothing is written when it already is good).
    await this.everyBootCommit();
    this.rec.job = this.newJob(null, null, { manifestPath, image });
    await this.apply("job");
    await this.drive((s) => s === "Rebooting" || s === "Idle");
    return this.outcome();
  }

  /** What a standalone run reached: the pending trial, the terminal state it reported, or a stop. */
  private outcome(): { state: State; reason: string | null } {
    const rec = this.rec;
    if (rec.state === "Rebooting") return { state: rec.state, reason: rec.job?.reason ?? null };
    if (rec.state === "Idle" && rec.lastResult) {
      return { state: rec.lastResult.state, reason: rec.lastResult.reason };
    }
    return { state: rec.state, reason: "stopped" };
  }

  /**
   * `keel-agent install --resume`: finishes a standalone install that was cut (power loss, kill) before
   * the new slot was set to be tried, from the state it reached. Same result as installStandalone.
   */
  async resumeStandalone(): Promise<{ state: State; reason: string | null }> {
    const rec = await this.load();
    if (!rec.job?.standalone || !STANDALONE_STATES.has(rec.state)) {
      throw new CommandFailedError(
        rec.state === "Idle"
          ? "no install to resume"
          : `no standalone install to resume (state ${rec.state}${rec.job?.standalone ? "" : ", a cloud job"}); \`keel-agent run\` finishes it`,
      );
    }
    await this.countReentry();
    await this.endLoop();
    if (!this.bootedOnTrial()) await this.everyBootCommit();
    await this.drive((s) => s === "Rebooting" || s === "Idle");
    return this.outcome();
  }

  /**
   * `keel-agent abandon`: drops a standalone install cut before activation. The target slot is made
   * unbootable if the loader could pick it, the job ends Cancelled, and the node stays on its slot.
   */
  async abandon(): Promise<{ state: State; target: Slot }> {
    const rec = await this.load();
    const job = rec.job;
    if (!job?.standalone || !STANDALONE_STATES.has(rec.state)) {
      throw new CommandFailedError(
        rec.state === "Idle"
          ? "no install to abandon"
          : `state ${rec.state} is not a standalone install before activation; use \`keel-agent rollback\``,
      );
    }
    if (this.bootedSlot === job.target) {
      throw new CommandFailedError(
        `slot ${job.target} is running its trial boot; use \`keel-agent rollback\` to go back to slot ${job.from}`,
      );
    }
    const boot = await this.boot.readState();
    if (boot.slots[job.target].bootable || boot.next === job.target) await this.boot.invalidate(job.target);
    // The slot we stay on may have used its try on this boot (the cut): commit it, as any boot would.
    await this.everyBootCommit();
    rec.slots[job.target] = null;
    const from = rec.state;
    await this.apply("abandon", "abandoned by the operator");
    await this.drive((s) => s === "Idle");
    return { state: from, target: job.target };
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
      await this.apply("operator-rollback", OPERATOR_ROLLBACK);
      if (booted === job.from) {
        // Already on the good slot: finish here. A cloud job stays RolledBack for the daemon to report.
        await this.drive((s) => s === "Idle" || (job.key !== null && s === "RolledBack"));
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
