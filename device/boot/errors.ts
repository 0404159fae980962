/**
 * Named errors for device/boot/. Each says which file, which variable or which copy is at fault so an
 * operator can act on it; `cause` is always kept.
 */
import { KeelError } from "../../core/errors.ts";

export class BootError extends KeelError {
  override name = "BootError";
}

/** The on-disk bytes are not an environment block / environment we can decode. */
export class BootEnvFormatError extends BootError {
  override name = "BootEnvFormatError";
}

/** The new variables do not fit into the existing block (grub-editenv: "environment block too small"). */
export class BootEnvTooSmallError extends BootError {
  override name = "BootEnvTooSmallError";
  constructor(
    readonly file: string,
    readonly size: number,
    options?: { cause?: unknown },
  ) {
    super(`${file}: environment block too small (${size} bytes)`, options);
  }
}

/** A U-Boot environment where neither copy has a valid CRC; U-Boot would boot with its built-in default. */
export class NoValidEnvError extends BootError {
  override name = "NoValidEnvError";
}

/** Reading or writing the environment failed at the OS level (ENOENT, EACCES, EIO …). */
export class BootIoError extends BootError {
  override name = "BootIoError";
}

/** A request the backend cannot honour (bad variable name, marking a slot that does not exist …). */
export class BootUsageError extends BootError {
  override name = "BootUsageError";
}
