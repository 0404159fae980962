/**
 * Delta install (docs/delta.md): the Downloading step's byte source when the release carries a chunk index.
 * It hands the image to `onChunk` in order, exactly as a full download would, but copies every chunk the
 * node already holds from its slots and fetches only the missing ones with Range requests on the image's
 * own URL. Each chunk is checked against the signed index before it is handed on; the caller still hashes
 * the whole image against the signed SHA-256 before activation. Any problem with the delta path falls back
 * to the full download from the byte reached so far (everything before it was verified chunk by chunk).
 */
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { type Chunk, type ChunkIndex, decodeSignedIndex } from "../../core/chunk-index.ts";
import { DEFAULT_PLAN, type DeltaPlan, type PlanOptions, planDelta } from "../../core/delta-plan.ts";
import { ChunkIndexError, describeError } from "../../core/errors.ts";
import type { ChunkIndexRef } from "../../core/schemas.ts";
import { AbortedError, DeltaUnavailableError } from "../errors.ts";
import { silentLogger } from "../logger.ts";
import type { Transfer } from "../state-store.ts";
import { type FetchOptions, type FetchResult, fetchRange } from "./download.ts";
import { loadSeed, type SeedLocation, type SeedSlot, type SeedSource, seedMap } from "./seed.ts";

export interface ImageFetchOptions extends FetchOptions {
  /** The signed image facts; without `chunks` the image is downloaded in full. */
  image: { size: number; chunks?: ChunkIndexRef | undefined };
  /** Slots to seed from, running slot first; empty → full download. */
  seeds: SeedSlot[];
  plan?: PlanOptions;
}

export interface ImageFetchResult extends FetchResult {
  method: "delta" | "full";
  /** Bytes handed on from the node's own slots instead of the network. */
  seeded: number;
  /** Why the delta path was not taken or was left (logged too). */
  fallback?: string;
}

/** Thrown through the fetch layers when the caller's sink fails: that is never a reason to fall back. */
class SinkFailure extends Error {
  constructor(override readonly cause: unknown) {
    super("sink failed");
  }
}

interface Progress {
  /** Next byte to hand on; everything before it was handed on, verified. */
  position: number;
  fetched: number;
  requests: number;
  seeded: number;
}

/** The one call the Downloading step makes: delta when the release allows it, else (or on any problem) full. */
export async function fetchImage(opts: ImageFetchOptions): Promise<ImageFetchResult> {
  const ref = opts.image.chunks;
  const p: Progress = { position: opts.start, fetched: 0, requests: 0, seeded: 0 };
  let fallback: string;
  if (ref === undefined) {
    fallback = "the release has no chunk index";
  } else if (opts.seeds.length === 0) {
    fallback = "no slot to seed from";
  } else {
    try {
      await deltaInstall(opts, ref, p);
      return { fetched: p.fetched, requests: p.requests, overflow: false, method: "delta", seeded: p.seeded };
    } catch (err) {
      if (err instanceof SinkFailure) throw err.cause;
      if (opts.signal?.aborted) throw new AbortedError("download abandoned", { cause: err });
      fallback = describeError(err);
    }
  }
  opts.logger?.warn("delta: full download instead", { position: p.position, reason: fallback });
  const r = await fetchRange({ ...opts, start: p.position });
  return {
    fetched: p.fetched + r.fetched,
    requests: p.requests + r.requests,
    overflow: r.overflow,
    method: "full",
    seeded: p.seeded,
    fallback,
  };
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest();

async function deltaInstall(opts: ImageFetchOptions, ref: ChunkIndexRef, p: Progress): Promise<void> {
  const log = opts.logger;
  const { index, bytes: indexBytes } = await fetchIndex(opts, ref, p);
  const sources = await loadSeeds(opts, index);
  const seeds = seedMap(sources);
  // A chunk in the slot being written is usable only if the new image has not overwritten it yet.
  const locate = (c: Chunk): SeedLocation | undefined => {
    const at = seeds.get(c.sha256.toString("hex"));
    return at && (!at.source.isTarget || at.offset >= c.offset) ? at : undefined;
  };
  const plan = planDelta(index, (c) => locate(c) !== undefined, p.position, opts.plan ?? DEFAULT_PLAN);
  log?.info("delta: plan", {
    imageBytes: opts.image.size,
    fetchBytes: plan.fetchBytes,
    seedBytes: plan.seedBytes,
    requests: plan.ranges.length,
    seeds: sources.map((s) => `${s.slot}:${s.how}`),
  });
  const handles = new Map<string, FileHandle>();
  try {
    for (const s of sources) handles.set(s.path, await open(s.path, "r"));
    await copyAndFetch(opts, index, plan, locate, handles, p);
  } finally {
    for (const fh of handles.values()) await fh.close();
  }
  // The index itself is the image's last bytes; it is already here, checked against the manifest.
  await handOn(opts, indexBytes, ref.offset, p);
}

/** One Range request for the index; it must match the size and SHA-256 the manifest signs. */
async function fetchIndex(opts: ImageFetchOptions, ref: ChunkIndexRef, p: Progress) {
  const bytes = Buffer.alloc(ref.size);
  const r = await fetchRange({
    ...opts,
    start: ref.offset,
    size: ref.offset + ref.size,
    rangeOnly: true,
    onChunk: async (b, at) => {
      b.copy(bytes, at - ref.offset);
    },
  });
  p.fetched += r.fetched;
  p.requests += r.requests;
  const index = decodeSignedIndex(bytes, ref);
  if (index.covered !== ref.offset) {
    throw new ChunkIndexError(`chunk index covers ${index.covered} bytes but starts at byte ${ref.offset}`);
  }
  return { index, bytes };
}

async function loadSeeds(opts: ImageFetchOptions, index: ChunkIndex): Promise<SeedSource[]> {
  const out: SeedSource[] = [];
  for (const at of opts.seeds) {
    // The target slot is a seed only before anything of the new image is written into it.
    if (at.isTarget && opts.start > 0) continue;
    try {
      const s = await loadSeed(at, index.params, opts.logger ?? silentLogger, opts.signal);
      if (s) out.push(s);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      opts.logger?.warn("delta: slot cannot seed", { slot: at.slot, error: describeError(err) });
    }
  }
  if (out.length === 0) throw new DeltaUnavailableError("no slot holds a SquashFS image to seed from");
  return out;
}

/** Hands `bytes` (starting at image offset `at`) on, minus what was handed on before a resume. */
async function handOn(opts: ImageFetchOptions, bytes: Buffer, at: number, p: Progress): Promise<void> {
  const end = at + bytes.length;
  if (end <= p.position) return;
  const from = p.position - at;
  try {
    await opts.onChunk(from > 0 ? bytes.subarray(from) : bytes, p.position);
  } catch (err) {
    throw new SinkFailure(err);
  }
  p.position = end;
}

async function copyAndFetch(
  opts: ImageFetchOptions,
  index: ChunkIndex,
  plan: DeltaPlan,
  locate: (c: Chunk) => SeedLocation | undefined,
  handles: Map<string, FileHandle>,
  p: Progress,
): Promise<void> {
  // Reused for every chunk: onChunk consumes (copies, hashes) a buffer before it resolves.
  const buf = Buffer.allocUnsafe(index.params.max);
  const seedBuf = Buffer.allocUnsafe(Math.max(SEED_READ_BYTES, index.params.max));
  const chunks = index.chunks;
  let r = 0;
  let i = chunks.findIndex((c) => c.offset + c.length > p.position);
  if (i < 0) i = chunks.length;
  while (i < chunks.length) {
    const c = chunks[i] as Chunk;
    const range = plan.ranges[r];
    if (range && c.offset >= range.start) {
      i = await fetchChunks(opts, chunks, i, range.end, buf, p);
      r++;
      continue;
    }
    i = await copySeeded(
      opts,
      chunks,
      i,
      range?.start ?? Number.POSITIVE_INFINITY,
      locate,
      handles,
      seedBuf,
      p,
    );
  }
}

/** Seeded chunks are read in runs of up to this many bytes: one read instead of one per chunk. */
const SEED_READ_BYTES = 1024 * 1024;

/**
 * Copies chunk `first` and the chunks after it that lie back to back in the same seed slot (before
 * `stop`, the next planned range) with one read; each is checked against the signed index before it is
 * handed on, and a mismatch hands on the verified ones first, then gives up on the delta.
 */
async function copySeeded(
  opts: ImageFetchOptions,
  chunks: ReadonlyArray<Chunk>,
  first: number,
  stop: number,
  locate: (c: Chunk) => SeedLocation | undefined,
  handles: Map<string, FileHandle>,
  buf: Buffer,
  p: Progress,
): Promise<number> {
  const head = chunks[first] as Chunk;
  const at = locate(head);
  const fh = at && handles.get(at.source.path);
  if (!at || !fh)
    throw new DeltaUnavailableError(`chunk at byte ${head.offset} is neither planned nor seeded`);
  let last = first;
  let length = head.length;
  for (;;) {
    const next = chunks[last + 1];
    if (!next || next.offset >= stop || length + next.length > buf.length) break;
    const loc = locate(next);
    if (loc?.source !== at.source || loc.offset !== at.offset + length) break;
    last++;
    length += next.length;
  }
  const { bytesRead } = await fh.read(buf, 0, length, at.offset);
  let verified = 0;
  for (let i = first; i <= last; i++) {
    const c = chunks[i] as Chunk;
    const data = buf.subarray(verified, verified + c.length);
    if (verified + c.length > bytesRead || !sha256(data).equals(c.sha256)) {
      if (verified > 0) await handOn(opts, buf.subarray(0, verified), head.offset, p);
      p.seeded += verified;
      throw new DeltaUnavailableError(
        `seed chunk from slot ${at.source.slot} at byte ${at.offset + verified} does not match chunk ${i} of the new image`,
      );
    }
    verified += c.length;
  }
  await handOn(opts, buf.subarray(0, verified), head.offset, p);
  p.seeded += verified;
  return last + 1;
}

/** Fetches chunks [first, …) up to byte `end` with one Range request, verifying each as it completes. */
async function fetchChunks(
  opts: ImageFetchOptions,
  chunks: ReadonlyArray<Chunk>,
  first: number,
  end: number,
  buf: Buffer,
  p: Progress,
): Promise<number> {
  let i = first;
  let fill = 0;
  const start = (chunks[first] as Chunk).offset;
  const r = await fetchRange({
    ...opts,
    start,
    size: end,
    rangeOnly: true,
    onChunk: async (data, _at) => {
      // Counted as it arrives, so a range that fails half-way still reports what it cost.
      p.fetched += data.length;
      let used = 0;
      while (used < data.length) {
        const c = chunks[i] as Chunk;
        const n = data.copy(buf, fill, used, used + (c.length - fill));
        fill += n;
        used += n;
        if (fill < c.length) break;
        const whole = buf.subarray(0, c.length);
        if (!sha256(whole).equals(c.sha256)) {
          throw new DeltaUnavailableError(`fetched chunk ${i} at byte ${c.offset} does not match the index`);
        }
        await handOn(opts, whole, c.offset, p);
        fill = 0;
        i++;
      }
    },
  });
  p.requests += r.requests;
  if (r.overflow || fill !== 0)
    throw new DeltaUnavailableError(`range ${start}-${end} did not end on a chunk`);
  return i;
}

/** Job status details for how the image came: what `keel rollout status` sums into bytes saved. */
export function transferDetails(t: Transfer | undefined): Record<string, string> {
  if (!t) return {};
  return { transfer: t.method, bytesFetched: String(t.fetched), imageBytes: String(t.size) };
}
