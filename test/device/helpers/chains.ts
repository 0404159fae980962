/**
 * The state chains a whole install walks through, as tests expect them: spelled out here once, not derived
 * from the transition table, so a change to the table shows up as a failing test.
 */
import type { State } from "../../../device/state-machine.ts";

/** Every install that gets as far as the health check on the new slot walks this far. */
const TO_HEALTH_CHECK: readonly State[] = [
  "Validating",
  "Downloading",
  "Verifying",
  "Activating",
  "Rebooting",
  "HealthChecking",
];

/** A job from Idle to a committed new slot, and back to Idle. */
export const HEALTHY_CHAIN: readonly State[] = [...TO_HEALTH_CHECK, "Committed", "Idle"];

/** The same job when the health check fails on the new slot: rolled back to the old one. */
export const SICK_CHAIN: readonly State[] = [...TO_HEALTH_CHECK, "RollingBack", "RolledBack", "Idle"];

/** On a Kubernetes node (docs/kubernetes.md): a reboot slot and a drain come between verifying and activating. */
const CLUSTER_TO_HEALTH_CHECK: readonly State[] = [
  "Validating",
  "Downloading",
  "Verifying",
  "AcquiringRebootSlot",
  "Draining",
  "Activating",
  "Rebooting",
  "HealthChecking",
];
export const CLUSTER_HEALTHY_CHAIN: readonly State[] = [...CLUSTER_TO_HEALTH_CHECK, "Committed", "Idle"];
export const CLUSTER_SICK_CHAIN: readonly State[] = [
  ...CLUSTER_TO_HEALTH_CHECK,
  "RollingBack",
  "RolledBack",
  "Idle",
];
