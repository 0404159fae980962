/**
 * Delta updates (issue 14, "Benchmark"), side by side in one run on one realistic pair:
 *   OLD: a generated KeelOS-like root tree (KEEL_BENCH_DELTA_MB, default 320 MB, Debian-like file sizes,
 *        see bench/delta-tree.ts); NEW: the same tree with ~5 % of its files changed (packages upgraded);
 *   both packed by `keel release build` (buildImage: the real mksquashfs flags, chunk index appended).
 * Figures, each fetched through one local HTTP server that counts the body bytes it sends:
 *   (a) Keel full install: the bundled agent installs NEW from a manifest without a chunk index
 *   (b) Keel delta install: the same agent, slot A holding OLD, manifest with the chunk index
 *   (c) casync: `casync make` of NEW into a store (server side), then `casync extract --seed=OLD` with a
 *       store holding only the chunks OLD lacks, i.e. exactly what it would fetch; bytes = those
 *       (compressed) chunk files
 * plus the agent's peak RSS, and a sweep of the chunk size (what a node running OLD would fetch for
 * each average, index included) that is the measurement behind DEFAULT_CHUNK_PARAMS.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, statSync } from "node:fs";
import { copyFile, link, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imageIndex } from "../cli/chunk-image.ts";
import { buildImage, diffImages } from "../cli/commands/release.ts";
import { chunkBuffer, missingChunks, squashfsEnd } from "../core/chunk-index.ts";
import { planDelta } from "../core/delta-plan.ts";
import { AGENT_NODE_FLAGS, buildAgent } from "../scripts/build-agent.ts";
import { planTree, upgradeTree, writeTree } from "./delta-tree.ts";
import { agentRound, signFixture } from "./install.bench.ts";

const MB = 1e6;

/**
 * The link the node fetches over: one shared rate for all connections and a first-byte delay per request,
 * as from S3 over a WAN. On unthrottled loopback the network costs nothing and bytes saved cannot save time.
 */
export interface Link {
  bytesPerSecond: number;
  firstByteMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A file server with closed and open Range support (as S3) that counts body bytes and requests. */
async function countingServer(files: Record<string, string>, link: Link) {
  const counter = { bytes: 0, requests: 0 };
  let linkFreeAt = 0;
  const server = createServer(async (req, res) => {
    const file = files[(req.url ?? "").split("?")[0] ?? ""];
    if (!file) return void res.writeHead(404).end();
    const size = statSync(file).size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const end = m?.[2] ? Math.min(size, Number(m[2]) + 1) : size;
    counter.requests++;
    res.writeHead(m ? 206 : 200, {
      "content-length": end - start,
      ...(m ? { "content-range": `bytes ${start}-${end - 1}/${size}` } : {}),
    });
    await sleep(link.firstByteMs);
    try {
      for await (const d of createReadStream(file, { start, end: end - 1, highWaterMark: 256 * 1024 })) {
        const buf = d as Buffer;
        const now = performance.now();
        linkFreeAt = Math.max(now, linkFreeAt) + (buf.length * 1000) / link.bytesPerSecond;
        await sleep(linkFreeAt - now);
        counter.bytes += buf.length;
        if (!res.write(buf)) await new Promise((r) => res.once("drain", r));
      }
      res.end();
    } catch {
      res.destroy();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { counter, base, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await f();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

function casync(args: string[]): void {
  const r = spawnSync("casync", args, { stdio: ["ignore", "ignore", "pipe"] });
  if (r.status !== 0) throw new Error(`casync ${args.join(" ")} failed: ${r.stderr}`);
}

function storeChunks(store: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of readdirSync(store)) {
    for (const f of readdirSync(join(store, d))) if (f.endsWith(".cacnk")) out.set(f, join(store, d, f));
  }
  return out;
}

/** (c): casync's bytes and time on the same pair, default chunk size. */
async function casyncFigures(dir: string, oldImage: string, newImage: string) {
  const full = join(dir, "casync-store");
  const oldStore = join(dir, "casync-old");
  const make = await timed(async () => casync(["make", `--store=${full}`, join(dir, "new.caibx"), newImage]));
  casync(["make", `--store=${oldStore}`, join(dir, "old.caibx"), oldImage]);
  // The store a node would fetch from holds every chunk; it fetches those its seed lacks: keep only those.
  const have = storeChunks(oldStore);
  const fetchStore = join(dir, "casync-fetch");
  let bytes = 0;
  let chunks = 0;
  for (const [name, path] of storeChunks(full)) {
    if (have.has(name)) continue;
    await mkdir(join(fetchStore, name.slice(0, 4)), { recursive: true });
    await link(path, join(fetchStore, name.slice(0, 4), name));
    bytes += (await stat(path)).size;
    chunks++;
  }
  const out = join(dir, "casync-out.img");
  const extract = await timed(async () =>
    casync(["extract", `--store=${fetchStore}`, `--seed=${oldImage}`, join(dir, "new.caibx"), out]),
  );
  const same = (await sha256(out)) === (await sha256(newImage));
  if (!same) throw new Error("casync extract did not reproduce the new image");
  return { bytes, chunks, make: make.seconds, extract: extract.seconds };
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const b of createReadStream(path)) h.update(b as Buffer);
  return h.digest("hex");
}

/** What a node running OLD fetches for each average chunk size (index included), from the same images. */
async function chunkSizeSweep(oldImage: string, newImage: string, size: number): Promise<void> {
  const [a, b] = await Promise.all([readFile(oldImage), readFile(newImage)]);
  const fsA = a.subarray(0, squashfsEnd(a) ?? a.length);
  const fsB = b.subarray(0, squashfsEnd(b) ?? b.length);
  console.log("chunk size sweep (min avg/4, max avg×4): bytes a node running OLD fetches");
  for (const avg of [8192, 16384, 32768, 65536]) {
    const p = { min: avg / 4, avg, max: avg * 4 };
    const [ia, ib] = [chunkBuffer(fsA, p), chunkBuffer(fsB, p)];
    const known = new Set(ia.chunks.map((c) => c.sha256.toString("hex")));
    const plan = planDelta(ib, (c) => known.has(c.sha256.toString("hex")));
    const index = 32 + 36 * ib.chunks.length;
    const m = missingChunks(ib, [ia]);
    console.log(
      `  avg ${String(avg / 1024).padStart(2)} KiB: ${ib.chunks.length} chunks, missing ${m.bytes} B, fetch ${plan.fetchBytes} B + index ${index} B = ${(((plan.fetchBytes + index) * 100) / size).toFixed(2)} % of the image in ${plan.ranges.length + 1} requests`,
    );
  }
}

export async function run(): Promise<void> {
  const targetMb = Number(process.env.KEEL_BENCH_DELTA_MB ?? 320) || 320;
  const mbit = Number(process.env.KEEL_BENCH_DELTA_MBIT ?? 200) || 200;
  const link: Link = { bytesPerSecond: (mbit * 1e6) / 8, firstByteMs: 20 };
  const share = 0.05;
  const dir = await mkdtemp(join(tmpdir(), "keel-bench-delta-"));
  try {
    process.stdout.write(`generating a ${targetMb} MB root tree and its upgrade in ${dir} … `);
    const plan = planTree(targetMb * MB);
    await writeTree(join(dir, "old-tree"), plan);
    const up = await upgradeTree(join(dir, "old-tree"), join(dir, "new-tree"), plan, share);
    console.log(
      `${plan.files} files, ${(plan.bytes / MB).toFixed(0)} MB; NEW changes ${up.files} files (${((up.files * 100) / plan.files).toFixed(1)} %), ${(up.bytes / MB).toFixed(1)} MB`,
    );
    const oldImage = join(dir, "old.squashfs");
    const newImage = join(dir, "new.squashfs");
    const b1 = await timed(() => buildImage(join(dir, "old-tree"), oldImage));
    const b2 = await timed(() => buildImage(join(dir, "new-tree"), newImage));
    await rm(join(dir, "old-tree"), { recursive: true, force: true });
    await rm(join(dir, "new-tree"), { recursive: true, force: true });
    const size = b2.value.size;
    console.log(
      `keel release build: OLD ${b1.value.size} B in ${b1.seconds.toFixed(1)} s, NEW ${size} B in ${b2.seconds.toFixed(1)} s`,
    );
    const newIndex = await imageIndex(newImage);
    const chunks = {
      offset: newIndex.index.covered,
      size: size - newIndex.index.covered,
      sha256: createHash("sha256")
        .update((await readFile(newImage)).subarray(newIndex.index.covered))
        .digest("hex"),
    };
    const diff = await diffImages(oldImage, newImage);
    console.log(
      `keel release diff OLD NEW: fetch ${diff.fetchBytes} B (${((diff.fetchBytes * 100) / size).toFixed(2)} %) in ${diff.requests} requests`,
    );

    const node = join(dir, "node");
    await mkdir(node);
    await copyFile(newImage, join(node, "image.squashfs"));
    await signFixture(node, size, b2.value.sha256, { "release-full.json": {}, "release.json": { chunks } });
    const slotSize = Math.max(size, b1.value.size);
    const server = await countingServer({ "/image.squashfs": newImage }, link);
    console.log(
      `link: ${mbit} Mbit/s shared, ${link.firstByteMs} ms to first byte per request (KEEL_BENCH_DELTA_MBIT)`,
    );
    const bundle = await buildAgent(join(dir, "keel-agent.mjs"));
    const url = `${server.base}/image.squashfs`;
    try {
      const measure = async (manifest: string, seedOld: boolean) => {
        const before = { ...server.counter };
        const r = await agentRound(bundle, node, url, slotSize, {
          manifest,
          prepare: seedOld ? () => copyFile(oldImage, join(node, "slot-a.img")) : undefined,
        });
        return {
          ...r,
          bytes: server.counter.bytes - before.bytes,
          requests: server.counter.requests - before.requests,
        };
      };
      const full = await measure("release-full.json", false);
      const delta = await measure("release.json", true);
      if (!delta.stderr.includes('"delta: plan"') || delta.stderr.includes("full download instead")) {
        throw new Error(`the delta round did not install as a delta:\n${delta.stderr.slice(-2000)}`);
      }
      const c = await casyncFigures(dir, oldImage, newImage);
      const pct = (n: number) => `${((n * 100) / size).toFixed(2)} %`;
      console.log(`NEW image ${size} B; every row ends with the new image verified in full`);
      console.log(
        `  (a) keel full install    fetched ${String(full.bytes).padStart(11)} B (${pct(full.bytes)}) in ${full.requests} requests, ${full.seconds.toFixed(2)} s, agent peak RSS ${full.rssMb.toFixed(1)} MB`,
      );
      console.log(
        `  (b) keel delta install   fetched ${String(delta.bytes).padStart(11)} B (${pct(delta.bytes)}) in ${delta.requests} requests, ${delta.seconds.toFixed(2)} s, agent peak RSS ${delta.rssMb.toFixed(1)} MB`,
      );
      console.log(
        `  (c) casync make+extract  fetched ${String(c.bytes).padStart(11)} B (${pct(c.bytes)}) in ${c.chunks} chunks, make ${c.make.toFixed(2)} s + extract --seed ${c.extract.toFixed(2)} s from a local store (+ ${(c.bytes / link.bytesPerSecond).toFixed(2)} s for its bytes over the link; per-chunk requests not counted)`,
      );
      const timeShare = delta.seconds / full.seconds;
      const byteShare = delta.bytes / full.bytes;
      console.log(
        `  bytes: delta/casync ${(delta.bytes / c.bytes).toFixed(2)}  target < 1  ${delta.bytes < c.bytes ? "PASS" : "MISS"}`,
      );
      console.log(
        `  time:  delta/full ${timeShare.toFixed(2)} for bytes delta/full ${byteShare.toFixed(3)} (the rest is local: seeding, hashing, writing, read-back)`,
      );
      console.log(
        `  peak RSS (delta) ${delta.rssMb.toFixed(1)} MB  target < 100 MB  ${delta.rssMb < 100 ? "PASS" : "MISS"}`,
      );
    } finally {
      await server.close();
    }
    await chunkSizeSweep(oldImage, newImage, size);
    console.log(
      `(baseline for the agent's own speed: npm run bench -- install; agent ${AGENT_NODE_FLAGS.join(" ")})`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
