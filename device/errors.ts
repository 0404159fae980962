/**
 * Named errors for keel-agent (device/). Each names what failed in terms an operator can act on (which
 * file, which URL, which slot, which check) and keeps the underlying error as `cause`.
 */
import { KeelError } from "../core/errors.ts";

/** agent.json (or a flag / env override) that does not match the config schema. */
export class AgentConfigError extends KeelError {
  override name = "AgentConfigError";
}

/** The persisted agent state could not be read or written. */
export class StateStoreError extends KeelError {
  override name = "StateStoreError";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** An event the transition table has no row for: a bug or a message that makes no sense now. */
export class IllegalTransitionError extends KeelError {
  override name = "IllegalTransitionError";
  constructor(
    readonly state: string,
    readonly event: string,
  ) {
    super(`event ${event} is not allowed in state ${state}`);
  }
}

/** A download that could not complete (after bounded retries), or a URL that no longer works. */
export class DownloadError extends KeelError {
  override name = "DownloadError";
  constructor(
    readonly url: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${redactUrl(url)}: ${message}`, options);
  }
}

/** HTTP 403 on a presigned URL: it expired (or was never valid); retrying the same URL cannot help. */
export class ExpiredUrlError extends DownloadError {
  override name = "ExpiredUrlError";
}

/** Delta updates: the server answered a Range request with the whole object. */
export class RangeUnsupportedError extends DownloadError {
  override name = "RangeUnsupportedError";
}

export type DeadlinePhase = "headers" | "idle" | "total";

/**
 * A network read that missed its deadline: no response headers in time, no byte for too long, or the
 * whole fetch (retries included) not done in time. Headers and idle count as a cut and are retried;
 * this error is what remains once the retries are spent, or at once for `total`.
 */
export class DownloadTimeoutError extends DownloadError {
  override name = "DownloadTimeoutError";
  constructor(
    url: string,
    readonly phase: DeadlinePhase,
    readonly ms: number,
    message = DEADLINE_MESSAGES[phase](ms),
    options?: { cause?: unknown },
  ) {
    super(url, message, options);
  }
}

const DEADLINE_MESSAGES: Record<DeadlinePhase, (ms: number) => string> = {
  headers: (ms) => `no response headers within ${ms} ms`,
  idle: (ms) => `no data for ${ms} ms`,
  total: (ms) => `not finished within ${ms} ms`,
};

/** Delta updates: the delta path cannot go on (no usable index or seed, a chunk that does not verify). */
export class DeltaUnavailableError extends KeelError {
  override name = "DeltaUnavailableError";
}

/** The slot (block device or file) could not be opened, sized, written or read back. */
export class SlotError extends KeelError {
  override name = "SlotError";
  constructor(
    readonly slotPath: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`slot ${slotPath}: ${message}`, options);
  }
}

/** The image does not fit in the target slot; found before a single byte is written. */
export class SlotTooSmallError extends SlotError {
  override name = "SlotTooSmallError";
}

/** The kernel command line does not say which slot booted. */
export class BootedSlotError extends KeelError {
  override name = "BootedSlotError";
}

/** A job the agent cannot accept (bad document, signature, downgrade, hardware, version, size). */
export class RefusedError extends KeelError {
  override name = "RefusedError";
}

/** The MQTT jobs request timed out or was rejected by the service. */
export class JobsRequestError extends KeelError {
  override name = "JobsRequestError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A hook or the reboot command that exited non-zero. */
export class CommandFailedError extends KeelError {
  override name = "CommandFailedError";
}

/** The operation was abandoned because the job was cancelled or the agent is stopping. */
export class AbortedError extends KeelError {
  override name = "AbortedError";
}

/** Presigned URLs carry credentials in their query string: never log them. */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : `${url.slice(0, q)}?…`;
}

/** An agent method that needs the loaded state (booted slot, saved record) was called before loading it. */
export class AgentNotStartedError extends KeelError {
  override name = "AgentNotStartedError";
}

/** The saved record names a working state but carries no job: nothing can be resumed from it. */
export class MissingJobError extends KeelError {
  override name = "MissingJobError";
}

/** The slot to be written is the running one (or both slots are the same storage): nothing is written. */
export class SameSlotError extends KeelError {
  override name = "SameSlotError";
}

/** `keel-agent enroll` could not finish: the API refused (status and reason), or a file could not be written. */
export class EnrolmentError extends KeelError {
  override name = "EnrolmentError";
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Enrolment by claim (fleet provisioning) failed: which step, and AWS's reason when it refused. */
export class ClaimEnrolmentError extends KeelError {
  override name = "ClaimEnrolmentError";
}
