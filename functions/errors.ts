/**
 * Named errors for functions/. Handlers map them to HTTP statuses (rollout API) or log them; `cause` is
 * always kept so logs show the SDK error under ours.
 */
import { KeelError } from "../core/errors.ts";

/** The thing asked for does not exist (404). */
export class NotFoundError extends KeelError {
  override name = "NotFoundError";
}

/** A state change that does not apply to the current state, or a refused request (409). */
export class ConflictError extends KeelError {
  override name = "ConflictError";
}

/** A rollout that the rules refuse: release not VERIFIED, downgrade, fleet busy (409 with the reason). */
export class RolloutRefusedError extends ConflictError {
  override name = "RolloutRefusedError";
}

/** Another writer changed the item first; callers re-read and decide again. */
export class StaleStateError extends KeelError {
  override name = "StaleStateError";
}

/** An AWS call that failed for a reason we do not handle; keeps the SDK error. */
export class CloudCallError extends KeelError {
  override name = "CloudCallError";
}

/**
 * An AWS call whose input breaks AWS's own limits (core/aws-limits.ts), refused before it is sent:
 * retrying cannot help, so a rollout that meets one stalls at once.
 */
export class AwsLimitError extends CloudCallError {
  override name = "AwsLimitError";
}

/** The AWS SDK error name (`ResourceAlreadyExistsException`, …) of an unknown thrown value. */
export function awsErrorName(err: unknown): string | undefined {
  if (err instanceof Error) return err.name;
  return undefined;
}

/** A path that exists, asked with a method it does not take (405). */
export class MethodNotAllowedError extends KeelError {
  override name = "MethodNotAllowedError";
}

/** A request body over the 6 MB a Lambda Function URL takes (413). */
export class PayloadTooLargeError extends KeelError {
  override name = "PayloadTooLargeError";
}

/** A signed caller the rule in force does not let do this (403): not on a fleet's enrolment allow-list. */
export class ForbiddenError extends KeelError {
  override name = "ForbiddenError";
}
