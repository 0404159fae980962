/**
 * Reads a file once, front to back, for its size and SHA-256: the two facts a release manifest signs.
 * Streaming keeps memory flat whatever the image size.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { describeError } from "../core/errors.ts";
import { CliFileError } from "./errors.ts";
import { regularFileSize } from "./inputs.ts";
import { progressBar } from "./progress.ts";

export interface FileDigest {
  size: number;
  sha256: string;
}

const CHUNK = 1024 * 1024;

/** Streams `path` once; `onProgress(bytesSoFar, totalBytes)` is called after each chunk. */
export async function hashFile(
  path: string,
  onProgress?: (done: number, total: number) => void,
): Promise<FileDigest> {
  const total = await regularFileSize(path, "cannot read image");
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
      const buf = chunk as Buffer;
      hash.update(buf);
      size += buf.length;
      onProgress?.(size, total);
    }
  } catch (err) {
    throw new CliFileError(path, `read failed after ${size} bytes (${describeError(err)})`, {
      cause: err,
    });
  }
  return { size, sha256: hash.digest("hex") };
}

/** Images at least this large get a progress bar on a terminal; smaller ones hash in a blink. */
const PROGRESS_MIN_BYTES = 32 * 1024 * 1024;

/** hashFile with the shared progress bar for large files (drawn only on a terminal). */
export async function hashFileWithProgress(path: string, label = "hashing"): Promise<FileDigest> {
  let bar: ReturnType<typeof progressBar> | undefined;
  try {
    return await hashFile(path, (done, total) => {
      if (bar === undefined) bar = progressBar(label, total >= PROGRESS_MIN_BYTES ? total : 0);
      bar.update(done);
    });
  } finally {
    bar?.stop();
  }
}
