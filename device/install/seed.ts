/**
 * The seed for a delta install (docs/delta.md): the chunks a node already holds, from the slots it has.
 * A slot's chunk list comes from the index its image carries after the SquashFS filesystem (read from
 * the slot itself), or is recomputed by chunking the filesystem when that index is missing, unreadable
 * or built with other parameters. Nothing here is trusted: a seed only says where a chunk probably is;
 * every chunk copied from a seed is checked against the new release's signed index before it is written.
 */
import { createReadStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import {
  type Chunk,
  Chunker,
  type ChunkIndex,
  type ChunkParams,
  decodeIndex,
  decodeIndexHeader,
  INDEX_HEADER_BYTES,
  indexByteLength,
  SQUASHFS_SUPERBLOCK_BYTES,
  squashfsEnd,
} from "../../core/chunk-index.ts";
import { ChunkIndexError } from "../../core/errors.ts";
import type { Slot } from "../boot/types.ts";
import type { Logger } from "../logger.ts";
import { releaseDeadBuffers } from "./memory.ts";
import { slotSize } from "./slot.ts";

export interface SeedSlot {
  slot: Slot;
  path: string;
  /**
   * The slot being written: its old chunks are usable only where the new image has not overwritten them
   * yet (source offset at or after the write position).
   */
  isTarget: boolean;
}

export interface SeedSource extends SeedSlot {
  index: ChunkIndex;
  /** "carried": read from the image's appended index; "computed": chunked on the node. */
  how: "carried" | "computed";
}

export interface SeedLocation {
  source: SeedSource;
  offset: number;
  length: number;
}

const sameParams = (a: ChunkParams, b: ChunkParams) => a.min === b.min && a.avg === b.avg && a.max === b.max;

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

/** The index an image in a slot carries at `fsEnd`, if it is well-formed and covers exactly the filesystem. */
async function carriedIndex(
  fh: FileHandle,
  fsEnd: number,
  capacity: number,
  params: ChunkParams,
): Promise<ChunkIndex | null> {
  const header = decodeIndexHeader(await readAt(fh, fsEnd, INDEX_HEADER_BYTES));
  // Other parameters: useless as a seed, so not even read (the header alone bounds what would be read).
  if (!sameParams(header.params, params)) return null;
  const length = indexByteLength(header.count);
  if (header.covered !== fsEnd || fsEnd + length > capacity) {
    throw new ChunkIndexError(`index at byte ${fsEnd} covers ${header.covered} bytes, not the filesystem`);
  }
  return decodeIndex(await readAt(fh, fsEnd, length));
}

/** Chunks [0, fsEnd) of the slot in one streaming pass (the seed of a slot whose image carries no index). */
async function computedIndex(path: string, fsEnd: number, params: ChunkParams, signal?: AbortSignal) {
  const chunker = new Chunker(params);
  const chunks: Chunk[] = [];
  let n = 0;
  for await (const b of createReadStream(path, { end: fsEnd - 1, highWaterMark: 1024 * 1024, signal })) {
    chunks.push(...chunker.push(b as Buffer));
    if (++n % 16 === 0) releaseDeadBuffers();
  }
  chunks.push(...chunker.finish());
  return { params, covered: fsEnd, chunks };
}

/**
 * The seed one slot offers for an index built with `params`, or null (logged) when the slot holds no
 * SquashFS image. Reads the slot, never writes it.
 */
export async function loadSeed(
  at: SeedSlot,
  params: ChunkParams,
  logger: Logger,
  signal?: AbortSignal,
): Promise<SeedSource | null> {
  const capacity = await slotSize(at.path);
  const fh = await open(at.path, "r");
  try {
    const fsEnd = squashfsEnd(await readAt(fh, 0, SQUASHFS_SUPERBLOCK_BYTES));
    if (fsEnd === null || fsEnd > capacity) {
      logger.info("delta: slot holds no SquashFS image; not a seed", { slot: at.slot });
      return null;
    }
    try {
      const index = await carriedIndex(fh, fsEnd, capacity, params);
      if (index) return { ...at, index, how: "carried" };
      logger.info("delta: slot's index uses other chunk parameters; recomputing", { slot: at.slot });
    } catch (err) {
      if (!(err instanceof ChunkIndexError)) throw err;
      logger.info("delta: slot's image carries no usable index; recomputing", {
        slot: at.slot,
        reason: err.message,
      });
    }
    return { ...at, index: await computedIndex(at.path, fsEnd, params, signal), how: "computed" };
  } finally {
    await fh.close();
  }
}

/**
 * Where each chunk hash can be copied from. The running slot wins over the target slot (its bytes cannot
 * be overwritten under us); within a slot the first occurrence is kept.
 */
export function seedMap(sources: ReadonlyArray<SeedSource>): Map<string, SeedLocation> {
  const map = new Map<string, SeedLocation>();
  const ordered = [...sources].sort((a, b) => Number(a.isTarget) - Number(b.isTarget));
  for (const source of ordered) {
    for (const c of source.index.chunks) {
      const key = c.sha256.toString("hex");
      if (!map.has(key)) map.set(key, { source, offset: c.offset, length: c.length });
    }
  }
  return map;
}

/** The slots a delta install may seed from: the running slot, then the target when it held a known release. */
export function seedSlots(
  paths: Record<Slot, string>,
  booted: Slot,
  target: Slot,
  targetKnown: boolean,
): SeedSlot[] {
  const out: SeedSlot[] = [{ slot: booted, path: paths[booted], isTarget: false }];
  if (targetKnown && target !== booted) out.push({ slot: target, path: paths[target], isTarget: true });
  return out;
}
