/**
 * Crash-safe whole-file replacement (docs/bootloaders.md#how-the-tools-write-it): write `<file>.new`, fsync it,
 * rename it over the target, fsync the directory. A power cut at any byte leaves either the old file
 * (the temp file is ignored by every reader) or the complete new one; never a short grubenv.
 */
import { constants } from "node:fs";
import { open, rename } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { describeError } from "../../core/errors.ts";
import { fsyncDir, writeSynced } from "../fs-atomic.ts";
import { BootIoError } from "./errors.ts";

/** The temp name next to the target; the same suffix grub-editenv `create` uses. */
export const tempPathFor = (path: string): string => join(dirname(path), `${basename(path)}.new`);

export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    // O_TRUNC, not O_EXCL: a `.new` left by a power cut is simply overwritten.
    await writeSynced(tmp, data, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    throw new BootIoError(`cannot write ${path}: ${describeError(err)}`, { cause: err });
  }
}

/** Writes `data` at `offset` of an existing file or block device and fsyncs it (one U-Boot env copy). */
export async function writeAt(path: string, offset: number, data: Uint8Array): Promise<void> {
  try {
    const fh = await open(path, constants.O_WRONLY);
    try {
      await fh.write(data, 0, data.byteLength, offset);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new BootIoError(`cannot write ${data.byteLength} bytes at offset ${offset} of ${path}`, {
      cause: err,
    });
  }
}

/** Reads `size` bytes at `offset`; a short read (file too small) is an error, not silent zeros. */
export async function readAt(path: string, offset: number, size: number): Promise<Buffer> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, constants.O_RDONLY);
  } catch (err) {
    throw new BootIoError(`cannot open ${path}: ${describeError(err)}`, { cause: err });
  }
  try {
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < size) {
      throw new BootIoError(`${path}: expected ${size} bytes at offset ${offset}, file ends after ${got}`);
    }
    return buf;
  } catch (err) {
    if (err instanceof BootIoError) throw err;
    throw new BootIoError(`cannot read ${path}: ${describeError(err)}`, { cause: err });
  } finally {
    await fh.close();
  }
}
