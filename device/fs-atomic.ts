/**
 * Crash-safe small-file writes (docs/architecture.md#persisted-state-machine): write a temp file in the same
 * directory, fsync it, rename it over the target, fsync the directory. After a power cut the file holds
 * either the old or the new bytes, never a mix.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Makes a rename durable: without it a power cut can bring back the old directory entry. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `data` to `path`, opened with `flags` and `mode`, and fsyncs it before closing, so the bytes are
 * on disk before the caller renames the file over its target.
 */
export async function writeSynced(
  path: string,
  data: string | Uint8Array,
  flags: string | number,
  mode: number,
): Promise<void> {
  const fh = await open(path, flags, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeSynced(tmp, data, "wx", 0o600);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}
