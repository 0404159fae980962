/**
 * Content-defined chunking and the chunk index for delta updates (docs/delta.md).
 *
 * Chunk boundaries come from a gear rolling hash (the FastCDC family): a boundary falls where the hash of
 * the last 32 bytes has its top `log2(avg)` bits clear, at least `min` and at most `max` bytes after the
 * previous one. Because the decision depends only on nearby content, an insertion moves the boundaries
 * around it and nowhere else, so two releases share every chunk outside their changed regions.
 *
 * The index is binary, little-endian, and parsed byte by byte (it is outside input like any other):
 *   0  8  magic "KEELCIX\x01"
 *   8  4  min   12 4 avg   16 4 max      chunking parameters the index was built with
 *   20 4  count                           number of chunks
 *   24 8  covered                         bytes of the image the chunks cover, from offset 0
 *   32 36×count  { u32 length, 32-byte SHA-256 }
 * Chunk offsets are the running sum of lengths. In a release the index is appended to the SquashFS image
 * (the image object stays the only copy of the bytes) and the signed manifest names its offset, size and
 * SHA-256 (`image.chunks`).
 */
import { createHash } from "node:crypto";
import { ChunkIndexError } from "./errors.ts";

export interface ChunkParams {
  min: number;
  /** A power of two: the expected chunk length. */
  avg: number;
  max: number;
}

/**
 * Chosen by measurement (bench/delta.bench.ts, docs/delta.md): on SquashFS pairs with ~5 % of files
 * changed, 16 KiB average fetched fewer bytes than 32 or 64 KiB (a changed 128 KiB compressed block is
 * often only partly different), and the index stays ~0.2 % of the image.
 */
export const DEFAULT_CHUNK_PARAMS: ChunkParams = { min: 4096, avg: 16384, max: 65536 };

export const INDEX_MAGIC = Buffer.from("KEELCIX\x01", "latin1");
export const INDEX_HEADER_BYTES = 32;
export const INDEX_ENTRY_BYTES = 36;
/** Parameter bounds a parser accepts: keeps a hostile index from asking for absurd buffers. */
const MIN_CHUNK_FLOOR = 64;
const MAX_CHUNK_CEILING = 16 * 1024 * 1024;

export interface Chunk {
  offset: number;
  length: number;
  /** Raw 32-byte SHA-256. */
  sha256: Buffer;
}

export interface ChunkIndex {
  params: ChunkParams;
  /** Bytes covered from offset 0 (the SquashFS part of the image, without the appended index). */
  covered: number;
  chunks: Chunk[];
}

/** 256 fixed pseudo-random 32-bit values, derived from SHA-256 so the table is reproducible anywhere. */
const GEAR: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    t[i] = createHash("sha256").update(`keel-gear-${i}`).digest().readUInt32LE(0);
  }
  return t;
})();

export function checkParams(p: ChunkParams): void {
  const pow2 = p.avg > 0 && (p.avg & (p.avg - 1)) === 0;
  if (!Number.isInteger(p.min) || !Number.isInteger(p.avg) || !Number.isInteger(p.max) || !pow2) {
    throw new ChunkIndexError(
      `chunk parameters must be integers with a power-of-two average (got ${fmt(p)})`,
    );
  }
  if (p.min < MIN_CHUNK_FLOOR || p.min > p.avg || p.avg > p.max || p.max > MAX_CHUNK_CEILING) {
    throw new ChunkIndexError(
      `chunk parameters must satisfy ${MIN_CHUNK_FLOOR} <= min <= avg <= max <= ${MAX_CHUNK_CEILING} (got ${fmt(p)})`,
    );
  }
}

const fmt = (p: ChunkParams) => `min ${p.min}, avg ${p.avg}, max ${p.max}`;

/**
 * Streaming chunker: push buffers in order, collect the chunks each push completes, then finish().
 * Memory is one SHA-256 state; the bytes themselves are never kept.
 */
export class Chunker {
  private readonly threshold: number;
  private h = 0;
  private len = 0;
  private offset = 0;
  private hash = createHash("sha256");

  constructor(private readonly params: ChunkParams = DEFAULT_CHUNK_PARAMS) {
    checkParams(params);
    // Boundary when the hash's top log2(avg) bits are zero, i.e. h < 2^(32 - bits).
    this.threshold = 2 ** (32 - Math.log2(params.avg));
  }

  push(buf: Uint8Array): Chunk[] {
    const out: Chunk[] = [];
    const { min, max } = this.params;
    let start = 0;
    let h = this.h;
    let len = this.len;
    for (let i = 0; i < buf.length; i++) {
      len++;
      // The gear hash forgets a byte after 32 shifts, so hashing only the last 32 bytes before `min`
      // gives the same boundaries as hashing everything, at a fraction of the cost.
      if (len < min - 32) continue;
      h = ((h << 1) + (GEAR[buf[i] as number] as number)) >>> 0;
      if (len < min) continue;
      if (h < this.threshold || len >= max) {
        this.hash.update(buf.subarray(start, i + 1));
        out.push(this.cut(len));
        start = i + 1;
        h = 0;
        len = 0;
      }
    }
    if (start < buf.length) this.hash.update(buf.subarray(start));
    this.h = h;
    this.len = len;
    return out;
  }

  finish(): Chunk[] {
    return this.len > 0 ? [this.cut(this.len)] : [];
  }

  private cut(length: number): Chunk {
    const chunk = { offset: this.offset, length, sha256: this.hash.digest() };
    this.offset += length;
    this.hash = createHash("sha256");
    this.h = 0;
    this.len = 0;
    return chunk;
  }
}

/** Chunks of a whole buffer (tests, small inputs). */
export function chunkBuffer(data: Uint8Array, params: ChunkParams = DEFAULT_CHUNK_PARAMS): ChunkIndex {
  const c = new Chunker(params);
  const chunks = [...c.push(data), ...c.finish()];
  return { params, covered: data.length, chunks };
}

export function indexByteLength(count: number): number {
  return INDEX_HEADER_BYTES + INDEX_ENTRY_BYTES * count;
}

export function encodeIndex(index: ChunkIndex): Buffer {
  const out = Buffer.alloc(indexByteLength(index.chunks.length));
  INDEX_MAGIC.copy(out, 0);
  out.writeUInt32LE(index.params.min, 8);
  out.writeUInt32LE(index.params.avg, 12);
  out.writeUInt32LE(index.params.max, 16);
  out.writeUInt32LE(index.chunks.length, 20);
  out.writeBigUInt64LE(BigInt(index.covered), 24);
  let at = INDEX_HEADER_BYTES;
  for (const c of index.chunks) {
    out.writeUInt32LE(c.length, at);
    c.sha256.copy(out, at + 4);
    at += INDEX_ENTRY_BYTES;
  }
  return out;
}

/** Parses the fixed header; enough to know how many bytes the whole index takes. */
export function decodeIndexHeader(bytes: Uint8Array): {
  params: ChunkParams;
  count: number;
  covered: number;
} {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < INDEX_HEADER_BYTES) {
    throw new ChunkIndexError(
      `chunk index is ${b.length} bytes, shorter than its ${INDEX_HEADER_BYTES}-byte header`,
    );
  }
  if (!b.subarray(0, 8).equals(INDEX_MAGIC)) {
    throw new ChunkIndexError("not a chunk index (bad magic; expected KEELCIX version 1)");
  }
  const params = { min: b.readUInt32LE(8), avg: b.readUInt32LE(12), max: b.readUInt32LE(16) };
  checkParams(params);
  const count = b.readUInt32LE(20);
  const covered64 = b.readBigUInt64LE(24);
  if (covered64 > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ChunkIndexError(`chunk index covers ${covered64} bytes, more than any image`);
  }
  const covered = Number(covered64);
  // Every chunk but the last is at least `min` long: a count outside these bounds cannot add up.
  const most = covered === 0 ? 0 : Math.floor((covered - 1) / params.min) + 1;
  const least = Math.ceil(covered / params.max);
  if (count > most || count < least) {
    throw new ChunkIndexError(
      `chunk index lists ${count} chunks, impossible for ${covered} bytes with ${fmt(params)}`,
    );
  }
  return { params, count, covered };
}

/** Parses and checks a whole index byte by byte; a bad index changes nothing and names what is wrong. */
export function decodeIndex(bytes: Uint8Array): ChunkIndex {
  const { params, count, covered } = decodeIndexHeader(bytes);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length !== indexByteLength(count)) {
    throw new ChunkIndexError(
      `chunk index of ${count} chunks must be ${indexByteLength(count)} bytes, got ${b.length}`,
    );
  }
  const chunks: Chunk[] = [];
  let offset = 0;
  for (let i = 0, at = INDEX_HEADER_BYTES; i < count; i++, at += INDEX_ENTRY_BYTES) {
    const length = b.readUInt32LE(at);
    const last = i === count - 1;
    if (length < 1 || length > params.max || (!last && length < params.min)) {
      throw new ChunkIndexError(`chunk ${i} is ${length} bytes, outside ${fmt(params)}`);
    }
    chunks.push({ offset, length, sha256: Buffer.from(b.subarray(at + 4, at + 36)) });
    offset += length;
  }
  if (offset !== covered) {
    throw new ChunkIndexError(`chunk lengths add up to ${offset} bytes, the index says ${covered}`);
  }
  return { params, covered, chunks };
}

/** Decodes an index only if it is exactly the one the signed manifest names (size and SHA-256). */
export function decodeSignedIndex(bytes: Uint8Array, expected: { size: number; sha256: string }): ChunkIndex {
  if (bytes.byteLength !== expected.size) {
    throw new ChunkIndexError(`chunk index is ${bytes.byteLength} bytes, the manifest says ${expected.size}`);
  }
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== expected.sha256) {
    throw new ChunkIndexError(
      `chunk index does not match the signed manifest: expected sha256 ${expected.sha256}, got ${actual}`,
    );
  }
  return decodeIndex(bytes);
}

/** What a device holding `have` must fetch to build `want`: chunks of `want` whose hash `have` lacks. */
export function missingChunks(
  want: ChunkIndex,
  have: Iterable<ChunkIndex>,
): { chunks: number; bytes: number } {
  const known = new Set<string>();
  for (const h of have) for (const c of h.chunks) known.add(c.sha256.toString("hex"));
  let chunks = 0;
  let bytes = 0;
  for (const c of want.chunks) {
    if (known.has(c.sha256.toString("hex"))) continue;
    chunks++;
    bytes += c.length;
  }
  return { chunks, bytes };
}

/** SquashFS superblock: magic "hsqs" at 0, bytes_used (u64) at 40; mksquashfs pads the file to 4 KiB. */
export const SQUASHFS_SUPERBLOCK_BYTES = 96;
const SQUASHFS_MAGIC = 0x73717368;
const SQUASHFS_PAD = 4096;

/**
 * Where the SquashFS filesystem ends (padded to 4 KiB as mksquashfs writes it): the appended chunk index
 * starts there. Null when the bytes are not a SquashFS superblock (an image built some other way).
 */
export function squashfsEnd(superblock: Uint8Array): number | null {
  const b = Buffer.from(superblock.buffer, superblock.byteOffset, superblock.byteLength);
  if (b.length < SQUASHFS_SUPERBLOCK_BYTES || b.readUInt32LE(0) !== SQUASHFS_MAGIC) return null;
  const used = b.readBigUInt64LE(40);
  if (used < BigInt(SQUASHFS_SUPERBLOCK_BYTES) || used > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Math.ceil(Number(used) / SQUASHFS_PAD) * SQUASHFS_PAD;
}
