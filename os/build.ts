/**
 * `keel os build`: the KeelOS release SquashFS and a bootable disk holding it in slot A (and the rescue
 * slot), from Debian's archive and this repository's agent. Every input is checked before anything is
 * written; each expensive step (Debian base, kernel, initramfs, root image) is cached by the hash of its
 * inputs, so a rebuild with nothing changed costs only the disk assembly.
 */
import { createHash } from "node:crypto";
import { appendFile, copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { describeError } from "../core/errors.ts";
import { AgentConfigSchema } from "../device/config.ts";
import { cachedStep } from "./cache.ts";
import { buildDisk, diskLayout, type Part } from "./disk.ts";
import { OsInputError } from "./errors.ts";
import { buildInitramfs } from "./initramfs.ts";
import { buildKernel } from "./kernel.ts";
import { assembleRootfs, buildBase, type Fault, NODE_LAYOUT, type NodeInputs } from "./rootfs.ts";

const ROOT = resolve(import.meta.dirname, "..");
export const DEFAULT_CACHE_DIR = join(ROOT, ".keel/os-cache");
export const DEFAULT_AGENT = join(ROOT, "dist/keel-agent.mjs");
export const AGENT_UNIT = join(ROOT, "device/keel-agent.service");
export const SHIPPED_GRUB_CFG = join(ROOT, "device/boot/grub.cfg");

/** Packs a root tree as the release SquashFS (`keel release build`'s reproducible mksquashfs). */
export type PackFn = (tree: string, out: string) => Promise<{ sha256: string; size: number }>;

export interface OsBuildOptions extends RootImageOptions {
  out: string;
  slotMiB?: number;
  diskMiB?: number | undefined;
  /** agent.json for the persistence partition; default: an air-gapped node config (no broker). */
  agentConfig?: string | undefined;
  /** More files for the persistence partition's config/ directory (certificates). */
  configFiles?: string[];
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
    ...NODE_LAYOUT,
    trustRoot: "/usr/share/keel/root.json",
    cmdline: "/proc/cmdline",
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

/** What the root image (the release SquashFS) is built from. */
export interface RootImageOptions {
  trustRoot: string;
  version: string;
  fault?: Fault;
  /**
   * More KEY=value lines for /etc/keelos-release. `keel dev --vm` marks its broken release KUBELET=broken
   * there, which is how the simulated nodes that share the release learn their kubelet fails.
   */
  releaseLabels?: Record<string, string>;
  agent?: string;
  node?: string;
  cacheDir?: string;
  pack: PackFn;
  progress?: (msg: string) => void;
}

export interface RootImage {
  /** The SquashFS inside the cache entry; copy it, never write to it. */
  image: string;
  sha256: string;
  size: number;
  kernel: string;
  cached: { kernel: boolean; image: boolean };
}

/** Everything the root tree is made of, as files and values. */
export interface TreeInputs extends Omit<NodeInputs, "agentUnit"> {
  /** KEY=value lines appended to /etc/keelos-release. */
  labels: string;
}

/**
 * Assembles the root tree in `dir/tree`, packs it to `dir/image.squashfs` and removes the tree. No cache:
 * the reproducibility check runs this twice on the same inputs and compares the bytes.
 */
export async function assembleAndPack(
  dir: string,
  inp: TreeInputs,
  pack: PackFn,
): Promise<{ sha256: string; size: number }> {
  const tree = join(dir, "tree");
  await mkdir(tree);
  try {
    await assembleRootfs(tree, { ...inp, agentUnit: AGENT_UNIT });
    if (inp.labels) await appendFile(join(tree, "etc/keelos-release"), inp.labels);
    return await pack(tree, join(dir, "image.squashfs"));
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

interface CheckedInputs {
  agentPath: string;
  agent: Buffer;
  nodePath: string;
  trust: Buffer;
  unit: Buffer;
}

/** The root image's own inputs, read and checked; nothing is built or written. */
async function readImageInputs(o: RootImageOptions): Promise<CheckedInputs> {
  const agentPath = o.agent ?? DEFAULT_AGENT;
  const agent = await mustRead(agentPath, "the agent bundle", "build it with `npm run build:agent`");
  checkAgentBundle(agent, agentPath);
  const trust = await mustRead(o.trustRoot, "the trust root");
  const unit = await mustRead(AGENT_UNIT, "the agent unit");
  await mustRead(SHIPPED_GRUB_CFG, "the shipped grub.cfg");
  return { agentPath, agent, nodePath: o.node ?? process.execPath, trust, unit };
}

/**
 * The KeelOS release SquashFS alone (what `keel release sign` signs), through the cache: the Debian base,
 * kernel, initramfs and the packed root tree. `keel dev --vm` builds its releases with this.
 */
export async function buildRootImage(o: RootImageOptions): Promise<RootImage> {
  return packRoot(o, await readImageInputs(o));
}

async function packRoot(o: RootImageOptions, inp: CheckedInputs): Promise<RootImage> {
  const say = o.progress ?? (() => undefined);
  const cacheDir = o.cacheDir ?? DEFAULT_CACHE_DIR;
  const fault = o.fault ?? "none";
  // The Node.js runtime (~100 MB) is read last: only its hash is needed, for the cache key.
  const node = await mustRead(inp.nodePath, "the Node.js binary");
  const labels = Object.entries(o.releaseLabels ?? {})
    .map(([k, v]) => {
      if (!/^[A-Z_]{1,40}$/.test(k) || !/^[\w.-]{0,100}$/.test(v))
        throw new OsInputError(
          `release label ${k}=${v}: KEY must be A-Z and _, value letters, digits, . _ -`,
        );
      return `${k}=${v}\n`;
    })
    .join("");

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
      sha(inp.agent),
      sha(inp.unit),
      sha(inp.trust),
      o.version,
      fault,
      // Only when present, so every image built without labels keeps its cache entry.
      ...(labels ? [labels] : []),
      ...builderSources,
    ],
    async (dir) => {
      const tree = { base, vmlinuz: kernel.vmlinuz, initrd, node: inp.nodePath, agent: inp.agentPath };
      const { trustRoot, version, pack } = o;
      const digest = await assembleAndPack(dir, { ...tree, trustRoot, version, fault, labels }, pack);
      await writeFile(join(dir, "digest.json"), JSON.stringify(digest));
    },
  );
  const digest = JSON.parse(await readFile(join(imageStep.dir, "digest.json"), "utf8")) as {
    sha256: string;
    size: number;
  };
  return {
    image: join(imageStep.dir, "image.squashfs"),
    sha256: digest.sha256,
    size: digest.size,
    kernel: kernel.version,
    cached: { kernel: kernel.hit, image: imageStep.hit },
  };
}

export async function buildOs(o: OsBuildOptions): Promise<OsBuildResult> {
  const say = o.progress ?? (() => undefined);
  const slotMiB = o.slotMiB ?? 384;
  // Inputs first: nothing is downloaded or written until all of them are readable and sane.
  const inputs = await readImageInputs(o);
  const configText = o.agentConfig
    ? (await mustRead(o.agentConfig, "the agent config")).toString("utf8")
    : `${JSON.stringify(defaultAgentConfig(o.version), null, 2)}\n`;
  checkAgentConfig(configText, o.agentConfig ?? "the default agent config");
  const extra: Array<[string, Buffer]> = [];
  for (const f of o.configFiles ?? []) extra.push([f, await mustRead(f, "a config file")]);
  // A first layout check with the smallest possible image catches a too-small disk before any build.
  diskLayout({ slotMiB, diskMiB: o.diskMiB, imageBytes: 0 });
  const root = await packRoot(o, inputs);

  say("disk (GPT, GRUB BIOS+UEFI, slots, persistence)");
  await mkdir(o.out, { recursive: true });
  const image = join(o.out, "image.squashfs");
  await copyFile(root.image, image);
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
    sha256: root.sha256,
    size: root.size,
    disk,
    parts: layout.parts,
    diskMiB: layout.diskMiB,
    kernel: root.kernel,
    cached: { base: false, ...root.cached },
  };
  await writeFile(join(o.out, "build.json"), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
