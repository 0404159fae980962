/**
 * Standalone install throughput and memory (issue 4, "Benchmark"). For each image size (1 GiB and 4 GiB;
 * KEEL_BENCH_SIZES=1,4 in GiB to choose), a random image is written to /tmp and signed with core, served by
 * one local HTTP server, and fetched twice in the same run:
 *   baseline: curl → a plain file, fsync, then sha256sum (a raw copy and a hash, nothing else)
 *   keel:     `keel-agent install release.json --image URL` as its own process: verify the manifest,
 *             stream GET → SHA-256 → write into a file slot → fsync → read-back hash → set trial boot
 * Prints both throughputs, the ratio (target ≥ 0.9) and the agent's peak RSS (target < 100 MB).
 */
import { spawn } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generateKeyPair, publicKeyEntry, signValue } from "../core/keys.ts";
import type { ReleaseSigned, RootSigned } from "../core/schemas.ts";
import { GrubEnvFile } from "../device/boot/grubenv.ts";

const ROOT = resolve(import.meta.dirname, "..");
const GIB = 1024 ** 3;
const MB = 1e6;

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

function exec(
  cmd: string,
  args: string[],
): Promise<{ code: number; stderr: string; peakRssKb: number; ms: number }> {
  return new Promise((resolveRun, reject) => {
    const start = performance.now();
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let peak = 0;
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    // VmHWM is the process's own high-water mark: the last reading before exit is its peak RSS.
    const poll = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, "utf8")
        .then((s) => {
          const m = /VmHWM:\s+(\d+) kB/.exec(s);
          if (m) peak = Math.max(peak, Number(m[1]));
        })
        .catch(() => {});
    }, 20);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(poll);
      resolveRun({ code: code ?? -1, stderr, peakRssKb: peak, ms: performance.now() - start });
    });
  });
}

async function benchOne(sizeGib: number): Promise<void> {
  const size = Math.round(sizeGib * GIB);
  const dir = await mkdtemp(join(tmpdir(), "keel-bench-"));
  const server = createServer((req, res) => {
    const file = join(dir, "image.squashfs");
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, {
      "content-length": size - start,
      ...(m ? { "content-range": `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    createReadStream(file, { start, highWaterMark: 1024 * 1024 }).pipe(res);
  });
  try {
    process.stdout.write(`preparing a ${sizeGib} GiB random image in ${dir} … `);
    const sha256 = await writeRandomImage(join(dir, "image.squashfs"), size);
    console.log("done");
    // Sign it with core, as a release would be.
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
    await writeFile(
      join(dir, "release.json"),
      JSON.stringify({ signed: release, signatures: [signValue(release, releaseKey)] }),
    );
    // A node: two file slots the size of the image (sparse, like the baseline's new file), GRUB env, cmdline.
    await writeFile(join(dir, "slot-a.img"), "");
    await writeFile(join(dir, "slot-b.img"), "");
    await truncate(join(dir, "slot-a.img"), size);
    await truncate(join(dir, "slot-b.img"), size);
    await new GrubEnvFile(join(dir, "grubenv")).update([
      ["ORDER", "A B"],
      ["A_OK", "1"],
      ["A_TRY", "0"],
      ["B_OK", "0"],
      ["B_TRY", "0"],
    ]);
    await writeFile(join(dir, "cmdline"), "keel.slot=A\n");
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
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.squashfs`;

    // Baseline: raw copy with fsync, then sha256sum.
    const copy = join(dir, "baseline.img");
    const t0 = performance.now();
    const curl = await exec("curl", ["-sSf", "-o", copy, url]);
    if (curl.code !== 0) throw new Error(`curl failed: ${curl.stderr}`);
    const fh = await open(copy, "r+");
    await fh.sync();
    await fh.close();
    const sum = await exec("sha256sum", [copy]);
    if (sum.code !== 0) throw new Error(`sha256sum failed: ${sum.stderr}`);
    const baselineMs = performance.now() - t0;
    await rm(copy);

    // Keel: the agent as its own process, same server, same kind of file.
    const ours = await exec(process.execPath, [
      join(ROOT, "bin/keel-agent.mjs"),
      "install",
      join(dir, "release.json"),
      "--image",
      // KEEL_BENCH_SOURCE=file reads the image file directly (isolates the HTTP client's share).
      process.env.KEEL_BENCH_SOURCE === "file" ? join(dir, "image.squashfs") : url,
      "--config",
      join(dir, "agent.json"),
    ]);
    if (ours.code !== 0) throw new Error(`keel-agent install failed: ${ours.stderr}`);
    if ((await stat(join(dir, "slot-b.img"))).size !== size) throw new Error("slot size changed");

    const base = size / MB / (baselineMs / 1000);
    const keel = size / MB / (ours.ms / 1000);
    const ratio = keel / base;
    const rssMb = ours.peakRssKb / 1024;
    console.log(`image ${sizeGib} GiB (${size} bytes)`);
    console.log(
      `  baseline (curl + fsync + sha256sum): ${(baselineMs / 1000).toFixed(2)} s  ${base.toFixed(0)} MB/s`,
    );
    console.log(
      `  keel-agent install (incl. read-back): ${(ours.ms / 1000).toFixed(2)} s  ${keel.toFixed(0)} MB/s`,
    );
    console.log(
      `  ratio keel/baseline: ${ratio.toFixed(2)}  (target ≥ 0.90) ${ratio >= 0.9 ? "OK" : "BELOW TARGET"}`,
    );
    console.log(
      `  agent peak RSS: ${rssMb.toFixed(1)} MB  (target < 100 MB) ${rssMb < 100 ? "OK" : "ABOVE TARGET"}`,
    );
    if (process.env.KEEL_BENCH_VERBOSE === "1") {
      for (const line of ours.stderr.split("\n")) {
        if (line.includes('"transition"')) console.log(`  ${line}`);
      }
    }
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
  for (const s of sizes) await benchOne(s);
}
