/**
 * Generated KeelOS-like root trees for bench/delta.bench.ts: packages of files with a Debian-like size
 * mix (many small config and script files, libraries in the tens to hundreds of KiB, a few binaries of
 * several MiB), content about as compressible as binaries and text (half unique random bytes, half
 * words), and a second tree that upgrades a share of the packages (every file of an upgraded package is
 * rewritten, its size changed by up to ±10 %). Deterministic for a seed, so runs compare.
 */
import { randomFillSync } from "node:crypto";
import { cp, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS =
  "the of and to in is for on that with as by this be are from or at an it not which config service kernel node network module library version package install update system device user file path value default error info debug true false".split(
    " ",
  );

function textCorpus(rand: () => number, size: number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < size) {
    const w = WORDS[Math.floor(rand() * WORDS.length)] ?? "x";
    parts.push(w);
    n += w.length + 1;
  }
  return Buffer.from(parts.join(" ")).subarray(0, size);
}

/**
 * One file's size: 70 % 100 B–8 KiB, 29 % 8–256 KiB, 1 % 256 KiB–4 MiB, log-uniform within each band
 * (a mean near 35 KiB, as in a Debian root: ~9000 files in 300 MB).
 */
function fileSize(rand: () => number): number {
  const r = rand();
  const [lo, hi] = r < 0.7 ? [100, 8192] : r < 0.99 ? [8192, 256 * 1024] : [256 * 1024, 4 * 1024 * 1024];
  return Math.round(lo * (hi / lo) ** rand());
}

function content(size: number, rand: () => number, corpus: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; at += 4096) {
    const n = Math.min(4096, size - at);
    const half = Math.floor(n / 2);
    randomFillSync(buf, at, half);
    const from = Math.floor(rand() * (corpus.length - 4096));
    corpus.copy(buf, at + half, from, from + (n - half));
  }
  return buf;
}

export interface TreePlan {
  packages: Array<{ name: string; files: Array<{ path: string; size: number }> }>;
  bytes: number;
  files: number;
}

/** Lays out packages until the tree holds `targetBytes`. */
export function planTree(targetBytes: number, seed = 1): TreePlan {
  const rand = prng(seed);
  const packages: TreePlan["packages"] = [];
  let bytes = 0;
  let files = 0;
  for (let p = 0; bytes < targetBytes; p++) {
    const name = `pkg${String(p).padStart(4, "0")}`;
    const count = 4 + Math.floor(rand() * 30);
    const list = [];
    for (let f = 0; f < count && bytes < targetBytes; f++) {
      const dirs = ["usr/lib", "usr/share", "usr/bin", "etc"];
      const d = dirs[Math.floor(rand() * dirs.length)] ?? "usr/lib";
      const size = fileSize(rand);
      list.push({ path: join(d, name, `f${f}`), size });
      bytes += size;
      files++;
    }
    packages.push({ name, files: list });
  }
  return { packages, bytes, files };
}

export async function writeTree(root: string, plan: TreePlan, seed = 1): Promise<void> {
  const rand = prng(seed + 1000);
  const corpus = textCorpus(rand, 1024 * 1024);
  for (const pkg of plan.packages) {
    for (const f of pkg.files) {
      await mkdir(join(root, f.path, ".."), { recursive: true });
      await writeFile(join(root, f.path), content(f.size, rand, corpus));
    }
  }
}

/**
 * Copies `from` to `to` and upgrades packages picked at random until `share` of all files changed (every
 * file of an upgraded package gets new content and a size up to ±10 % different).
 */
export async function upgradeTree(from: string, to: string, plan: TreePlan, share: number, seed = 2) {
  await cp(from, to, { recursive: true });
  const rand = prng(seed);
  const corpus = textCorpus(rand, 1024 * 1024);
  let files = 0;
  let bytes = 0;
  // Packages in a shuffled order until `share` of the files are upgraded.
  const order = plan.packages.map((p) => ({ p, k: rand() })).sort((a, b) => a.k - b.k);
  for (const { p: pkg } of order) {
    if (files >= share * plan.files) break;
    for (const f of pkg.files) {
      const size = Math.max(1, Math.round(f.size * (0.9 + 0.2 * rand())));
      await writeFile(join(to, f.path), content(size, rand, corpus));
      files++;
      bytes += size;
    }
  }
  return { files, bytes };
}
