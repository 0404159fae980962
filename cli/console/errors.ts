/**
 * Named errors of `keel console`'s server. Each carries the HTTP status the browser gets, and the message
 * says what was refused and why, so the page can show it as is.
 */
import { KeelError } from "../../core/errors.ts";

/** A request the console refuses before anything reaches the rollout API. */
export class ConsoleRequestError extends KeelError {
  override name = "ConsoleRequestError";
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The rollout API answered something the console cannot read (not the shape its routes promise). */
export class ConsoleUpstreamError extends KeelError {
  override name = "ConsoleUpstreamError";
}

/** The web app failed to bundle at start (a broken source file): nothing would work, so the start fails. */
export class ConsoleBundleError extends KeelError {
  override name = "ConsoleBundleError";
}

/** The console cannot listen where asked (port in use, not permitted). */
export class ConsoleListenError extends KeelError {
  override name = "ConsoleListenError";
}
