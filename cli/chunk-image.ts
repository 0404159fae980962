/**
 * The chunk index of a release image (docs/delta.md): computed over the SquashFS part of the file and
 * appended right after it, so the image object stays the only copy of the bytes and a device fetches the
 * index with one Range request on the image's own (presigned) URL. The manifest signs offset, size and
 * SHA-256 of that tail.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, truncate } from "node:fs/promises";
import {
  Chunker,
  type ChunkIndex,
  type ChunkParams,
  DEFAULT_CHUNK_PARAMS,
  decodeIndex,
  encodeIndex,
  SQUASHFS_SUPERBLOCK_BYTES,
  squashfsEnd,
} from "../core/chunk-index.ts";
import { ChunkIndexError } from "../core/errors.ts";
import type { ChunkIndexRef } from "../core/schemas.ts";
import { CliFileError } from "./errors.ts";
import { regularFileSize } from "./inputs.ts";
import { progressBar } from "./progress.ts";

export interface ImageLayout {
  size: number;
  /** End of the SquashFS filesystem (4 KiB padded); null when the file is not SquashFS. */
  fsEnd: number | null;
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function imageLayout(path: string): Promise<ImageLayout> {
  const size = await regularFileSize(path, "cannot read image");
  const fsEnd = squashfsEnd(await readAt(path, 0, SQUASHFS_SUPERBLOCK_BYTES));
  if (fsEnd !== null && fsEnd > size) {
    throw new CliFileError(path, `SquashFS says it is ${fsEnd} bytes but the file has only ${size}`);
  }
  return { size, fsEnd };
}

/** Chunks [0, fsEnd) of the file in one streaming pass, with a progress bar on a terminal for large images. */
export async function computeIndex(
  path: string,
  fsEnd: number,
  params: ChunkParams = DEFAULT_CHUNK_PARAMS,
): Promise<ChunkIndex> {
  const chunker = new Chunker(params);
  const chunks = [];
  const bar = progressBar("chunking", fsEnd >= 32 * 1024 * 1024 ? fsEnd : 0);
  let done = 0;
  try {
    if (fsEnd > 0) {
      for await (const b of createReadStream(path, { end: fsEnd - 1, highWaterMark: 1024 * 1024 })) {
        chunks.push(...chunker.push(b as Buffer));
        done += (b as Buffer).length;
        bar.update(done);
      }
    }
  } finally {
    bar.stop();
  }
  chunks.push(...chunker.finish());
  if (done !== fsEnd) throw new CliFileError(path, `read ${done} bytes of ${fsEnd} while chunking`);
  return { params, covered: fsEnd, chunks };
}

export function refOf(encoded: Buffer, offset: number): ChunkIndexRef {
  return { offset, size: encoded.length, sha256: createHash("sha256").update(encoded).digest("hex") };
}

/**
 * Makes the file end in exactly its chunk index: computes it, and appends it (dropping any stale tail)
 * unless it is already there byte for byte. With `write: false` a missing or stale tail is refused
 * instead, so the file is never changed. Returns null for a file that is not SquashFS.
 */
export async function ensureChunkIndex(
  path: string,
  opts: { write: boolean },
): Promise<ChunkIndexRef | null> {
  const layout = await imageLayout(path);
  if (layout.fsEnd === null) return null;
  const encoded = encodeIndex(await computeIndex(path, layout.fsEnd));
  const tail = await readAt(path, layout.fsEnd, layout.size - layout.fsEnd);
  if (tail.equals(encoded)) return refOf(encoded, layout.fsEnd);
  if (!opts.write) {
    throw new ChunkIndexError(
      `${path} does not end in its chunk index (the signed manifest names one); rebuild the image or sign it afresh`,
    );
  }
  await truncate(path, layout.fsEnd);
  const fh = await open(path, "a");
  try {
    await fh.write(encoded);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return refOf(encoded, layout.fsEnd);
}

/** The index a file carries (for `keel release diff`), or a freshly computed one when it carries none. */
export async function imageIndex(
  path: string,
): Promise<{ index: ChunkIndex; size: number; carried: boolean }> {
  const layout = await imageLayout(path);
  if (layout.fsEnd === null) throw new CliFileError(path, "is not a SquashFS image");
  if (layout.size > layout.fsEnd) {
    try {
      const index = decodeIndex(await readAt(path, layout.fsEnd, layout.size - layout.fsEnd));
      if (index.covered === layout.fsEnd) return { index, size: layout.size, carried: true };
    } catch (err) {
      if (!(err instanceof ChunkIndexError)) throw err;
    }
  }
  return { index: await computeIndex(path, layout.fsEnd), size: layout.size, carried: false };
}
