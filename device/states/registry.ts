/**
 * Every non-Idle state's handler, in one registry (docs/agent.md). Typed as a total record over
 * WorkState: a state added to the table without a handler does not compile, and the driver (agent.ts)
 * looks handlers up here and nowhere else.
 */
import { activate, download, validate, verify } from "../install/steps.ts";
import type { WorkState } from "../state-machine.ts";
import { healthChecking, rebooting, rollingBack } from "./boot-decision.ts";
import type { StateHandler } from "./context.ts";
import { cancelled, committed, failed, rejected, rolledBack } from "./terminal.ts";

export const HANDLERS: Readonly<Record<WorkState, StateHandler>> = {
  Validating: validate,
  Downloading: download,
  Verifying: verify,
  Activating: activate,
  Rebooting: rebooting,
  HealthChecking: healthChecking,
  RollingBack: rollingBack,
  Committed: committed,
  RolledBack: rolledBack,
  Rejected: rejected,
  Failed: failed,
  Cancelled: cancelled,
};
