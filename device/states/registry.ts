/**
 * Every non-Idle state's handler, in one registry (docs/agent.md). Typed as a total record over
 * WorkState: a state added to the table without a handler does not compile, and the driver (agent.ts)
 * looks handlers up here and nowhere else.
 */
import { activate, download, validate, verify } from "../install/steps.ts";
import type { WorkState } from "../state-machine.ts";
import { healthChecking, rebooting, rollingBack } from "./boot-decision.ts";
import type { StateHandler } from "./context.ts";
import {
  acquiringRebootSlot,
  draining,
  inCluster,
  releasingCluster,
  withNodeReady,
  withRebootRecheck,
} from "./kubernetes.ts";
import { cancelled, committed, failed, rejected, rolledBack } from "./terminal.ts";
import { waitingForWindow, waitingToReboot, windowGate } from "./window.ts";

export const HANDLERS: Readonly<Record<WorkState, StateHandler>> = {
  Validating: windowGate(validate, ["accepted"]),
  Downloading: download,
  Verifying: windowGate(inCluster(verify), ["verified", "verified-in-cluster"]),
  AcquiringRebootSlot: acquiringRebootSlot,
  Draining: draining,
  Activating: activate,
  Rebooting: withRebootRecheck(rebooting),
  HealthChecking: withNodeReady(healthChecking),
  RollingBack: rollingBack,
  Committed: releasingCluster(committed, "commit"),
  RolledBack: releasingCluster(rolledBack, "rolled-back"),
  Rejected: rejected,
  Failed: releasingCluster(failed, "best-effort"),
  Cancelled: releasingCluster(cancelled, "best-effort"),
  WaitingToDownload: waitingForWindow(),
  WaitingToReboot: waitingToReboot,
};
