/**
 * Named errors for core/. Every error says what failed in terms a person can act on: which key, which
 * threshold (have/need), which field path, which expiry, expected vs actual. `cause` is always kept.
 */
export class KeelError extends Error {
  override name = "KeelError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class CanonicalJsonError extends KeelError {
  override name = "CanonicalJsonError";
}

/** Input that does not match its schema; `issues` lists each field path and what is wrong there. */
export class SchemaError extends KeelError {
  override name = "SchemaError";
  constructor(
    readonly what: string,
    readonly issues: ReadonlyArray<{ path: string; message: string }>,
    options?: { cause?: unknown },
  ) {
    super(`invalid ${what}: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`, options);
  }
}

/**
 * Text that is not strict JSON: bad syntax or UTF-8, a member name given twice, nesting too deep. A
 * SchemaError, so every caller that refuses bad input refuses this too.
 */
export class StrictJsonError extends SchemaError {
  override name = "StrictJsonError";
}

/** A trust root whose key id is not the SHA-256 of the public key it names. */
export class KeyIdMismatchError extends SchemaError {
  override name = "KeyIdMismatchError";
}

/** Not enough valid signatures from the keys a role trusts. */
export class ThresholdError extends KeelError {
  override name = "ThresholdError";
  /** `role` is the label verifyRole builds, e.g. "release role (root v2)"; it already says "role". */
  constructor(
    readonly role: string,
    readonly have: number,
    readonly need: number,
    readonly details: ReadonlyArray<string>,
  ) {
    super(
      `${role}: ${have} valid signature(s) of ${need} needed${details.length ? ` (${details.join("; ")})` : ""}`,
    );
  }
}

export class ExpiredError extends KeelError {
  override name = "ExpiredError";
  constructor(
    readonly what: string,
    readonly expiresAt: string,
    readonly now: string,
  ) {
    super(`${what} expired at ${expiresAt} (trusted time is ${now})`);
  }
}

export class RootRotationError extends KeelError {
  override name = "RootRotationError";
}

export const AcceptanceCode = {
  Downgrade: "DOWNGRADE",
  EqualCounter: "EQUAL_COUNTER",
  Incompatible: "INCOMPATIBLE_HARDWARE",
  VersionMismatch: "VERSION_MISMATCH",
} as const;
export type AcceptanceCode = (typeof AcceptanceCode)[keyof typeof AcceptanceCode];

/** A verified release that this device must still refuse (anti-rollback, hardware, director/repo agreement). */
export class AcceptanceError extends KeelError {
  override name = "AcceptanceError";
  constructor(
    readonly code: AcceptanceCode,
    message: string,
  ) {
    super(message);
  }
}

export class ImageMismatchError extends KeelError {
  override name = "ImageMismatchError";
  constructor(
    readonly field: "size" | "sha256",
    readonly expected: string | number,
    readonly actual: string | number,
  ) {
    super(`image ${field} mismatch: expected ${expected}, got ${actual}`);
  }
}

export class KeyFileError extends KeelError {
  override name = "KeyFileError";
}

export class DurationError extends KeelError {
  override name = "DurationError";
}

/** Turns anything thrown into a message without losing it; for CLIs and status details. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A chunk index (delta updates) that is malformed, does not match its signed digest, or its image. */
export class ChunkIndexError extends KeelError {
  override name = "ChunkIndexError";
}

/**
 * A PKCS#10 certificate signing request that is refused: not PEM, not DER, not a CSR, a key other than EC
 * P-256, a signature that does not verify. A SchemaError, so the rollout API answers 400 with the reason.
 */
export class CsrError extends SchemaError {
  override name = "CsrError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("certificate signing request", [{ path: "csr", message }], options);
  }
}
