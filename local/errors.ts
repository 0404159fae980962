/**
 * Named errors for the local cloud's transport (CA, brokers, s3rver, dynalite, startLocalCloud). Each says
 * which component and which file or port failed, and keeps the underlying error as `cause`.
 */
import { KeelError } from "../core/errors.ts";

/** The local CA directory could not be read, created or holds something that is not our CA. */
export class LocalCaError extends KeelError {
  override name = "LocalCaError";
  constructor(
    readonly dir: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`local CA in ${dir}: ${message}`, options);
  }
}

/** A local service (broker, s3rver, dynalite, …) that did not start or did not stop cleanly. */
export class LocalServiceError extends KeelError {
  override name = "LocalServiceError";
  constructor(
    readonly service: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${service}: ${message}`, options);
  }
}

/** `.keel/local.json` (or another local config file) that is missing or does not match its schema. */
export class LocalConfigError extends KeelError {
  override name = "LocalConfigError";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}
