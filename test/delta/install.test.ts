/**
 * Delta installs against a real HTTP server with Range support and real SquashFS images: seeding from
 * the running slot and from the target slot, Range coalescing, every fallback to the full download (no
 * index, tampered index, a seed chunk that does not verify, a server without Range), cuts of the
 * connection, power cuts at random bytes with resume, and the whole agent pipeline.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkBuffer, encodeIndex } from "../../core/chunk-index.ts";
import type { ChunkIndexRef } from "../../core/schemas.ts";
import { systemClock } from "../../device/clock.ts";
import { fetchImage, type ImageFetchResult } from "../../device/install/delta.ts";
import type { SeedSlot } from "../../device/install/seed.ts";
import { createLogger } from "../../device/logger.ts";
import { type FileServer, startFileServer } from "../device/helpers/http-server.ts";
import { makeNode } from "../device/helpers/node.ts";
import { makeSigners } from "../device/helpers/release.ts";
import { buildPair, deltaManifest, type ImagePair } from "./fixtures.ts";

const SLOT = 3 * 1024 * 1024;
const RETRY = {
  retries: 3,
  initialBackoffMs: 1,
  maxBackoffMs: 4,
  idleTimeoutMs: 5000,
  headersTimeoutMs: 5000,
  documentTimeoutMs: 5000,
  imageTimeoutMs: 60_000,
};

let dir: string;
let pair: ImagePair;
let want: Buffer;
let server: FileServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keel-delta-"));
  pair = await buildPair(dir);
  want = await readFile(pair.newImage);
  server = await startFileServer();
  server.add("/new", pair.newImage);
});
afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A slot file of SLOT bytes holding `content` (an image or filler) at offset 0. */
async function slotFile(name: string, content: Buffer): Promise<string> {
  const path = join(dir, name);
  const buf = Buffer.alloc(SLOT, 0xcc);
  content.copy(buf);
  await writeFile(path, buf);
  return path;
}

interface Run {
  result: ImageFetchResult;
  logs: string;
}

/**
 * Runs fetchImage into `target` from `start` (bytes below it already there) with a sink that writes at
 * the position and hashes in order, like the Downloading step. `cutAt`: the sink dies once a write
 * reaches that byte (a power cut), after writing what it was handed.
 */
async function install(o: {
  target: string;
  seeds: SeedSlot[];
  chunks?: ChunkIndexRef | undefined;
  start?: number;
  cutAt?: number;
  url?: string;
}): Promise<Run & { hash: string }> {
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l), level: "debug" });
  const start = o.start ?? 0;
  const fh = await open(o.target, "r+");
  const hash = createHash("sha256");
  if (start > 0) hash.update((await readFile(o.target)).subarray(0, start));
  try {
    const result = await fetchImage({
      source: () => o.url ?? server.url("/new"),
      start,
      size: want.length,
      image: { size: want.length, chunks: o.chunks },
      seeds: o.seeds,
      retry: RETRY,
      clock: systemClock(),
      logger,
      onChunk: async (chunk, position) => {
        await fh.write(chunk, 0, chunk.length, position);
        hash.update(chunk);
        if (o.cutAt !== undefined && position + chunk.length >= o.cutAt) throw new Error("power cut");
      },
    });
    return { result, logs: lines.join("\n"), hash: hash.digest("hex") };
  } finally {
    await fh.close();
  }
}

const wantHash = () => createHash("sha256").update(want).digest("hex");
const imageRequests = () => server.requests.filter((r) => r.path === "/new");

describe("delta install", () => {
  it("seeds from the running slot and fetches only the missing chunks, in coalesced closed ranges", async () => {
    // Prepare: A runs the old release, B (target) holds filler
    const a = await slotFile("run-a", await readFile(pair.oldImage));
    const b = await slotFile("run-b", Buffer.alloc(0));
    const before = imageRequests().length;
    const sentBefore = server.bytesSent;
    // Act
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: pair.ref,
    });
    // Assess: the slot holds the new image exactly; a fraction of it crossed the network
    expect(r.result.method).toBe("delta");
    expect(r.hash).toBe(wantHash());
    expect((await readFile(b)).subarray(0, want.length).equals(want)).toBe(true);
    const sent = server.bytesSent - sentBefore;
    expect(sent).toBe(r.result.fetched);
    expect(sent).toBeLessThan(want.length * 0.25);
    expect(r.result.seeded + sent).toBeGreaterThanOrEqual(want.length - pair.ref.size);
    const reqs = imageRequests().slice(before);
    expect(reqs.length).toBe(r.result.requests);
    // One request for the index, then one per coalesced run of missing chunks: far fewer than the chunks.
    for (const q of reqs) expect(q.range).toMatch(/^bytes=\d+-\d+$/);
    expect(r.logs).toContain('"delta: plan"');
  });

  it("seeds from the target slot's previous release where it is not yet overwritten", async () => {
    // Prepare: A (running) holds no SquashFS; B, the target, holds the old release
    const a = await slotFile("tgt-a", randomBytes(64 * 1024));
    const b = await slotFile("tgt-b", await readFile(pair.oldImage));
    // Act
    const r = await install({
      target: b,
      seeds: [
        { slot: "A", path: a, isTarget: false },
        { slot: "B", path: b, isTarget: true },
      ],
      chunks: pair.ref,
    });
    // Assess
    expect(r.result.method).toBe("delta");
    expect(r.hash).toBe(wantHash());
    expect((await readFile(b)).subarray(0, want.length).equals(want)).toBe(true);
    // Chunks that moved to a later offset (the new image grows after lib17) were overwritten before
    // they were needed and are fetched; everything before the change comes from the old copy.
    expect(r.result.seeded).toBeGreaterThan(want.length * 0.2);
    expect(r.result.fetched).toBeLessThan(want.length * 0.8);
    expect(r.logs).toContain("slot holds no SquashFS image");
  });

  it("recomputes the seed of a slot whose image carries no index", async () => {
    // Prepare: the running slot holds the old image without its appended index
    const old = await readFile(pair.oldImage);
    const fsEnd = Math.ceil(old.readUInt32LE(40) / 4096) * 4096;
    const a = await slotFile("rec-a", old.subarray(0, fsEnd));
    const b = await slotFile("rec-b", Buffer.alloc(0));
    // Act
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: pair.ref,
    });
    // Assess
    expect(r.result.method).toBe("delta");
    expect(r.hash).toBe(wantHash());
    expect(r.result.fetched).toBeLessThan(want.length * 0.25);
    expect(r.logs).toContain("recomputing");
  });

  it("recomputes the seed of a slot whose index was built with other chunk parameters", async () => {
    const old = await readFile(pair.oldImage);
    const fs = old.subarray(0, Math.ceil(old.readUInt32LE(40) / 4096) * 4096);
    const other = encodeIndex(chunkBuffer(fs, { min: 1024, avg: 4096, max: 16384 }));
    const a = await slotFile("par-a", Buffer.concat([fs, other]));
    const b = await slotFile("par-b", Buffer.alloc(0));
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: pair.ref,
    });
    expect(r.result.method).toBe("delta");
    expect(r.hash).toBe(wantHash());
    expect(r.logs).toContain("other chunk parameters; recomputing");
  });

  it("resumes after connection cuts inside a range", async () => {
    const a = await slotFile("cut-a", await readFile(pair.oldImage));
    const b = await slotFile("cut-b", Buffer.alloc(0));
    server.cutAfter(3000, 3);
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: pair.ref,
    });
    expect(r.result.method).toBe("delta");
    expect(r.hash).toBe(wantHash());
  });

  it("survives power cuts at random bytes: each restart resumes from what is in the slot", async () => {
    const a = await slotFile("pc-a", await readFile(pair.oldImage));
    const b = await slotFile("pc-b", Buffer.alloc(0));
    let start = 0;
    const cuts = [0, 1, 2].map(() => Math.floor(Math.random() * want.length));
    for (const cutAt of cuts.sort((x, y) => x - y)) {
      if (cutAt <= start) continue;
      await expect(
        install({
          target: b,
          seeds: [{ slot: "A", path: a, isTarget: false }],
          chunks: pair.ref,
          start,
          cutAt,
        }),
      ).rejects.toThrow("power cut");
      // Only what was synced survives: resume from a checkpoint below the cut; the bytes after it are junk.
      start = Math.floor(cutAt / 65536) * 65536;
      const fh = await open(b, "r+");
      await fh.write(randomBytes(4096), 0, 4096, start);
      await fh.close();
    }
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: pair.ref,
      start,
    });
    expect(r.result.method).toBe("delta");
    expect(r.hash).toBe(wantHash());
    expect((await readFile(b)).subarray(0, want.length).equals(want)).toBe(true);
  });
});

describe("delta falls back to the full download, logged, never a failure", () => {
  it("when the release has no chunk index", async () => {
    const a = await slotFile("ni-a", await readFile(pair.oldImage));
    const b = await slotFile("ni-b", Buffer.alloc(0));
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: undefined,
    });
    expect(r.result).toMatchObject({
      method: "full",
      fetched: want.length,
      fallback: "the release has no chunk index",
    });
    expect(r.hash).toBe(wantHash());
  });

  it("when the index does not match the signed manifest", async () => {
    const a = await slotFile("ti-a", await readFile(pair.oldImage));
    const b = await slotFile("ti-b", Buffer.alloc(0));
    const tampered = { ...pair.ref, sha256: "0".repeat(64) };
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: tampered,
    });
    expect(r.result.method).toBe("full");
    expect(r.result.fallback).toMatch(/does not match the signed manifest/);
    expect(r.logs).toContain("delta: full download instead");
    expect(r.hash).toBe(wantHash());
  });

  it("when a seed chunk does not verify, from the byte reached so far", async () => {
    // Prepare: corrupt the running slot's copy of the old image in its second half
    const old = Buffer.from(await readFile(pair.oldImage));
    for (let i = Math.floor(old.length * 0.6); i < old.length * 0.9; i += 4096)
      old[i] = (old[i] as number) ^ 0xff;
    const a = await slotFile("bs-a", old);
    const b = await slotFile("bs-b", Buffer.alloc(0));
    // Act
    const r = await install({
      target: b,
      seeds: [{ slot: "A", path: a, isTarget: false }],
      chunks: pair.ref,
    });
    // Assess: the seed index (carried, untrusted) said the chunk was there; its bytes were refused
    expect(r.result.method).toBe("full");
    expect(r.result.fallback).toMatch(/seed chunk from slot A .* does not match/);
    expect(r.result.seeded).toBeGreaterThan(0);
    expect(r.result.fetched).toBeLessThan(want.length);
    expect(r.hash).toBe(wantHash());
  });

  it("when the server ignores Range", async () => {
    const plain = await startFileServer();
    try {
      plain.noRanges();
      plain.add("/new", pair.newImage);
      const a = await slotFile("nr-a", await readFile(pair.oldImage));
      const b = await slotFile("nr-b", Buffer.alloc(0));
      const r = await install({
        target: b,
        seeds: [{ slot: "A", path: a, isTarget: false }],
        chunks: pair.ref,
        url: plain.url("/new"),
      });
      expect(r.result.method).toBe("full");
      expect(r.result.fallback).toMatch(/ignored the Range header/);
      expect(r.hash).toBe(wantHash());
    } finally {
      await plain.stop();
    }
  });
});

describe("agent pipeline", () => {
  it("installs a release with a chunk index as a delta and reports bytes fetched vs image size", async () => {
    // Prepare: a node running the old image in slot A
    const signers = makeSigners();
    const nodeDir = await mkdtemp(join(tmpdir(), "keel-delta-node-"));
    try {
      const node = await makeNode({ dir: nodeDir, signers, slotSize: SLOT });
      await copyFile(pair.oldImage, node.config.slots.A);
      const manifest = join(nodeDir, "release.json");
      await writeFile(manifest, JSON.stringify(deltaManifest(signers, want, pair.ref)));
      // Act
      const r = await node.agent().installStandalone(manifest, server.url("/new"));
      // Assess
      expect(r.state).toBe("Rebooting");
      expect((await node.slotBytes("B")).subarray(0, want.length).equals(want)).toBe(true);
      const t = (await node.agent().status()).job?.transfer;
      expect(t?.method).toBe("delta");
      expect(t?.size).toBe(want.length);
      expect(t?.fetched).toBeLessThan(want.length * 0.25);
    } finally {
      await rm(nodeDir, { recursive: true, force: true });
    }
  });
});
