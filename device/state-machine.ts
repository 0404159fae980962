/**
 * The whole device update flow as ONE transition table (docs/style.md#shapes-we-follow, items 1 and 2, after Mender's
 * state_machine.cpp). States and events are closed unions; every (state, event) pair not listed is
 * refused with IllegalTransitionError. The agent persists the next state BEFORE it starts that state's
 * work, and on start simply re-runs the work of the state it finds (every action is idempotent), so
 * "resume" needs no rows of its own; a re-entry counter turns a crash loop into the `loop` event.
 * `cancel` has rows only before activation: from Activating on, a cancelled job is refused by the table
 * (the agent logs it), finishes the boot decision and reports the truth (docs/iot-jobs.md §6.6).
 */
import { IllegalTransitionError } from "./errors.ts";

export const STATES = [
  "Idle",
  "Validating",
  "Downloading",
  "Verifying",
  "AcquiringRebootSlot",
  "Draining",
  "Activating",
  "Rebooting",
  "HealthChecking",
  "RollingBack",
  "Committed",
  "RolledBack",
  "Rejected",
  "Failed",
  "Cancelled",
  "WaitingToDownload", // docs/fleets.md#maintenance-windows: accepted, outside the job's windows
  "WaitingToReboot", // verified, outside the job's windows: nothing armed, no drain yet
] as const;
export type State = (typeof STATES)[number];

/** Every state but Idle has a handler (device/states/registry.ts); Idle is the driver's wait for a job. */
export type WorkState = Exclude<State, "Idle">;

export const EVENTS = [
  "job", // a new job execution (or a standalone install) was taken
  "accepted", // document, signed manifest and acceptance checks passed; the image fits the slot
  "already", // the release asked for already runs in the booted slot
  "refused", // the job cannot be accepted (bad document, signature, downgrade, hardware, version, size)
  "downloaded", // image streamed into the slot; size and SHA-256 match the manifest
  "verified", // read-back hash of the slot matches
  "verified-in-cluster", // the same, on a Kubernetes node: take a reboot slot and drain before activating
  "slot-taken", // this node holds a cluster reboot slot and the health gate allows it
  "drained", // cordoned, and every pod a drain moves is gone
  "drain-timeout", // the drain did not finish in time: uncordoned, slot given back, nothing activated
  "activated", // bootloader set to try the new slot once
  "booted-trial", // running from the new slot after the reboot
  "booted-old", // running from the old slot: the firmware fell back, or our rollback reboot happened
  "healthy",
  "unhealthy",
  "fail", // an error before activation: download, hash mismatch, I/O
  "cancel", // the job was cancelled or removed in the cloud
  "loop", // this state was re-entered too many times across restarts
  "operator-rollback", // `keel-agent rollback` cancelled a pending trial: no verdict on the release
  "abandon", // `keel-agent abandon` dropped a standalone install cut before activation
  "reported", // the terminal status was accepted (or there is nobody to tell)
  "outside-window", // accepted or verified, but none of the job's maintenance windows is open
  "window-open", // a maintenance window opened: go on with the download or the reboot
  "window-open-in-cluster", // the same on a Kubernetes node: take a reboot slot and drain first
] as const;
export type AgentEvent = (typeof EVENTS)[number];

/** Terminal states: their only work is to report the outcome, then return to Idle. */
export const TERMINAL_STATES: ReadonlySet<State> = new Set([
  "Committed",
  "RolledBack",
  "Rejected",
  "Failed",
  "Cancelled",
]);

/** Before activation a cancel abandons the install; from Activating on, the boot decision is finished. */
export const PRE_ACTIVATION_STATES: ReadonlySet<State> = new Set([
  "Validating",
  "WaitingToDownload",
  "WaitingToReboot",
  "Downloading",
  "Verifying",
  "AcquiringRebootSlot",
  "Draining",
]);

/**
 * A standalone install (`keel-agent install`) owns these states: a cut one is finished with
 * `install --resume` or dropped with `abandon`, never by the daemon (which would reboot the node unasked).
 */
export const STANDALONE_STATES: ReadonlySet<State> = new Set([
  "Validating",
  "Downloading",
  "Verifying",
  "Activating",
]);

/** The new slot is recorded and set (or being set) to be tried, and nobody has committed it yet. */
export const TRIAL_STATES: ReadonlySet<State> = new Set(["Activating", "Rebooting", "HealthChecking"]);

/**
 * The rows on which a release that was tried (booted, or set to boot and given up by the firmware or a
 * boot loop) is judged a failure on this node. A pre-reboot hook failing never tried the release, and an
 * operator's rollback (its own event) is no verdict on it.
 */
const FAILED_TRIAL = new Set([
  "Activating|booted-old",
  "Rebooting|booted-old",
  "Rebooting|loop",
  "HealthChecking|unhealthy",
  "HealthChecking|booted-old",
  "HealthChecking|loop",
]);

export function isFailedTrial(state: State, event: AgentEvent): boolean {
  return FAILED_TRIAL.has(`${state}|${event}`);
}

type Row = readonly [from: State, event: AgentEvent, to: State];

// biome-ignore format: one row per line is the point of this table
export const TRANSITIONS: ReadonlyArray<Row> = [
  ["Idle",           "job",          "Validating"],
  ["Validating",     "accepted",     "Downloading"],
  ["Validating",     "already",      "Committed"],      // a lost SUCCEEDED report or a re-sent job: report the truth, no reinstall
  ["Validating",     "refused",      "Rejected"],
  ["Validating",     "fail",         "Failed"],         // manifest or roots unreachable: FAILED, so the job's retry config may retry
  ["Validating",     "cancel",       "Cancelled"],
  ["Validating",     "loop",         "Failed"],
  ["Downloading",    "downloaded",   "Verifying"],
  ["Downloading",    "fail",         "Failed"],         // includes hash/size mismatch: the bootloader was never pointed at the slot
  ["Downloading",    "cancel",       "Cancelled"],
  ["Downloading",    "loop",         "Failed"],
  ["Verifying",      "verified",     "Activating"],
  ["Verifying",      "fail",         "Failed"],
  ["Verifying",      "cancel",       "Cancelled"],
  ["Verifying",      "loop",         "Failed"],
  ["Verifying",      "verified-in-cluster", "AcquiringRebootSlot"], // docs/kubernetes.md: slot, cordon, drain, then activate
  ["AcquiringRebootSlot", "slot-taken", "Draining"],
  ["AcquiringRebootSlot", "fail",     "Failed"],         // the cluster cannot be asked (credentials, RBAC)
  ["AcquiringRebootSlot", "cancel",   "Cancelled"],
  ["AcquiringRebootSlot", "loop",     "Failed"],
  ["Draining",       "drained",      "Activating"],
  ["Draining",       "drain-timeout", "Failed"],         // uncordoned and the slot given back first; the slots were never touched
  ["Draining",       "fail",         "Failed"],
  ["Draining",       "cancel",       "Cancelled"],
  ["Draining",       "loop",         "Failed"],
  ["Validating",     "abandon",      "Cancelled"],
  ["Downloading",    "abandon",      "Cancelled"],
  ["Verifying",      "abandon",      "Cancelled"],
  ["Activating",     "abandon",      "Cancelled"],      // only while the old slot runs: the trial is disarmed first
  ["Activating",     "booted-old",   "RolledBack"],     // a cut after arming: the firmware tried the slot and fell back; never re-armed
  ["Activating",     "activated",    "Rebooting"],
  ["Rebooting",      "booted-trial", "HealthChecking"],
  ["Rebooting",      "booted-old",   "RolledBack"],     // the firmware fell back: the new slot never came up
  ["Rebooting",      "fail",         "RollingBack"],    // a pre-reboot hook failed: give the new slot up before booting it
  ["Rebooting",      "loop",         "RollingBack"],    // rebooting keeps not happening: give the slot up
  ["Rebooting",      "operator-rollback", "RollingBack"], // the operator cancelled the trial before the reboot
  ["HealthChecking", "healthy",      "Committed"],
  ["HealthChecking", "unhealthy",    "RollingBack"],
  ["HealthChecking", "booted-old",   "RolledBack"],     // died during the checks and the firmware fell back
  ["HealthChecking", "loop",         "RollingBack"],    // the new slot crashes the agent on every boot
  ["HealthChecking", "operator-rollback", "RollingBack"], // the operator cancelled the trial during the checks
  ["RollingBack",    "booted-old",   "RolledBack"],
  ["Committed",      "reported",     "Idle"],
  ["RolledBack",     "reported",     "Idle"],
  ["Rejected",       "reported",     "Idle"],
  ["Failed",         "reported",     "Idle"],
  ["Cancelled",      "reported",     "Idle"],           // nothing to tell: the job is gone
  // Maintenance windows (docs/fleets.md#maintenance-windows): no `loop` rows, the wait touches nothing.
  ["Validating",     "outside-window", "WaitingToDownload"],
  ["WaitingToDownload", "window-open", "Downloading"],
  ["WaitingToDownload", "cancel",    "Cancelled"],
  ["Verifying",      "outside-window", "WaitingToReboot"], // the slot is written and checked; nothing armed yet
  ["WaitingToReboot", "window-open", "Activating"],
  ["WaitingToReboot", "window-open-in-cluster", "AcquiringRebootSlot"],
  ["WaitingToReboot", "cancel",      "Cancelled"],
];

const INDEX = new Map<string, State>(TRANSITIONS.map(([from, event, to]) => [`${from}|${event}`, to]));

export function canTransition(state: State, event: AgentEvent): boolean {
  return INDEX.has(`${state}|${event}`);
}

/** The next state, or IllegalTransitionError when the table has no row for (state, event). */
export function transition(state: State, event: AgentEvent): State {
  const to = INDEX.get(`${state}|${event}`);
  if (to === undefined) throw new IllegalTransitionError(state, event);
  return to;
}

/** The `phase` sent in IN_PROGRESS status details (docs/iot-jobs.md §6.3: resume from it after reboot). */
export function phaseOf(state: State): string {
  return state.toLowerCase();
}
