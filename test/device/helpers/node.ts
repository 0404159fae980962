/**
 * A simulated node for device tests: two file-backed slots, a real GRUB environment block driven by the
 * real BootControl and simulated firmware (device/boot/), a kernel command line file, the shipped trust
 * root, and a config parsed by the agent's own schema.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { Agent, type AgentOptions } from "../../../device/agent.ts";
import { createBootControl, createSimulatedFirmware } from "../../../device/boot/factory.ts";
import { GrubEnvFile } from "../../../device/boot/grubenv.ts";
import type { BootControl, SimulatedFirmware, Slot } from "../../../device/boot/types.ts";
import { type AgentClock, systemClock } from "../../../device/clock.ts";
import { type AgentConfig, type AgentConfigInput, parseAgentConfig } from "../../../device/config.ts";
import { createLogger, type Logger } from "../../../device/logger.ts";
import type { Signers } from "./release.ts";

export interface TestNode {
  dir: string;
  config: AgentConfig;
  boot: BootControl;
  firmware: SimulatedFirmware;
  /** Lines the agents of this node logged (JSON). */
  logs: string[];
  logger: Logger;
  envBytes(): Promise<Buffer>;
  slotBytes(slot: Slot): Promise<Buffer>;
  setBooted(slot: Slot): Promise<void>;
  /** The firmware picks a slot (mutating the env as the loader does); the command line follows. */
  powerOn(): Promise<Slot | "rescue" | "halt">;
  agent(options?: Partial<AgentOptions>): Agent;
}

/** Real time, but every wait is recorded and returns at once: backoff costs no wall-clock time. */
export function recordingClock(): AgentClock & { waits: number[] } {
  const waits: number[] = [];
  return {
    waits,
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise((resolve, reject) => {
        waits.push(ms);
        if (signal?.aborted) reject(signal.reason);
        else setImmediate(resolve);
      }),
  };
}

/**
 * Where makeNode puts a node's files, relative to its dir: the part of the agent config that every test
 * node shares, also for tests that write an agent.json for the `keel-agent` binary.
 */
export const NODE_LAYOUT = {
  stateDir: "state",
  trustRoot: "root.json",
  slots: { A: "slot-a.img", B: "slot-b.img" },
  cmdline: "cmdline",
  bootloader: { type: "grub", envFile: "grubenv" },
} as const;

export interface NodeOptions {
  dir: string;
  signers: Signers;
  slotSize?: number;
  thingName?: string;
  hardware?: string;
  factory?: { version: string; releaseCounter: number };
  /** Raw config overrides (merged over the defaults below). */
  config?: Partial<AgentConfigInput>;
}

export async function makeNode(o: NodeOptions): Promise<TestNode> {
  const dir = o.dir;
  await mkdir(join(dir, "state"), { recursive: true });
  const slotSize = o.slotSize ?? 1024 * 1024;
  await writeFile(join(dir, "slot-a.img"), Buffer.alloc(slotSize, 0xaa));
  await writeFile(join(dir, "slot-b.img"), Buffer.alloc(slotSize, 0xbb));
  await writeFile(join(dir, "root.json"), JSON.stringify(o.signers.root));
  // Factory state: A installed and committed, B empty and not bootable; running A.
  const envFile = join(dir, "grubenv");
  await new GrubEnvFile(envFile).update([
    ["ORDER", "A B"],
    ["A_OK", "1"],
    ["A_TRY", "0"],
    ["B_OK", "0"],
    ["B_TRY", "0"],
  ]);
  await writeFile(join(dir, "cmdline"), "BOOT_IMAGE=/vmlinuz ro keel.slot=A quiet\n");
  const config = parseAgentConfig(
    {
      thingName: o.thingName ?? "node-1",
      hardware: o.hardware ?? "rpi4",
      ...NODE_LAYOUT,
      health: [{ type: "command", command: "true", retries: 0, intervalSeconds: 0 }],
      factory: o.factory ?? { version: "1.0.0", releaseCounter: 1 },
      download: { initialBackoffMs: 1, maxBackoffMs: 4, checkpointBytes: 65536 },
      reportBackoff: { initialMs: 10, maxMs: 200 },
      ...o.config,
    },
    dir,
  );
  const boot = createBootControl(config.bootloader);
  const firmware = createSimulatedFirmware(config.bootloader);
  const logs: string[] = [];
  // KEEL_TEST_LOGS=1 shows every agent's log lines while a test runs.
  const echo = process.env.KEEL_TEST_LOGS === "1";
  const logger = createLogger({
    write: (l) => {
      logs.push(l);
      if (echo) process.stderr.write(`${l}\n`);
    },
    level: "debug",
  });
  const node: TestNode = {
    dir,
    config,
    boot,
    firmware,
    logs,
    logger,
    envBytes: () => readFile(envFile),
    slotBytes: (s) => readFile(config.slots[s]),
    setBooted: (s) => writeFile(config.cmdline, `BOOT_IMAGE=/vmlinuz ro keel.slot=${s} quiet\n`),
    async powerOn() {
      const r = await firmware.boot();
      if (r === "A" || r === "B") await node.setBooted(r);
      return r;
    },
    agent: (options = {}) =>
      new Agent({ config, boot, clock: systemClock(), logger, reboot: async () => {}, ...options }),
  };
  return node;
}

/** After a rollback: slot A is good again and B is marked never to be booted. */
export async function expectBackOnA(node: TestNode): Promise<void> {
  const boot = await node.boot.readState();
  expect(boot.slots.A.good).toBe(true);
  expect(boot.slots.B.bootable).toBe(false);
}

export async function waitFor(cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
