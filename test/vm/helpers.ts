/**
 * Shared set-up for the VM tests and `npm run torture:vm`: KeelOS builds (cached by input hash under
 * .keel/os-cache, so only the first run on a machine pays for mmdebstrap and mksquashfs), a qcow2 overlay
 * per machine, a boot helper that prints each boot's time, one local cloud that every VM node of a run
 * joins, and the guest's own view of its slots. One QEMU at a time: every VM test lives in one file.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildImage } from "../../cli/commands/release.ts";
import { RolloutSchema, RolloutViewSchema } from "../../functions/rollout-api/contract.ts";
import { buildOs, buildRootImage, type OsBuildResult, type RootImage } from "../../os/build.ts";
import { type LabNode, QEMU_HARDWARE, writeLabNodeConfig } from "../../os/lab-node.ts";
import { type Boot, boot, type Firmware, makeOverlay } from "../../os/qemu.ts";
import type { Fault } from "../../os/rootfs.ts";
import { buildAgent } from "../../scripts/build-agent.ts";
import { key, makeRoot, sign } from "../core/fixtures.ts";
import { type E2E, executionDetails, startE2E, until } from "../e2e/helpers.ts";

export const CACHE = resolve(import.meta.dirname, "../../.keel/os-cache");
/** Allowance per boot on a loaded 2-core machine (TCG): generous, never asserted as a time. */
export const BOOT_TIMEOUT_MS = 300_000;

export const releaseKey = key(41);

/** The agent bundle and the trust root the test images carry, made once per directory (esbuild runs once). */
const imageInputs = new Map<string, Promise<{ agent: string; trustRoot: string }>>();
function testImageInputs(tmp: string): Promise<{ agent: string; trustRoot: string }> {
  let made = imageInputs.get(tmp);
  if (!made) {
    made = (async () => {
      const agent = join(tmp, "keel-agent.mjs");
      await buildAgent(agent);
      const trustRoot = join(tmp, "root.json");
      await writeFile(trustRoot, JSON.stringify(sign(makeRoot({ rootKeys: [releaseKey] }), [releaseKey])));
      return { agent, trustRoot };
    })();
    imageInputs.set(tmp, made);
  }
  return made;
}

const progress = (m: string) => console.log(`keel os build: ${m}`);

export async function buildTestOs(
  tmp: string,
  opts: { name?: string; version?: string; fault?: Fault; agentConfig?: string; configFiles?: string[] } = {},
): Promise<OsBuildResult> {
  const { agent, trustRoot } = await testImageInputs(tmp);
  const out = join(tmp, opts.name ?? `os-${opts.version ?? "1.0.0"}-${opts.fault ?? "none"}`);
  return buildOs({
    out,
    trustRoot,
    version: opts.version ?? "1.0.0",
    fault: opts.fault ?? "none",
    agent,
    cacheDir: CACHE,
    agentConfig: opts.agentConfig,
    configFiles: opts.configFiles ?? [],
    pack: buildImage,
    progress,
  });
}

/** A release's SquashFS alone (no disk: a release is only ever written to a slot), through the cache. */
async function buildTestRelease(tmp: string, version: string, fault: Fault): Promise<RootImage> {
  const { agent, trustRoot } = await testImageInputs(tmp);
  return buildRootImage({ trustRoot, version, fault, agent, cacheDir: CACHE, pack: buildImage, progress });
}

export interface Machine {
  /** Boots (power on) and returns the running boot; the previous one must have exited. */
  powerOn(): Promise<Boot>;
  serialLog: string;
  /** Removes the overlay (what the guest wrote) and the logs; the machine must be off. */
  dispose(): Promise<void>;
}

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
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Waits for `re` on the serial console and prints how long the boot took to get there. */
export async function reach(b: Boot, re: RegExp, what: string): Promise<string> {
  const line = await b.waitFor(re, BOOT_TIMEOUT_MS);
  console.log(`vm: ${what}, ${((Date.now() - b.startedAt) / 1000).toFixed(1)} s after power-on`);
  return line;
}

/** What a VM node needs to join a local cloud: its thing, credentials, the cloud's CA and trust root. */
export type CloudNode = Omit<LabNode, "factory" | "serialShell" | "healthRetries">;

/**
 * A disk for a node of the local cloud: the factory image (cached), with the lab node's files on the
 * persistence partition (os/lab-node.ts: agent.json, the device certificate, the cloud's CA and trust
 * root, the loopback relay), and the serial shell the tests drive.
 */
export async function cloudNodeOs(tmp: string, node: CloudNode): Promise<OsBuildResult> {
  const { agentConfig, configFiles } = await writeLabNodeConfig(join(tmp, `config-${node.thing}`), {
    ...node,
    factory: { version: "1.0.0", releaseCounter: 1 },
    serialShell: true,
    // ~30 s of failed checks before a sick release is rolled back; a healthy stand-in answers in seconds.
    healthRetries: 10,
  });
  return buildTestOs(tmp, { name: `node-${node.thing}`, agentConfig, configFiles });
}

export const VM_HARDWARE = QEMU_HARDWARE;

/** `grub-editenv list` output as the slot variables it holds. */
export function envList(out: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of out.matchAll(/^(A_OK|A_TRY|B_OK|B_TRY|ORDER)=(.*)$/gm))
    vars[m[1] as string] = m[2] as string;
  return vars;
}

/** What `keel-agent status --json` says, the fields the VM tests assert on. */
export interface AgentStatus {
  booted: string;
  state: string;
  slots: Record<"A" | "B", { version: string | null; good: boolean; bootable: boolean }>;
  lastResult: { state: string; version: string | null; reason: string | null } | null;
}

/** The node's own view, through its serial shell: the GRUB environment and the agent's status. */
export async function guestView(b: Boot): Promise<{ env: Record<string, string>; status: AgentStatus }> {
  await b.waitFor(/root@keelos/, BOOT_TIMEOUT_MS);
  const env = envList(await b.shell("grub-editenv /boot/efi/EFI/keel/grubenv list", BOOT_TIMEOUT_MS));
  // One line, so journal lines the console interleaves cannot split the JSON.
  const out = await b.shell(
    "keel-agent status --config /etc/keel/agent.json --json 2>/dev/null | tr -d '\\n'; echo",
    BOOT_TIMEOUT_MS,
  );
  const line = /^\{.*\}$/m.exec(out);
  if (!line) throw new Error(`keel-agent status printed no JSON: ${out.slice(-500)}`);
  return { env, status: JSON.parse(line[0]) as AgentStatus };
}

/** The booted slot and version from the boot marker line (`KEEL-MARK booted VERSION=… cmdline=…`). */
export function bootedFrom(marker: string): { slot: string; version: string } {
  return {
    slot: /keel\.slot=([AB])/.exec(marker)?.[1] ?? "?",
    version: /VERSION=(\S+)/.exec(marker)?.[1] ?? "?",
  };
}

/**
 * One local cloud (the e2e environment) that the VM nodes of a run join, with the operator's steps the
 * scenarios need: releases built (cached), signed and published; nodes registered with a disk of their
 * own; rollouts created through the rollout API; and the job and rollout outcomes, once terminal.
 */
export interface VmCloud {
  e: E2E;
  /** Builds `version` (with `fault`), signs it at `counter` and publishes it. */
  release(version: string, counter: number, fault?: Fault): Promise<void>;
  /** Registers `thing` in `fleet` at 1.0.0 and builds its disk (factory image + its config). */
  node(fleet: string, thing: string): Promise<OsBuildResult>;
  /** One wave, 100 % of `fleet`, every device must succeed. */
  rollout(version: string, fleet: string): Promise<{ rolloutId: string; jobId: string }>;
  /** The job execution's status and details once terminal, or undefined if not (yet). */
  terminalJob(
    jobId: string,
    thing: string,
  ): Promise<{ status: string; details: Record<string, string> } | undefined>;
  /** Waits for the rollout to reach a terminal status and returns it. */
  rolloutEnd(rolloutId: string): Promise<string>;
  stop(): Promise<void>;
}

const TERMINAL_JOB = new Set(["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"]);
const TERMINAL_ROLLOUT = new Set(["SUCCEEDED", "ABORTED"]);

export async function startVmCloud(tmp: string): Promise<VmCloud> {
  const e = await startE2E("simfleet", 1);
  const tooling = e.env.tooling;
  const api = tooling.api;
  return {
    e,
    async release(version, counter, fault = "none") {
      const built = await buildTestRelease(tmp, version, fault);
      const manifest = join(tmp, `release-${version}.json`);
      await tooling.signRelease(built.image, {
        version,
        counter,
        compatible: [VM_HARDWARE],
        key: e.env.paths.releaseKey,
        out: manifest,
      });
      await tooling.publish(built.image, manifest, e.env.paths.rootFile, (l) => console.log(l));
    },
    async node(fleet, thing) {
      const creds = await tooling.registerThing(fleet, thing, "1.0.0");
      return cloudNodeOs(tmp, {
        thing,
        ...creds,
        caFile: e.env.info.caFile,
        rootFile: e.env.paths.rootFile,
        mqtt: e.env.info.mqtt,
        s3: e.env.info.s3,
      });
    },
    async rollout(version, fleet) {
      const created = RolloutSchema.parse(
        await api.post("/rollouts", {
          release: version,
          fleets: [fleet],
          waves: [{ percent: 100, successThresholdPercent: 100 }],
          healthDeadlineSeconds: 600,
        }),
      );
      return { rolloutId: created.id, jobId: created.waves[0]?.jobId ?? "" };
    },
    async terminalJob(jobId, thing) {
      // The rollout paces executions (maximumPerMinute): right after the job is created the thing's
      // execution may not exist yet, which is "not ended", not an error.
      const x = await executionDetails(e.iot, jobId, thing).catch((err: unknown) => {
        if ((err as { name?: string }).name === "ResourceNotFoundException") return undefined;
        throw err;
      });
      return x && TERMINAL_JOB.has(x.status) ? x : undefined;
    },
    rolloutEnd: (rolloutId) =>
      until(
        `rollout ${rolloutId} to end`,
        async () => {
          const r = RolloutViewSchema.parse(await api.get(`/rollouts/${rolloutId}`));
          return TERMINAL_ROLLOUT.has(r.status) ? r.status : undefined;
        },
        BOOT_TIMEOUT_MS,
      ),
    stop: () => e.stop(),
  };
}
