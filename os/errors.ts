/**
 * Named errors for the KeelOS image builder (`keel os build|run`). Each says what is wrong in terms the
 * operator can act on (which input, which tool, which size) and keeps the underlying error as `cause`.
 */
import { KeelError } from "../core/errors.ts";

/** An input that cannot make a bootable image (no agent bundle, disk too small, …); nothing was written. */
export class OsInputError extends KeelError {
  override name = "OsInputError";
}

/** An external tool (mmdebstrap, sgdisk, grub-mkimage, qemu, …) that failed; `output` keeps its last lines. */
export class OsToolError extends KeelError {
  override name = "OsToolError";
  constructor(
    readonly tool: string,
    message: string,
    readonly output = "",
    options?: { cause?: unknown },
  ) {
    super(`${tool}: ${message}${output.trim() ? `\n${output.trim()}` : ""}`, options);
  }
}

/** `keel os flash` refused its target (mounted, too small, not a disk, not confirmed); nothing was written. */
export class FlashRefusedError extends KeelError {
  override name = "FlashRefusedError";
}
