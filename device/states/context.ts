/**
 * What a state handler gets to do its work (docs/agent.md): everything it may touch is in the context,
 * so handlers never reach back into the Agent, and a new state (the Kubernetes ones: cordon, drain, wait
 * for node-ready) is one more handler in registry.ts plus its rows in the transition table; the driver in
 * agent.ts does not change.
 */
import type { BootControl, Slot } from "../boot/types.ts";
import type { AgentClock } from "../clock.ts";
import type { AgentConfig } from "../config.ts";
import type { HealthResult } from "../health.ts";
import type { KubernetesCoordinator } from "../kubernetes/coordinator.ts";
import type { Logger } from "../logger.ts";
import type { TerminalReport } from "../report.ts";
import type { AgentEvent } from "../state-machine.ts";
import type { CurrentJob, PersistedState } from "../state-store.ts";
import type { TrustStore } from "../trust.ts";

export interface StateContext {
  readonly config: AgentConfig;
  readonly boot: BootControl;
  readonly trust: TrustStore;
  readonly clock: AgentClock;
  readonly logger: Logger;
  /** Aborts on cancel (before activation) and on agent stop. */
  readonly signal: AbortSignal;
  /** Aborts only when the agent stops: work after activation is never abandoned on a cancel. */
  readonly stopSignal: AbortSignal;
  /** The persisted record; handlers change it and call save() before relying on the change. */
  readonly record: PersistedState;
  readonly job: CurrentJob;
  /** The slot this boot runs from. */
  readonly booted: Slot;
  /** Persists `record` (atomic). */
  save(): Promise<void>;
  /** Best-effort IN_PROGRESS details while a handler runs (download progress). */
  progress(details: Record<string, string>): void;
  /** Bytes in the slot so far, after every chunk (a progress bar in `keel-agent install`). */
  onBytes?: (done: number, total: number) => void;
  /** An expired presigned URL: ask the cloud for the job again (fresh URLs). Absent without a cloud job. */
  refreshDocument?: () => Promise<void>;
  /** Restarts the machine; return its result: the state saved before the call says what to do after the boot. */
  reboot(): Promise<AwaitReboot>;
  /** Runs the configured health checks against a deadline. */
  checkHealth(deadlineMs: number): Promise<HealthResult>;
  /** Runs a hook (sh -c); rejects with CommandFailedError when it exits non-zero. */
  runHook(command: string): Promise<void>;
  /** The cluster around this node (docs/kubernetes.md); absent when agent.json has no `kubernetes` section. */
  readonly cluster?: KubernetesCoordinator;
  /** Sends the terminal status to IoT Jobs until accepted; nothing for a standalone install. */
  report(report: TerminalReport): Promise<void>;
}

/** A handler's result that asks the driver to wait for the reboot it requested (or for stop). */
export interface AwaitReboot {
  readonly wait: "reboot";
}
export const AWAIT_REBOOT: AwaitReboot = { wait: "reboot" };

export interface Transition {
  event: AgentEvent;
  /** Why (a refusal, a failure, a rollback): recorded on the job and in the last result. */
  reason?: string;
}

export type StateResult = Transition | AwaitReboot;

export interface StateHandler {
  /** Names the handler in log lines (`step` field). */
  readonly name: string;
  /** The work of one state; idempotent, since after a crash it runs again from the start. */
  run(ctx: StateContext): Promise<StateResult>;
}
