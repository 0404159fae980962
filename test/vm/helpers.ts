/**
 * Shared set-up for the VM tests: one KeelOS build (cached by input hash under .keel/os-cache, so only
 * the first run on a machine pays for mmdebstrap and mksquashfs), a qcow2 overlay per boot sequence, and
 * a boot helper that prints each boot's time. One QEMU at a time: every VM test lives in one file.
 */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildImage } from "../../cli/commands/release.ts";
import { buildOs, type OsBuildResult } from "../../os/build.ts";
import { type Boot, boot, type Firmware, makeOverlay } from "../../os/qemu.ts";
import type { Fault } from "../../os/rootfs.ts";
import { buildAgent } from "../../scripts/build-agent.ts";
import { key, makeRoot, sign } from "../core/fixtures.ts";

export const CACHE = resolve(import.meta.dirname, "../../.keel/os-cache");
/** Allowance per boot on a loaded 2-core machine (TCG): generous, never asserted as a time. */
export const BOOT_TIMEOUT_MS = 300_000;

export const releaseKey = key(41);

export async function buildTestOs(
  tmp: string,
  opts: { version?: string; fault?: Fault; agentConfig?: string; configFiles?: string[] } = {},
): Promise<OsBuildResult> {
  const agent = join(tmp, "keel-agent.mjs");
  await buildAgent(agent);
  const root = join(tmp, "root.json");
  await writeFile(root, JSON.stringify(sign(makeRoot({ rootKeys: [releaseKey] }), [releaseKey])));
  const out = join(tmp, `os-${opts.version ?? "1.0.0"}-${opts.fault ?? "none"}`);
  return buildOs({
    out,
    trustRoot: root,
    version: opts.version ?? "1.0.0",
    fault: opts.fault ?? "none",
    agent,
    cacheDir: CACHE,
    agentConfig: opts.agentConfig,
    configFiles: opts.configFiles ?? [],
    pack: buildImage,
    progress: (m) => console.log(`keel os build: ${m}`),
  });
}

export interface Machine {
  /** Boots (power on) and returns the running boot; the previous one must have exited. */
  powerOn(): Promise<Boot>;
  serialLog: string;
}

let bootCount = 0;

/** A machine with its own overlay on `disk`; each powerOn is a fresh QEMU process (a cold boot). */
export async function machine(
  disk: string,
  firmware: Firmware,
  cache: "writeback" | "unsafe" = "writeback",
): Promise<Machine> {
  const dir = await mkdtemp(join(tmpdir(), `keel-vm-${firmware}-`));
  await mkdir(dir, { recursive: true });
  const overlay = join(dir, "disk.qcow2");
  await makeOverlay(disk, overlay);
  const serialLog = join(dir, "serial.log");
  return {
    serialLog,
    powerOn: () => boot({ disk: overlay, firmware, workDir: dir, serialLog, cache }),
  };
}

/** Waits for `re` on the serial console and prints how long the boot took to get there. */
export async function reach(b: Boot, re: RegExp, what: string): Promise<string> {
  const line = await b.waitFor(re, BOOT_TIMEOUT_MS);
  bootCount += 1;
  console.log(`boot ${bootCount}: ${what} after ${((Date.now() - b.startedAt) / 1000).toFixed(1)} s`);
  return line;
}
