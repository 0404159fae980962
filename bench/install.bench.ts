/**
 * Standalone install throughput and memory (issue 4, "Benchmark"). The agent measured is the one a node
 * ships: the bundle built by scripts/build-agent.ts (built first, into the run's temp dir), run by plain
 * `node` with the flags of device/keel-agent.service (AGENT_NODE_FLAGS), no TypeScript loader. For each
 * image size (1 GiB and 4 GiB; KEEL_BENCH_SIZES=1,4 in GiB to choose), a random image is written to /tmp
 * and signed with core, served by one local HTTP server, and fetched KEEL_BENCH_ROUNDS times (default 3)
 * by each side, alternately:
 *   baseline: curl → a new file, fsync, then sha256sum of it (a raw copy and a hash, nothing else)
 *   keel:     `node keel-agent.mjs install release.json --image URL`: verify the manifest, stream
 *             GET → SHA-256 → write into a file slot → fsync → read-back hash → set trial boot
 *   keel file: the same with `--image FILE` (a local image, as air-gapped nodes install); both agent
 *             paths have the same < 100 MB memory budget, so both peaks are printed
 * Fairness: both sides read the same file through the same server (it stays in the page cache for the
 * whole run: nothing is dropped, no root needed) and write a fresh sparse file of the same size on the
 * same filesystem; the order alternates every round, so a warm-up or a neighbour's burst does not always
 * favour one side. Prints median and spread of each side, the ratio of the medians against ≥ 0.9, and the
 * agent's peak RSS (the largest of its rounds) against < 100 MB.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair, publicKeyEntry, signValue } from "../core/keys.ts";
import type { ReleaseSigned, RootSigned } from "../core/schemas.ts";
import { GrubEnvFile } from "../device/boot/grubenv.ts";
import { AGENT_NODE_FLAGS, buildAgent } from "../scripts/build-agent.ts";

const GIB = 1024 ** 3;
const MB = 1e6;
const RSS_TARGET_MB = 100;
const RATIO_TARGET = 0.9;

/** GNU time reports the child's exact peak RSS (ru_maxrss from wait4); without it, poll VmHWM. */
const GNU_TIME = spawnSync("/usr/bin/time", ["-f", "%M", "true"]).status === 0 ? "/usr/bin/time" : null;

async function writeRandomImage(path: string, size: number): Promise<string> {
  const fh = await open(path, "w");
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(buf.length, size - done);
      randomFillSync(buf, 0, n);
      hash.update(buf.subarray(0, n));
      await fh.write(buf, 0, n, done);
      done += n;
    }
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak RSS of the process in kB (0 when not measured). */
  peakRssKb: number;
}

/** Runs a command; with `measureRss`, its peak RSS is taken by GNU time (or, lacking it, VmHWM polling). */
export function exec(cmd: string, args: string[], measureRss = false): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const viaTime = measureRss && GNU_TIME !== null;
    // GNU time prints "%M" as the last line of stderr, after whatever the command wrote there.
    const child = viaTime
      ? spawn(GNU_TIME, ["-f", "keel-bench-maxrss-kb=%M", cmd, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
        })
      : spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let polled = 0;
    child.stdout.on("data", (d: Buffer) => {
      stdout = (stdout + d.toString()).slice(-4000);
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    // VmHWM is the process's own high-water mark: the last reading before exit is (nearly) its peak.
    const poll =
      measureRss && !viaTime
        ? setInterval(() => {
            readFile(`/proc/${child.pid}/status`, "utf8")
              .then((s) => {
                const m = /VmHWM:\s+(\d+) kB/.exec(s);
                if (m) polled = Math.max(polled, Number(m[1]));
              })
              .catch(() => {});
          }, 10)
        : undefined;
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(poll);
      const m = /keel-bench-maxrss-kb=(\d+)\s*$/.exec(stderr);
      resolveRun({ code: code ?? -1, stdout, stderr, peakRssKb: m ? Number(m[1]) : polled });
    });
  });
}

/** `manifests`: file name → fields added to the image entry (bench/delta.bench.ts signs one with chunks). */
export async function signFixture(
  dir: string,
  size: number,
  sha256: string,
  manifests: Record<string, Partial<ReleaseSigned["image"]>> = { "release.json": {} },
): Promise<void> {
  const rootKey = generateKeyPair();
  const releaseKey = generateKeyPair();
  const expiresAt = new Date(Date.now() + 86400_000).toISOString().replace(/\.\d+Z$/, "Z");
  const root: RootSigned = {
    _type: "root",
    schemaVersion: 1,
    version: 1,
    expiresAt,
    keys: {
      [rootKey.keyId]: publicKeyEntry(rootKey.publicKey),
      [releaseKey.keyId]: publicKeyEntry(releaseKey.publicKey),
    },
    roles: {
      root: { keyIds: [rootKey.keyId], threshold: 1 },
      release: { keyIds: [releaseKey.keyId], threshold: 1 },
    },
  };
  const release: ReleaseSigned = {
    _type: "release",
    schemaVersion: 1,
    os: "keelos",
    version: "2.0.0",
    releaseCounter: 2,
    compatible: ["bench"],
    image: { key: "releases/2.0.0/image.squashfs", size, sha256, format: "squashfs" },
    createdAt: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, "Z"),
    expiresAt,
  };
  await writeFile(
    join(dir, "root.json"),
    JSON.stringify({ signed: root, signatures: [signValue(root, rootKey)] }),
  );
  for (const [file, extra] of Object.entries(manifests)) {
    const signed = { ...release, image: { ...release.image, ...extra } };
    await writeFile(join(dir, file), JSON.stringify({ signed, signatures: [signValue(signed, releaseKey)] }));
  }
  await writeFile(
    join(dir, "agent.json"),
    JSON.stringify({
      thingName: "bench",
      hardware: "bench",
      stateDir: "state",
      trustRoot: "root.json",
      slots: { A: "slot-a.img", B: "slot-b.img" },
      cmdline: "cmdline",
      bootloader: { type: "grub", envFile: "grubenv" },
      factory: { version: "1.0.0", releaseCounter: 1 },
      ...(process.env.KEEL_BENCH_CHECKPOINT
        ? { download: { checkpointBytes: Number(process.env.KEEL_BENCH_CHECKPOINT) } }
        : {}),
    }),
  );
}

/**
 * A fresh node before every agent round: no state, A booted and good, and an empty sparse slot B of the
 * image's size, so the agent writes into new blocks exactly as curl does into its new file.
 */
export async function resetNode(dir: string, size: number): Promise<void> {
  await rm(join(dir, "state"), { recursive: true, force: true });
  for (const slot of ["slot-a.img", "slot-b.img"]) {
    await rm(join(dir, slot), { force: true });
    await writeFile(join(dir, slot), "");
    await truncate(join(dir, slot), size);
  }
  await rm(join(dir, "grubenv"), { force: true });
  await new GrubEnvFile(join(dir, "grubenv")).update([
    ["ORDER", "A B"],
    ["A_OK", "1"],
    ["A_TRY", "0"],
    ["B_OK", "0"],
    ["B_TRY", "0"],
  ]);
  await writeFile(join(dir, "cmdline"), "keel.slot=A\n");
}

/** Baseline round: curl into a new file, fsync it, sha256sum it. Returns seconds. */
async function baselineRound(dir: string, url: string, sha256: string): Promise<number> {
  const copy = join(dir, "baseline.img");
  await rm(copy, { force: true });
  const t0 = performance.now();
  const curl = await exec("curl", ["-sSf", "-o", copy, url]);
  if (curl.code !== 0) throw new Error(`curl failed: ${curl.stderr}`);
  const fh = await open(copy, "r+");
  await fh.datasync();
  await fh.close();
  const sum = await exec("sha256sum", [copy]);
  const seconds = (performance.now() - t0) / 1000;
  if (sum.code !== 0) throw new Error(`sha256sum failed: ${sum.stderr}`);
  if (!sum.stdout.startsWith(sha256)) throw new Error("baseline copy does not match the image");
  await rm(copy);
  return seconds;
}

/** Agent round: the bundled agent installs the release on a fresh node. Returns seconds and peak RSS. */
export async function agentRound(
  bundle: string,
  dir: string,
  image: string,
  size: number,
  opts: { manifest?: string; prepare?: () => Promise<void> } = {},
): Promise<{ seconds: number; rssMb: number; stderr: string }> {
  await resetNode(dir, size);
  await opts.prepare?.();
  const t0 = performance.now();
  const r = await exec(
    process.execPath,
    [
      // The flags the systemd unit and the bundle's shebang run it with.
      ...AGENT_NODE_FLAGS,
      bundle,
      "install",
      join(dir, opts.manifest ?? "release.json"),
      "--image",
      image,
      "--config",
      join(dir, "agent.json"),
    ],
    true,
  );
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`keel-agent install failed: ${r.stderr}`);
  if (!/slot B holds 2\.0\.0/.test(r.stdout)) throw new Error(`unexpected agent output: ${r.stdout}`);
  if ((await stat(join(dir, "slot-b.img"))).size !== size) throw new Error("slot size changed");
  return { seconds, rssMb: r.peakRssKb / 1024, stderr: r.stderr };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

function describe(label: string, size: number, seconds: number[]): string {
  const rates = seconds.map((s) => size / MB / s);
  const spread = `${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}`;
  return `  ${label.padEnd(40)} median ${(size / MB / median(rates)).toFixed(2)} s  ${median(rates).toFixed(0)} MB/s  (rounds ${spread} MB/s: ${rates.map((r) => r.toFixed(0)).join(", ")})`;
}

interface SizeResult {
  sizeGib: number;
  ratio: number;
  peakRssMb: number;
  filePeakRssMb: number;
}

async function benchOne(bundle: string, sizeGib: number, rounds: number): Promise<SizeResult> {
  const size = Math.round(sizeGib * GIB);
  const dir = await mkdtemp(join(tmpdir(), "keel-bench-"));
  const image = join(dir, "image.squashfs");
  // Both sides read the image through this one server, 1 MiB reads, from the page cache.
  const server = createServer((req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, {
      "content-length": size - start,
      ...(m ? { "content-range": `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    createReadStream(image, { start, highWaterMark: 1024 * 1024 }).pipe(res);
  });
  try {
    process.stdout.write(`preparing a ${sizeGib} GiB random image in ${dir} … `);
    const sha256 = await writeRandomImage(image, size);
    await signFixture(dir, size, sha256);
    console.log("done");
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.squashfs`;

    const base: number[] = [];
    const keel: number[] = [];
    const rss: number[] = [];
    const keelFile: number[] = [];
    const fileRss: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternate which side goes first, so neither always follows the other's writeback.
      const order = i % 2 === 0 ? ["baseline", "keel", "file"] : ["file", "keel", "baseline"];
      for (const side of order) {
        if (side === "baseline") base.push(await baselineRound(dir, url, sha256));
        else if (side === "file") {
          const r = await agentRound(bundle, dir, image, size);
          keelFile.push(r.seconds);
          fileRss.push(r.rssMb);
        } else {
          const r = await agentRound(bundle, dir, url, size);
          keel.push(r.seconds);
          rss.push(r.rssMb);
          if (process.env.KEEL_BENCH_VERBOSE === "1") {
            for (const line of r.stderr.split("\n")) {
              if (line.includes('"transition"')) console.log(`    ${line}`);
            }
          }
        }
      }
      process.stdout.write(`  round ${i + 1}/${rounds} done\n`);
    }
    const ratio = median(base) / median(keel);
    const peak = Math.max(...rss);
    const filePeak = Math.max(...fileRss);
    console.log(`image ${sizeGib} GiB (${size} bytes), ${rounds} rounds each, alternating`);
    console.log(describe("baseline (curl + fsync + sha256sum):", size, base));
    console.log(describe("keel-agent install (incl. read-back):", size, keel));
    console.log(describe("keel-agent install --image FILE:", size, keelFile));
    console.log(
      `  ratio keel/baseline (medians): ${ratio.toFixed(2)}  target ≥ ${RATIO_TARGET}  ${ratio >= RATIO_TARGET ? "PASS" : "MISS"}`,
    );
    console.log(
      `  agent peak RSS over HTTP: ${peak.toFixed(1)} MB (rounds ${rss.map((r) => r.toFixed(1)).join(", ")}; ${GNU_TIME ? "GNU time %M" : "VmHWM polled"})  target < ${RSS_TARGET_MB} MB  ${peak < RSS_TARGET_MB ? "PASS" : "MISS"}`,
    );
    console.log(
      `  agent peak RSS from a file: ${filePeak.toFixed(1)} MB (rounds ${fileRss.map((r) => r.toFixed(1)).join(", ")})  target < ${RSS_TARGET_MB} MB  ${filePeak < RSS_TARGET_MB ? "PASS" : "MISS"}`,
    );
    return { sizeGib, ratio, peakRssMb: peak, filePeakRssMb: filePeak };
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const sizes = (process.env.KEEL_BENCH_SIZES ?? "1,4")
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
  const rounds = Math.max(1, Number(process.env.KEEL_BENCH_ROUNDS ?? 3) || 3);
  const buildDir = await mkdtemp(join(tmpdir(), "keel-bench-agent-"));
  try {
    const bundle = await buildAgent(join(buildDir, "keel-agent.mjs"));
    console.log(`measuring the bundled agent: ${[process.execPath, ...AGENT_NODE_FLAGS, bundle].join(" ")}`);
    const results: SizeResult[] = [];
    for (const s of sizes) results.push(await benchOne(bundle, s, rounds));
    console.log("summary");
    for (const r of results) {
      console.log(
        `  ${r.sizeGib} GiB: ratio ${r.ratio.toFixed(2)} ${r.ratio >= RATIO_TARGET ? "PASS" : "MISS"}, peak RSS ${r.peakRssMb.toFixed(1)} MB (HTTP) ${r.peakRssMb < RSS_TARGET_MB ? "PASS" : "MISS"}, ${r.filePeakRssMb.toFixed(1)} MB (file) ${r.filePeakRssMb < RSS_TARGET_MB ? "PASS" : "MISS"}`,
      );
    }
  } finally {
    await rm(buildDir, { recursive: true, force: true });
  }
}
