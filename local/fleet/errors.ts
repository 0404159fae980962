/** Named errors for the fleet simulator and the demo (one errors.ts per area, docs/style.md#rules). */
import { KeelError } from "../../core/errors.ts";

/** The simulated fleet could not be laid down, registered or started. */
export class FleetError extends KeelError {
  override name = "FleetError";
}

/** The demo did not reach the outcome it promises; the message says which check failed. */
export class DemoOutcomeError extends KeelError {
  override name = "DemoOutcomeError";
}

/** A wait (fleet settling, a rollout finishing) ran out of time; says what it was waiting for. */
export class WaitTimeoutError extends KeelError {
  override name = "WaitTimeoutError";
}
