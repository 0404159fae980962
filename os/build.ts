/**
 * `keel os build`: the KeelOS release SquashFS and a bootable disk holding it in slot A (and the rescue
 * slot), from Debian's archive and this repository's agent. Every input is checked before anything is
 * written; each expensive step (Debian base, kernel, initramfs, root image) is cached by the hash of its
 * inputs, so a rebuild with nothing changed costs only the disk assembly.
 */
import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { describeError } from "../core/errors.ts";
import { AgentConfigSchema } from "../device/config.ts";
import { cachedStep } from "./cache.ts";
import { buildDisk, diskLayout, type Part } from "./disk.ts";
import { OsInputError } from "./errors.ts";
import { buildInitramfs } from "./initramfs.ts";
import { buildKernel } from "./kernel.ts";
import { assembleRootfs, buildBase, type Fault } from "./rootfs.ts";

const ROOT = resolve(import.meta.dirname, "..");
export const DEFAULT_CACHE_DIR = join(ROOT, ".keel/os-cache");
export const DEFAULT_AGENT = join(ROOT, "dist/keel-agent.mjs");
export const AGENT_UNIT = join(ROOT, "device/keel-agent.service");
export const SHIPPED_GRUB_CFG = join(ROOT, "device/boot/grub.cfg");

/** Packs a root tree as the release SquashFS (`keel release build`'s reproducible mksquashfs). */
export type PackFn = (tree: string, out: string) => Promise<{ sha256: string; size: number }>;

export interface OsBuildOptions {
  out: string;
  trustRoot: string;
  version: string;
  fault?: Fault;
  agent?: string;
  node?: string;
  cacheDir?: string;
  slotMiB?: number;
  diskMiB?: number | undefined;
  /** agent.json for the persistence partition; default: an air-gapped node config (no broker). */
  agentConfig?: string | undefined;
  /** More files for the persistence partition's config/ directory (certificates). */
  configFiles?: string[];
  pack: PackFn;
  progress?: (msg: string) => void;
}

export interface OsBuildResult {
  image: string;
  sha256: string;
  size: number;
  disk: string;
  parts: Part[];
  diskMiB: number;
  kernel: string;
  cached: { base: boolean; kernel: boolean; image: boolean };
}

async function mustRead(path: string, what: string, hint = ""): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new OsInputError(`${what} ${path} cannot be read${hint ? `; ${hint}` : ""}`, { cause: err });
  }
}

/** The config a node gets when none is given: every path where the image puts it, no broker (air-gapped). */
export function defaultAgentConfig(version: string): Record<string, unknown> {
  return {
    thingName: "keelos-node",
    hardware: "qemu-x86_64",
    stateDir: "/var/lib/keel",
    trustRoot: "/usr/share/keel/root.json",
    slots: { A: "/dev/disk/by-partlabel/keel-a", B: "/dev/disk/by-partlabel/keel-b" },
    cmdline: "/proc/cmdline",
    bootloader: { type: "grub", envFile: "/boot/efi/EFI/keel/grubenv" },
    health: [
      { type: "http", url: "http://127.0.0.1:10248/healthz", expect: "ok", retries: 20, intervalSeconds: 3 },
    ],
    healthDeadlineSeconds: 180,
    reboot: { command: "systemctl reboot" },
    factory: { version, releaseCounter: 1 },
    log: { level: "info" },
  };
}

/** Checks the agent config as the agent will, so a node is never built with a config it refuses. */
export function checkAgentConfig(text: string, source: string): void {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OsInputError(`${source}: not JSON (${describeError(err)})`, { cause: err });
  }
  const parsed = AgentConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new OsInputError(`${source}: not a valid agent.json (${issues})`, { cause: parsed.error });
  }
}

/** The agent bundle must be the real one: a file that runs keel-agent, not an empty or foreign file. */
function checkAgentBundle(bytes: Buffer, path: string): void {
  const head = bytes.subarray(0, 200).toString("utf8");
  if (!head.startsWith("#!/usr/bin/env -S node") || !bytes.includes("keel-agent")) {
    throw new OsInputError(`${path} is not the keel-agent bundle; build it with \`npm run build:agent\``);
  }
}

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

export async function buildOs(o: OsBuildOptions): Promise<OsBuildResult> {
  const say = o.progress ?? (() => undefined);
  const cacheDir = o.cacheDir ?? DEFAULT_CACHE_DIR;
  const fault = o.fault ?? "none";
  const slotMiB = o.slotMiB ?? 384;
  // Inputs first: nothing is downloaded or written until all of them are readable and sane.
  const agentPath = o.agent ?? DEFAULT_AGENT;
  const agent = await mustRead(agentPath, "the agent bundle", "build it with `npm run build:agent`");
  checkAgentBundle(agent, agentPath);
  const nodePath = o.node ?? process.execPath;
  const trust = await mustRead(o.trustRoot, "the trust root");
  const unit = await mustRead(AGENT_UNIT, "the agent unit");
  await mustRead(SHIPPED_GRUB_CFG, "the shipped grub.cfg");
  const configText = o.agentConfig
    ? (await mustRead(o.agentConfig, "the agent config")).toString("utf8")
    : `${JSON.stringify(defaultAgentConfig(o.version), null, 2)}\n`;
  checkAgentConfig(configText, o.agentConfig ?? "the default agent config");
  const extra: Array<[string, Buffer]> = [];
  for (const f of o.configFiles ?? []) extra.push([f, await mustRead(f, "a config file")]);
  // A first layout check with the smallest possible image catches a too-small disk before any build.
  diskLayout({ slotMiB, diskMiB: o.diskMiB, imageBytes: 0 });
  // The Node.js runtime (~100 MB) is read last: only its hash is needed, for the cache key.
  const node = await mustRead(nodePath, "the Node.js binary");

  say("debian base (mmdebstrap)");
  const base = await buildBase(cacheDir);
  say("kernel (apt-get download)");
  const kernel = await buildKernel(cacheDir);
  say("initramfs");
  const initrd = await buildInitramfs(cacheDir, kernel);
  const builderSources = await Promise.all(
    ["rootfs.ts", "initramfs.ts"].map((f) => readFile(join(import.meta.dirname, f))),
  );
  say("root image (mksquashfs)");
  const imageStep = await cachedStep(
    cacheDir,
    "image",
    [
      // Cache entries by name, not by path: the same inputs hit whatever the cache directory is called.
      relative(cacheDir, base),
      relative(cacheDir, kernel.dir),
      relative(cacheDir, initrd),
      sha(node),
      sha(agent),
      sha(unit),
      sha(trust),
      o.version,
      fault,
      ...builderSources,
    ],
    async (dir) => {
      const tree = join(dir, "tree");
      await mkdir(tree);
      await assembleRootfs(tree, {
        base,
        node: nodePath,
        agent: agentPath,
        agentUnit: AGENT_UNIT,
        trustRoot: o.trustRoot,
        vmlinuz: kernel.vmlinuz,
        initrd,
        version: o.version,
        fault,
      });
      const digest = await o.pack(tree, join(dir, "image.squashfs"));
      await writeFile(join(dir, "digest.json"), JSON.stringify(digest));
      await rm(tree, { recursive: true, force: true });
    },
  );
  const digest = JSON.parse(await readFile(join(imageStep.dir, "digest.json"), "utf8")) as {
    sha256: string;
    size: number;
  };

  say("disk (GPT, GRUB BIOS+UEFI, slots, persistence)");
  await mkdir(o.out, { recursive: true });
  const image = join(o.out, "image.squashfs");
  await copyFile(join(imageStep.dir, "image.squashfs"), image);
  const work = join(o.out, ".work");
  const dataDir = join(work, "data");
  await rm(work, { recursive: true, force: true });
  await mkdir(join(dataDir, "config"), { recursive: true, mode: 0o700 });
  await writeFile(join(dataDir, "config/agent.json"), configText, { mode: 0o600 });
  for (const [f, bytes] of extra)
    await writeFile(join(dataDir, "config", f.split("/").pop() as string), bytes, { mode: 0o600 });
  const disk = join(o.out, "disk.img");
  const layout = await buildDisk({
    slotMiB,
    diskMiB: o.diskMiB,
    imageBytes: (await stat(image)).size,
    image,
    grubCfg: SHIPPED_GRUB_CFG,
    dataDir,
    out: disk,
    work,
  });
  await rm(work, { recursive: true, force: true });
  const result: OsBuildResult = {
    image,
    sha256: digest.sha256,
    size: digest.size,
    disk,
    parts: layout.parts,
    diskMiB: layout.diskMiB,
    kernel: kernel.version,
    cached: { base: false, kernel: kernel.hit, image: imageStep.hit },
  };
  await writeFile(join(o.out, "build.json"), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
