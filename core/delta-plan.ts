/**
 * Which bytes of a new image a node must fetch, given the chunks it already holds (docs/delta.md).
 * Missing chunks that touch are coalesced into one HTTP Range request (S3 serves one range per GET);
 * runs separated by a small gap are bridged (a few KiB more bytes beat another round trip); and if
 * there are still more runs than `maxRequests`, the smallest gaps are bridged until there are not.
 */
import type { Chunk, ChunkIndex } from "./chunk-index.ts";

export interface PlanOptions {
  /** Upper bound on Range requests for the whole image. */
  maxRequests: number;
  /** Missing runs at most this many bytes apart are fetched as one range. */
  bridgeBytes: number;
}

export const DEFAULT_PLAN: PlanOptions = { maxRequests: 256, bridgeBytes: 8192 };

export interface ByteRange {
  /** [start, end) in the image, on chunk boundaries. */
  start: number;
  end: number;
}

export interface DeltaPlan {
  ranges: ByteRange[];
  /** Bytes the ranges cover (what goes over the network for chunks). */
  fetchBytes: number;
  /** Bytes of chunks copied from the seed. */
  seedBytes: number;
}

/** Plans the chunks that end after `from` (a resume point); `have` says whether a chunk can be seeded. */
export function planDelta(
  index: ChunkIndex,
  have: (chunk: Chunk) => boolean,
  from = 0,
  opts: PlanOptions = DEFAULT_PLAN,
): DeltaPlan {
  const runs: ByteRange[] = [];
  for (const c of index.chunks) {
    if (c.offset + c.length <= from || have(c)) continue;
    const last = runs[runs.length - 1];
    if (last && c.offset - last.end <= opts.bridgeBytes) last.end = c.offset + c.length;
    else runs.push({ start: c.offset, end: c.offset + c.length });
  }
  const ranges = boundRequests(runs, Math.max(1, opts.maxRequests));
  const fetchBytes = ranges.reduce((n, r) => n + r.end - r.start, 0);
  const wanted = index.covered - Math.min(from, index.covered);
  return { ranges, fetchBytes, seedBytes: wanted - Math.min(wanted, fetchBytes) };
}

/** Bridges the smallest gaps until at most `max` ranges remain (fewest extra bytes for the bound). */
function boundRequests(runs: ByteRange[], max: number): ByteRange[] {
  if (runs.length <= max) return runs;
  const gaps = runs.slice(1).map((r, i) => ({ i, size: r.start - (runs[i] as ByteRange).end }));
  gaps.sort((a, b) => a.size - b.size || a.i - b.i);
  const bridge = new Set(gaps.slice(0, runs.length - max).map((g) => g.i));
  const out: ByteRange[] = [];
  runs.forEach((r, i) => {
    const prev = out[out.length - 1];
    // Gap i lies between runs[i] and runs[i + 1].
    if (prev && bridge.has(i - 1)) prev.end = r.end;
    else out.push({ ...r });
  });
  return out;
}
