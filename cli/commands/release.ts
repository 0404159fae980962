/**
 * `keel release build|sign|verify`: reproducible SquashFS images, signed manifests (with threshold signing
 * by several people on one envelope) and the same verification a device performs.
 *
 * Other groups attach more subcommands (e.g. `publish`) with `releaseCommand(program).command(...)`.
 */
import { spawn } from "node:child_process";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Command } from "commander";
import { checkImageDigest } from "../../core/acceptance.ts";
import { canonicalize } from "../../core/canonical-json.ts";
import { missingChunks } from "../../core/chunk-index.ts";
import { planDelta } from "../../core/delta-plan.ts";
import { describeError } from "../../core/errors.ts";
import { signValue } from "../../core/keys.ts";
import { parseWith } from "../../core/parse.ts";
import {
  type Envelope,
  ObjectKeySchema,
  type ReleaseSigned,
  ReleaseSignedSchema,
} from "../../core/schemas.ts";
import { parseReleaseEnvelope, type VerifiedRelease, verifyRelease } from "../../core/verify.ts";
import { ensureChunkIndex, imageIndex } from "../chunk-image.ts";
import { CliFileError, CliToolError, CliUsageError, errnoCode, VerificationFailedError } from "../errors.ts";
import { type FileDigest, hashFileWithProgress } from "../hash.ts";
import {
  collectList,
  durationOption,
  exists,
  intOption,
  isoSeconds,
  loadSecretKeys,
  loadTrustedRoot,
  readJsonFile,
  writeFileAtomic,
} from "../inputs.ts";
import { envelopeText } from "./root.ts";

/** The `release` command group, created once; later groups add subcommands to the same one. */
export function releaseCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === "release");
  if (existing) return existing;
  return program.command("release").description("build, sign, verify and publish KeelOS releases");
}

// ---------------------------------------------------------------------------------------------- build

/**
 * mksquashfs flags that make the bytes a function of the tree's names, contents, modes and links only:
 * fixed compressor and block size, every timestamp 0, every file owned by root, no host xattrs, no
 * appending to an old image. Directory entries are always sorted by name in SquashFS, and `-reproducible`
 * keeps multi-threaded output in a fixed order.
 *
 * `-no-fragments` is for delta updates (docs/delta.md): with fragments, the tails of many small files
 * share compressed fragment blocks, so one changed file changes a block that unchanged files live in too.
 * Measured on a generated root with ~5 % of files upgraded (bench/delta.bench.ts): a node fetched 9.4 %
 * of the image with fragments and 7.5 % without, for an image 0.7 % larger. A 256 KiB block size fetched
 * the same as 128 KiB, so the block size stays.
 */
export const REPRODUCIBLE_MKSQUASHFS_FLAGS = [
  "-noappend",
  "-reproducible",
  "-comp",
  "gzip",
  "-b",
  "131072",
  "-mkfs-time",
  "0",
  "-all-time",
  "0",
  "-all-root",
  "-no-xattrs",
  "-no-fragments",
  "-exit-on-error",
  "-no-progress",
  "-quiet",
] as const;

function run(tool: string, args: ReadonlyArray<string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (b: Buffer) => {
      // Keep the tail only: on failure the last lines say why.
      output = (output + b.toString("utf8")).slice(-8192);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (err) => {
      const hint =
        errnoCode(err) === "ENOENT"
          ? "not found; install it with: sudo apt-get install squashfs-tools"
          : err.message;
      reject(new CliToolError(tool, hint, "", { cause: err }));
    });
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new CliToolError(tool, `exited with ${signal ?? `code ${code}`}`, output));
    });
  });
}

export interface BuildOptions {
  /** Append the chunk index for delta updates (default true). */
  chunks?: boolean;
}

export async function buildImage(rootfs: string, out: string, opts: BuildOptions = {}): Promise<FileDigest> {
  let isDir = false;
  try {
    isDir = (await stat(rootfs)).isDirectory();
  } catch (err) {
    throw new CliFileError(rootfs, `cannot read root filesystem tree (${describeError(err)})`, {
      cause: err,
    });
  }
  if (!isDir) throw new CliFileError(rootfs, "is not a directory");
  // Build beside the target and rename, so a failed build never leaves a truncated image under --out.
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
  try {
    await run("mksquashfs", [rootfs, tmp, ...REPRODUCIBLE_MKSQUASHFS_FLAGS]);
    if (opts.chunks !== false) await ensureChunkIndex(tmp, { write: true });
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
  return hashFileWithProgress(out);
}

// ----------------------------------------------------------------------------------------------- sign

export interface SignFlags {
  version: string;
  counter: number;
  compatible: string[];
  key: string[];
  out: string;
  expires?: number | undefined; // seconds; default 90 days
  os: string;
  imageKey?: string | undefined;
  /** commander's `--no-chunks`: false leaves delta updates off for this release. */
  chunks?: boolean | undefined;
}

export interface SignResult {
  envelope: Envelope<ReleaseSigned>;
  /** Key ids that signed in this run. */
  added: string[];
  /** True when --out already held this release and the signatures were added to it. */
  cosigned: boolean;
  /** Of `added`, the keys that had already signed (their signature was replaced, not counted twice). */
  replaced: string[];
}

/** The fields of the signed body that the flags and the image decide (timestamps aside). */
type ReleaseBody = Omit<ReleaseSigned, "createdAt" | "expiresAt">;

function bodyOf(signed: ReleaseSigned): ReleaseBody {
  const { createdAt: _c, expiresAt: _e, ...body } = signed;
  return body;
}

/** Field paths where two bodies differ, for a refusal that says exactly what does not match. */
function differences(a: ReleaseBody, b: ReleaseBody): string[] {
  const out: string[] = [];
  for (const k of Object.keys(a) as Array<keyof ReleaseBody>) {
    if (k === "image") {
      const keys = new Set([...Object.keys(a.image), ...Object.keys(b.image)]) as Set<
        keyof ReleaseBody["image"]
      >;
      for (const ik of keys) {
        const show = (v: unknown) => (typeof v === "string" ? v : canonicalize(v ?? null));
        const [x, y] = [show(a.image[ik]), show(b.image[ik])];
        if (x !== y) out.push(`image.${ik}: ${x} in the file, ${y} from the flags`);
      }
    } else if (canonicalize(a[k]) !== canonicalize(b[k])) {
      out.push(`${k}: ${canonicalize(a[k])} in the file, ${canonicalize(b[k])} from the flags`);
    }
  }
  return out;
}

export async function signRelease(image: string, flags: SignFlags, nowMs = Date.now()): Promise<SignResult> {
  // Everything that can be wrong with the flags or keys is refused before the (possibly long) hash.
  const meta = parseWith(
    ReleaseSignedSchema.pick({ os: true, version: true, releaseCounter: true, compatible: true }),
    { os: flags.os, version: flags.version, releaseCounter: flags.counter, compatible: flags.compatible },
    "release flags",
  );
  const imageKey = parseWith(
    ObjectKeySchema,
    flags.imageKey ?? `releases/${meta.version}/image.squashfs`,
    "--image-key",
  );
  const keys = await loadSecretKeys(flags.key);
  const existing = (await exists(flags.out))
    ? parseReleaseEnvelope(await readJsonFile(flags.out, "release manifest"), `release manifest ${flags.out}`)
    : undefined;

  // The chunk index (delta updates) goes on the image's tail before it is hashed. When co-signing, the
  // existing manifest decides: the image is then only checked, never changed.
  const wantChunks = flags.chunks !== false && (existing ? existing.signed.image.chunks !== undefined : true);
  const chunks = wantChunks ? await ensureChunkIndex(image, { write: existing === undefined }) : null;
  const digest = await hashFileWithProgress(image);
  const body: ReleaseBody = {
    _type: "release",
    schemaVersion: 1,
    ...meta,
    image: {
      key: imageKey,
      size: digest.size,
      sha256: digest.sha256,
      format: "squashfs",
      ...(chunks ? { chunks } : {}),
    },
  };

  let signed: ReleaseSigned;
  let signatures = existing?.signatures ?? [];
  if (existing) {
    const diff = differences(bodyOf(existing.signed), body);
    if (diff.length > 0) {
      throw new CliUsageError(
        `${flags.out} already holds a different release (${diff.join("; ")}); refusing to mix signatures — choose another --out or remove the file`,
      );
    }
    // Co-signing: keep the existing signed body byte for byte (its timestamps too) so every signature covers it.
    signed = existing.signed;
  } else {
    signed = parseWith(
      ReleaseSignedSchema,
      {
        ...body,
        createdAt: isoSeconds(nowMs),
        expiresAt: isoSeconds(nowMs + (flags.expires ?? 90 * 86400) * 1000),
      },
      "release manifest built from the flags",
    );
  }
  const added: string[] = [];
  const replaced = keys.map((k) => k.keyId).filter((id) => signatures.some((s) => s.keyId === id));
  for (const k of keys) {
    if (added.includes(k.keyId)) continue;
    // A key signing again replaces its earlier signature rather than adding a duplicate.
    signatures = [...signatures.filter((s) => s.keyId !== k.keyId), signValue(signed, k)];
    added.push(k.keyId);
  }
  const envelope = { signed, signatures };
  // Round-trip through the envelope schema (signature count limits etc.) before anything is written.
  parseReleaseEnvelope(envelope, "signed release manifest");
  await writeFileAtomic(flags.out, envelopeText(envelope));
  return { envelope, added, cosigned: existing !== undefined, replaced };
}

// --------------------------------------------------------------------------------------------- verify

export interface VerifyFlags {
  root: string;
  rootChain?: string[] | undefined;
  image?: string | undefined;
}

export async function verifyReleaseFile(
  manifest: string,
  flags: VerifyFlags,
  now = new Date(),
): Promise<{ verified: VerifiedRelease; rootVersion: number; need: number; image?: FileDigest }> {
  try {
    const time = { now };
    const root = await loadTrustedRoot(flags.root, flags.rootChain ?? [], time);
    const verified = verifyRelease(await readJsonFile(manifest, "release manifest"), root, time);
    let image: FileDigest | undefined;
    if (flags.image !== undefined) {
      image = await hashFileWithProgress(flags.image);
      checkImageDigest(verified.release.image, image);
    }
    return { verified, rootVersion: root.version, need: root.roles.release.threshold, image };
  } catch (err) {
    throw new VerificationFailedError(manifest, { cause: err });
  }
}

// ----------------------------------------------------------------------------------------------- diff

export interface DiffResult {
  imageBytes: number;
  chunks: number;
  /** Chunks of NEW that OLD does not hold. */
  missingChunks: number;
  /** Bytes a node running OLD fetches: the planned Range requests plus the index itself. */
  fetchBytes: number;
  requests: number;
  /** NEW carries its index (built or signed by this Keel); false means a full download for every node. */
  carried: boolean;
}

/** What a delta from OLD to NEW costs, planned exactly as a device plans it (docs/delta.md). */
export async function diffImages(oldImage: string, newImage: string): Promise<DiffResult> {
  const [a, b] = [await imageIndex(oldImage), await imageIndex(newImage)];
  const known = new Set(a.index.chunks.map((c) => c.sha256.toString("hex")));
  const plan = planDelta(b.index, (c) => known.has(c.sha256.toString("hex")));
  const missing = missingChunks(b.index, [a.index]);
  const indexBytes = b.size - b.index.covered;
  return {
    imageBytes: b.size,
    chunks: b.index.chunks.length,
    missingChunks: missing.chunks,
    fetchBytes: b.carried ? plan.fetchBytes + indexBytes : b.size,
    requests: b.carried ? plan.ranges.length + 1 : 1,
    carried: b.carried,
  };
}

// ------------------------------------------------------------------------------------------- commands

function verb(r: SignResult): string {
  if (!r.cosigned) return "signed";
  return r.added.every((k) => r.replaced.includes(k)) ? "re-signed" : "co-signed";
}

export function register(program: Command): void {
  const release = releaseCommand(program);

  release
    .command("build")
    .description("build a reproducible SquashFS image from a root filesystem tree (same tree → same bytes)")
    .argument("<rootfs>", "directory holding the root filesystem")
    .requiredOption("--out <file>", "image file to write, e.g. image.squashfs")
    .option("--no-chunks", "do not append the chunk index (no delta updates to this release)")
    .action(async (rootfs: string, flags: { out: string; chunks: boolean }) => {
      const d = await buildImage(rootfs, flags.out, { chunks: flags.chunks });
      process.stdout.write(`wrote ${flags.out}: ${d.size} bytes, sha256 ${d.sha256}\n`);
    });

  release
    .command("sign")
    .description(
      "sign a release manifest for IMAGE; run again with another --key on the same --out to add a signature",
    )
    .argument("<image>", "the SquashFS image (read once for size and SHA-256)")
    .requiredOption("--version <semver>", "release version, e.g. 1.4.0")
    .requiredOption(
      "--counter <n>",
      "releaseCounter: devices refuse counters below the one they run",
      intOption(0),
    )
    .requiredOption(
      "--compatible <ids>",
      "hardware identifiers allowed to install it, comma-separated",
      collectList,
    )
    .requiredOption(
      "--key <file>",
      "secret key file (.key); repeat or comma-separate for several",
      collectList,
    )
    .requiredOption("--out <file>", "manifest envelope to write, e.g. release.json")
    .option(
      "--expires <duration>",
      "how long the manifest stays valid, e.g. 30d (default: 90d)",
      durationOption,
    )
    .option("--os <name>", "OS name in the manifest", "keelos")
    .option("--image-key <key>", "S3 key of the image (default: releases/<version>/image.squashfs)")
    .option("--no-chunks", "sign without a chunk index (devices always download this release in full)")
    .action(async (image: string, flags: SignFlags) => {
      const r = await signRelease(image, flags);
      if (r.cosigned && flags.expires !== undefined) {
        process.stderr.write(
          `note: --expires ignored; co-signing keeps the timestamps already in ${flags.out}\n`,
        );
      }
      const s = r.envelope.signed;
      const by = r.added.map((k) => `${k.slice(0, 16)}…`).join(", ");
      process.stdout.write(
        `${verb(r)} ${s.os} ${s.version} (counter ${s.releaseCounter}, ${s.image.size} bytes, sha256 ${s.image.sha256}) by ${by}; ${flags.out} has ${r.envelope.signatures.length} signature(s)\n`,
      );
    });

  release
    .command("diff")
    .description("expected delta size: bytes a node running OLD fetches to install NEW")
    .argument("<old>", "the image nodes run now")
    .argument("<new>", "the image to roll out")
    .action(async (oldImage: string, newImage: string) => {
      const d = await diffImages(oldImage, newImage);
      const pct = (n: number) => `${((n * 100) / d.imageBytes).toFixed(1)} %`;
      if (!d.carried) {
        process.stdout.write(
          `${newImage} carries no chunk index: every node downloads all ${d.imageBytes} bytes (rebuild with keel release build, or sign it)\n`,
        );
        return;
      }
      process.stdout.write(
        `${newImage}: ${d.imageBytes} bytes in ${d.chunks} chunks; ${d.missingChunks} not in ${oldImage}\n` +
          `delta: fetch ${d.fetchBytes} bytes (${pct(d.fetchBytes)} of the image) in ${d.requests} requests; saves ${d.imageBytes - d.fetchBytes} bytes per node\n`,
      );
    });

  release
    .command("verify")
    .description("verify a release manifest (and optionally its image) exactly as a device would")
    .argument("<manifest>", "release.json")
    .requiredOption("--root <file>", "the trust root you trust (e.g. root.json, version 1)")
    .option(
      "--root-chain <files>",
      "newer roots to walk forward through, in order, comma-separated",
      collectList,
    )
    .option("--image <file>", "also check the image's size and SHA-256 against the manifest")
    .action(async (manifest: string, flags: VerifyFlags) => {
      const r = await verifyReleaseFile(manifest, flags);
      const s = r.verified.release;
      const image = r.image
        ? `; image ${r.image.size} bytes matches sha256 ${r.image.sha256.slice(0, 16)}…`
        : "";
      process.stdout.write(
        `OK ${s.os} ${s.version} (counter ${s.releaseCounter}) for ${s.compatible.join(",")}: ${r.verified.signers.length} valid release signature(s) (threshold ${r.need}) under root v${r.rootVersion}, expires ${s.expiresAt}${image}\n`,
      );
    });
}
