/**
 * Named errors for the `keel` CLI. Core errors (threshold, expiry, schema, …) pass through unchanged, so
 * the operator sees the exact reason core gives; these add what only the CLI knows (files, tools, flags).
 */
import { KeelError } from "../core/errors.ts";

/** Something the operator asked for that cannot be done as asked (bad flag value, refused overwrite). */
export class CliUsageError extends KeelError {
  override name = "CliUsageError";
}

/** A file the CLI had to read or write; names the path and keeps the system error as `cause`. */
export class CliFileError extends KeelError {
  override name = "CliFileError";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** An external tool (mksquashfs) that failed; `stderr` keeps what it printed. */
export class CliToolError extends KeelError {
  override name = "CliToolError";
  constructor(
    readonly tool: string,
    message: string,
    readonly stderr = "",
    options?: { cause?: unknown },
  ) {
    super(`${tool}: ${message}${stderr.trim() ? `\n${stderr.trim()}` : ""}`, options);
  }
}

/** A release or root that does not verify; the message leads with the file and keeps core's reason. */
export class VerificationFailedError extends KeelError {
  override name = "VerificationFailedError";
  constructor(
    readonly file: string,
    options: { cause: unknown },
  ) {
    super(
      `${file} is NOT valid: ${options.cause instanceof Error ? options.cause.message : String(options.cause)}`,
      options,
    );
  }
}

/** The system error code (ENOENT, EEXIST, …) of an unknown thrown value, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}
