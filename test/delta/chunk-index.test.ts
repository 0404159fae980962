/** Content-defined chunking, the chunk index format (every kind of bad index) and the Range planner. */
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  Chunker,
  type ChunkIndex,
  chunkBuffer,
  DEFAULT_CHUNK_PARAMS,
  decodeIndex,
  decodeSignedIndex,
  encodeIndex,
  missingChunks,
  squashfsEnd,
} from "../../core/chunk-index.ts";
import { planDelta } from "../../core/delta-plan.ts";
import { ChunkIndexError, describeError } from "../../core/errors.ts";

const P = { min: 256, avg: 1024, max: 4096 };
const data = randomBytes(256 * 1024);

describe("content-defined chunking", () => {
  it("is the same whether the bytes come in one buffer or many", () => {
    const whole = chunkBuffer(data, P).chunks;
    const c = new Chunker(P);
    const parts = [];
    for (let at = 0; at < data.length; at += 777) parts.push(...c.push(data.subarray(at, at + 777)));
    parts.push(...c.finish());
    expect(parts).toEqual(whole);
    expect(whole.reduce((n, x) => n + x.length, 0)).toBe(data.length);
    for (const x of whole.slice(0, -1)) expect(x.length).toBeGreaterThanOrEqual(P.min);
    for (const x of whole) expect(x.length).toBeLessThanOrEqual(P.max);
  });

  it("keeps every chunk outside an insertion: only the chunks around it change", () => {
    const edited = Buffer.concat([data.subarray(0, 100_000), randomBytes(333), data.subarray(100_000)]);
    const a = chunkBuffer(data, P);
    const b = chunkBuffer(edited, P);
    const missing = missingChunks(b, [a]);
    // A shifting chunker would lose everything after byte 100 000; this one loses a couple of chunks.
    expect(missing.chunks).toBeLessThanOrEqual(3);
    expect(missing.bytes).toBeLessThan(3 * P.max);
  });

  it("refuses parameters it cannot honour", () => {
    expect(() => new Chunker({ min: 256, avg: 1000, max: 4096 })).toThrow(/power-of-two/);
    expect(() => new Chunker({ min: 8, avg: 16, max: 32 })).toThrow(ChunkIndexError);
    expect(() => new Chunker({ min: 4096, avg: 1024, max: 8192 })).toThrow(/min <= avg <= max/);
  });
});

describe("chunk index format", () => {
  const index = chunkBuffer(data, P);
  const bytes = encodeIndex(index);

  it("round-trips", () => {
    expect(decodeIndex(bytes)).toEqual(index);
    const ref = { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
    expect(decodeSignedIndex(bytes, ref)).toEqual(index);
  });

  /** Edits a copy of the index in place and hands it on. */
  const poke = (edit: (b: Buffer) => unknown) => (b: Buffer) => {
    edit(b);
    return b;
  };
  const bad: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
    ["a short header", (b) => b.subarray(0, 20), /shorter than its 32-byte header/],
    ["bad magic", poke((b) => b.write("NOTINDEX", 0, "latin1")), /bad magic/],
    ["a non-power-of-two average", poke((b) => b.writeUInt32LE(1000, 12)), /power-of-two/],
    ["an impossible chunk count", poke((b) => b.writeUInt32LE(1, 20)), /impossible for/],
    ["a truncated entry list", (b) => b.subarray(0, b.length - 1), /must be \d+ bytes/],
    ["a chunk longer than max", poke((b) => b.writeUInt32LE(P.max + 1, 32)), /outside min/],
    ["a chunk shorter than min", poke((b) => b.writeUInt32LE(P.min - 1, 32)), /outside min/],
    ["lengths that do not add up", poke((b) => b.writeUInt32LE(b.readUInt32LE(32) + 1, 32)), /add up/],
    [
      "a covered size beyond any image",
      poke((b) => b.writeBigUInt64LE(2n ** 60n, 24)),
      /more than any image/,
    ],
  ];
  for (const [what, spoil, msg] of bad) {
    it(`refuses ${what} with a named error`, () => {
      const err = (() => {
        try {
          decodeIndex(spoil(Buffer.from(bytes)));
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ChunkIndexError);
      expect((err as Error).name).toBe("ChunkIndexError");
      expect(describeError(err)).toMatch(msg);
    });
  }

  it("refuses an index that is not the one the manifest signs (tampered chunk hash)", () => {
    const ref = { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
    const tampered = Buffer.from(bytes);
    tampered[40] = (tampered[40] as number) ^ 1; // inside chunk 0's hash: still a well-formed index
    expect(() => decodeIndex(tampered)).not.toThrow();
    expect(() => decodeSignedIndex(tampered, ref)).toThrow(/does not match the signed manifest/);
    expect(() => decodeSignedIndex(bytes.subarray(1), ref)).toThrow(/the manifest says/);
  });

  it("finds the end of a SquashFS filesystem, padded to 4 KiB, and nothing in other bytes", () => {
    const sb = Buffer.alloc(96);
    sb.writeUInt32LE(0x73717368, 0);
    sb.writeBigUInt64LE(100_242n, 40);
    expect(squashfsEnd(sb)).toBe(102_400);
    expect(squashfsEnd(Buffer.alloc(96))).toBeNull();
    expect(squashfsEnd(sb.subarray(0, 50))).toBeNull();
  });
});

describe("Range planning", () => {
  // 100 chunks of 1000 bytes: simple arithmetic for offsets.
  const idx: ChunkIndex = {
    params: DEFAULT_CHUNK_PARAMS,
    covered: 100_000,
    chunks: Array.from({ length: 100 }, (_, i) => ({
      offset: i * 1000,
      length: 1000,
      sha256: Buffer.alloc(32, i),
    })),
  };
  const missing = (set: number[]) => (c: { offset: number }) => !set.includes(c.offset / 1000);

  it("coalesces neighbouring missing chunks into one request", () => {
    const plan = planDelta(idx, missing([3, 4, 5, 50]), 0, { maxRequests: 100, bridgeBytes: 0 });
    expect(plan.ranges).toEqual([
      { start: 3000, end: 6000 },
      { start: 50_000, end: 51_000 },
    ]);
    expect(plan.fetchBytes).toBe(4000);
    expect(plan.seedBytes).toBe(96_000);
  });

  it("bridges small gaps and bounds the number of requests by bridging the smallest gaps", () => {
    const bridged = planDelta(idx, missing([1, 3, 10]), 0, { maxRequests: 100, bridgeBytes: 1000 });
    expect(bridged.ranges).toEqual([
      { start: 1000, end: 4000 },
      { start: 10_000, end: 11_000 },
    ]);
    const every = Array.from({ length: 50 }, (_, i) => i * 2);
    const bounded = planDelta(idx, missing(every), 0, { maxRequests: 7, bridgeBytes: 0 });
    expect(bounded.ranges.length).toBe(7);
    // Every missing chunk is still inside some range.
    for (const i of every)
      expect(bounded.ranges.some((r) => r.start <= i * 1000 && i * 1000 < r.end)).toBe(true);
  });

  it("plans only what is left after a resume point", () => {
    const plan = planDelta(idx, missing([2, 60]), 30_500, { maxRequests: 10, bridgeBytes: 0 });
    expect(plan.ranges).toEqual([{ start: 60_000, end: 61_000 }]);
    expect(plan.fetchBytes + plan.seedBytes).toBe(100_000 - 30_500);
  });
});
