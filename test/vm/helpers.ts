/**
 * Shared set-up for the VM tests: one KeelOS build (cached by input hash under .keel/os-cache, so only
 * the first run on a machine pays for mmdebstrap and mksquashfs), a qcow2 overlay per boot sequence, and
 * a boot helper that prints each boot's time. One QEMU at a time: every VM test lives in one file.
 */
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
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
  opts: { name?: string; version?: string; fault?: Fault; agentConfig?: string; configFiles?: string[] } = {},
): Promise<OsBuildResult> {
  const agent = join(tmp, "keel-agent.mjs");
  await buildAgent(agent);
  const root = join(tmp, "root.json");
  await writeFile(root, JSON.stringify(sign(makeRoot({ rootKeys: [releaseKey] }), [releaseKey])));
  const out = join(tmp, opts.name ?? `os-${opts.version ?? "1.0.0"}-${opts.fault ?? "none"}`);
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

/** What a VM node needs to join a local cloud: its thing, credentials, the cloud's CA and trust root. */
export interface CloudNode {
  thing: string;
  certificatePem: string;
  privateKey: string;
  /** PEM of the CA that signed the broker's certificate. */
  caFile: string;
  /** The cloud's trust root (root.json) the releases are signed under. */
  rootFile: string;
  /** mqtts://127.0.0.1:PORT */
  mqtt: string;
  /** http://127.0.0.1:PORT (presigned URLs point here) */
  s3: string;
}

const portOf = (url: string) => Number(new URL(url.replace(/^mqtts:/, "https:")).port);

/**
 * A disk for a node of the local cloud: the factory image (cached), with agent.json, the device
 * certificate, the cloud's CA and trust root on the persistence partition, the loopback relay for the
 * cloud's ports (the guest reaches the host's 127.0.0.1 as 10.0.2.2) and the serial shell.
 */
export async function cloudNodeOs(tmp: string, node: CloudNode): Promise<OsBuildResult> {
  const dir = join(tmp, `config-${node.thing}`);
  await mkdir(dir, { recursive: true });
  const files: Record<string, string> = {
    "device.pem.crt": node.certificatePem,
    "device.pem.key": node.privateKey,
    "ca.pem": await readFile(node.caFile, "utf8"),
    "root.json": await readFile(node.rootFile, "utf8"),
    "serial-shell": "test images only\n",
    "loopback-forward": JSON.stringify({ host: "10.0.2.2", ports: [portOf(node.mqtt), portOf(node.s3)] }),
  };
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body);
  const config = {
    thingName: node.thing,
    hardware: VM_HARDWARE,
    stateDir: "/var/lib/keel",
    trustRoot: "/etc/keel/root.json",
    slots: { A: "/dev/disk/by-partlabel/keel-a", B: "/dev/disk/by-partlabel/keel-b" },
    bootloader: { type: "grub", envFile: "/boot/efi/EFI/keel/grubenv" },
    mqtt: {
      endpoint: node.mqtt,
      cert: "/etc/keel/device.pem.crt",
      key: "/etc/keel/device.pem.key",
      ca: "/etc/keel/ca.pem",
    },
    health: [{ type: "http", retries: 20, intervalSeconds: 3 }],
    reboot: { command: "systemctl reboot" },
    factory: { version: "1.0.0", releaseCounter: 1 },
  };
  await writeFile(join(dir, "agent.json"), JSON.stringify(config, null, 2));
  return buildTestOs(tmp, {
    name: `node-${node.thing}`,
    agentConfig: join(dir, "agent.json"),
    configFiles: Object.keys(files).map((f) => join(dir, f)),
  });
}

export const VM_HARDWARE = "qemu-x86_64";
