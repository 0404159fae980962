/** Test-time helpers for the bootloader tests: temp dirs, running the real tools, grub-emu, the agent rules. */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { BootControl, SimulatedFirmware, Slot } from "../../../device/boot/types.ts";
import type { UbootEnvCopy } from "../../../device/boot/ubootenv.ts";

export async function tempDir(prefix = "keel-boot-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a tool with stdin closed; kills it after `timeoutMs` (grub-emu waits at a prompt if the cfg fails). */
export function run(cmd: string, args: readonly string[], timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

/** Runs and insists on exit 0, returning stdout. */
export async function runOk(cmd: string, args: readonly string[]): Promise<Buffer> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export const SHIPPED_GRUB_CFG = resolve(import.meta.dirname, "../../../device/boot/grub.cfg");
const GRUB_EMU_MODULES = "/usr/lib/grub/x86_64-emu";

/**
 * The real GRUB as oracle (docs/bootloaders.md#what-the-tests-hold-the-code-to): grubenv in an ext2 image mapped as (hd0), the shipped
 * grub.cfg pointed at it and ended with `echo SELECTED=$default; halt` so nothing boots. Returns the menu
 * index GRUB chose and the grubenv bytes its save_env left on the image.
 */
export async function grubEmuBoot(
  work: string,
  grubenv: Buffer,
): Promise<{ selected: number; grubenv: Buffer }> {
  const root = join(work, "root");
  const cfgDir = join(work, "grub");
  await rm(work, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await mkdir(cfgDir, { recursive: true });
  await writeFile(join(root, "grubenv"), grubenv);
  await symlink(GRUB_EMU_MODULES, join(cfgDir, "x86_64-emu"));
  const shipped = await readFile(SHIPPED_GRUB_CFG, "utf8");
  await writeFile(
    join(cfgDir, "grub.cfg"),
    `set keel_envfile=(hd0)/grubenv\n${shipped}\necho SELECTED=$default\nhalt\n`,
  );
  const img = join(work, "disk.ext2");
  await runOk("mkfs.ext2", ["-q", "-F", "-d", root, img, "1M"]);
  await writeFile(join(work, "device.map"), `(hd0) ${img}\n`);
  const r = await run("grub-emu", ["-m", join(work, "device.map"), "-d", cfgDir], 15_000);
  const m = /SELECTED=(\d+)/.exec(r.stdout.toString("latin1"));
  if (r.code !== 0 || !m) {
    throw new Error(
      `grub-emu failed (exit ${r.code}): ${r.stderr} ${r.stdout.toString("latin1").slice(-400)}`,
    );
  }
  const after = await runOk("debugfs", ["-R", "cat /grubenv", img]);
  return { selected: Number(m[1]), grubenv: after };
}

/** fw_env.config for file-backed copies; libubootenv reads bare numbers as hex, so always write 0x. */
export function fwEnvConfig(copies: readonly UbootEnvCopy[]): string {
  return copies.map((c) => `${c.path} 0x${c.offset.toString(16)} 0x${c.size.toString(16)}\n`).join("");
}

/** fw_printenv output as a record. */
export function parsePrintenv(out: Buffer): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of out.toString("utf8").split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

/**
 * The agent rules of docs/bootloaders.md#agent-rules after a boot into `booted`, as the real agent applies them:
 * health failed → write nothing; fallback seen (trial pending, booted elsewhere) → one write marking the
 * running slot good and the trial bad; otherwise mark the running slot good if the state says it is not.
 * Returns the trial still pending.
 */
export async function agentAfterBoot(
  control: BootControl,
  booted: Slot,
  healthy: boolean,
  trial: Slot | null,
): Promise<Slot | null> {
  if (!healthy) return trial;
  if (trial !== null && booted !== trial) {
    await control.markGoodAndBad(booted, trial);
    return null;
  }
  const state = await control.readState();
  if (!state.slots[booted].good) await control.markGood(booted);
  return null;
}

/** Boots `n` times with the agent rules in between; `health(slot, i)` decides each boot's health. */
export async function bootLoop(
  control: BootControl,
  firmware: SimulatedFirmware,
  trial: Slot | null,
  n: number,
  health: (slot: Slot, i: number) => boolean,
): Promise<Array<Slot | "rescue" | "halt">> {
  const seen: Array<Slot | "rescue" | "halt"> = [];
  let pending = trial;
  for (let i = 0; i < n; i++) {
    const r = await firmware.boot();
    seen.push(r);
    if (r === "A" || r === "B") pending = await agentAfterBoot(control, r, health(r, i), pending);
  }
  return seen;
}
