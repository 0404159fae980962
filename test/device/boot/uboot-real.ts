/**
 * The shipped device/boot/boot.cmd run by real U-Boot (Debian's u-boot-qemu build for qemu_arm64, under
 * qemu-system-aarch64, TCG). One U-Boot session runs a list of boots: each boot optionally loads a fresh
 * environment (the BOOT_* variables; the rest of U-Boot's environment is left alone), then `source`s the
 * script. What the script does at each boot is read from the serial console, and what it saved from a
 * file it writes on a FAT disk.
 *
 * Two words of the script are swapped for this rig, nothing else: `saveenv` becomes an `env export` to
 * the FAT disk (Debian's QEMU 7.2 cannot emulate the CFI buffer writes U-Boot's flash environment uses:
 * "Flash buffer write timeout"), and `reset` an echo (each is the last statement of its branch, so the
 * next boot of the list starts where a reset would). Every test, loop and counter is U-Boot's own hush and `setexpr`.
 */
import { spawn } from "node:child_process";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { run } from "../../../os/exec.ts";

export const UBOOT_BIN = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const BOOT_CMD = resolve(import.meta.dirname, "../../../device/boot/boot.cmd");
const RIG_CMD = resolve(import.meta.dirname, "uboot-rig.cmd");
/** The FAT partition starts at 1 MiB (MBR, one partition). */
const PART_OFFSET = 1024 * 1024;
const PART_SECTORS = 8192;
const FLASH_BYTES = 64 * 1024 * 1024;

export interface UbootBoot {
  /** The slot the script booted, or "reset" when it refilled the counters and reset the board. */
  choice: "A" | "B" | "reset";
  /** The BOOT_* variables the script saved (saveenv) at this boot. */
  saved: Record<string, string>;
}

/** A boot of the list: with `env`, the BOOT_* variables are replaced by these first (a fresh state). */
export interface UbootStep {
  env?: Record<string, string>;
}

const toEnvText = (vars: Record<string, string>): string =>
  Object.entries(vars)
    .map(([k, v]) => `${k}=${v}\n`)
    .join("");

function parseExport(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.replace(/\0+$/, "").split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0 && line.startsWith("BOOT_")) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

/** boot.cmd with its two hardware words swapped (see above); fails loudly if the script changed shape. */
function rigScript(script: string): string {
  const saves = script.match(/^\s*saveenv$/gm)?.length ?? 0;
  const resets = script.match(/^\s*reset$/gm)?.length ?? 0;
  if (saves !== 2 || resets !== 2)
    throw new Error(`boot.cmd: expected 2 saveenv and 2 reset, found ${saves}/${resets}`);
  return script.replace(/^(\s*)saveenv$/gm, "$1run keel_save").replace(/^(\s*)reset$/gm, "$1run keel_reset");
}

async function wrapperScript(steps: number): Promise<string> {
  const list = Array.from({ length: steps }, (_, i) => i).join(" ");
  return (await readFile(RIG_CMD, "utf8")).replaceAll("@STEPS@", list);
}

async function mkScript(dir: string, name: string, body: string): Promise<string> {
  const src = join(dir, `${name}.cmd`);
  const out = join(dir, `${name}.scr`);
  await writeFile(src, body);
  await run("mkimage", ["-A", "arm64", "-T", "script", "-C", "none", "-d", src, out]);
  return out;
}

/** An MBR with one FAT32-LBA partition at PART_OFFSET, then the FAT filesystem placed there. */
async function makeDisk(dir: string, files: string[]): Promise<string> {
  const part = join(dir, "part.img");
  await run("mkfs.vfat", ["-C", part, String(PART_SECTORS / 2)]);
  for (const f of files) await run("mcopy", ["-i", part, f, "::"]);
  const disk = join(dir, "disk.img");
  const mbr = Buffer.alloc(512);
  mbr.writeUInt8(0x0c, 446 + 4); // FAT32 LBA
  mbr.writeUInt32LE(PART_OFFSET / 512, 446 + 8);
  mbr.writeUInt32LE(PART_SECTORS, 446 + 12);
  mbr.writeUInt16LE(0xaa55, 510);
  const fd = await open(disk, "w");
  try {
    await fd.write(mbr, 0, 512, 0);
    await fd.write(await readFile(part), 0, undefined, PART_OFFSET);
  } finally {
    await fd.close();
  }
  return disk;
}

async function runQemu(dir: string, disk: string, steps: number, timeoutMs: number): Promise<string> {
  const flash0 = join(dir, "flash0.img");
  const flash1 = join(dir, "flash1.img");
  const fw = await readFile(UBOOT_BIN);
  await writeFile(flash0, Buffer.concat([fw, Buffer.alloc(FLASH_BYTES - fw.length)]));
  await writeFile(flash1, Buffer.alloc(0));
  const f1 = await open(flash1, "r+");
  await f1.truncate(FLASH_BYTES);
  await f1.close();
  const args = [
    ...["-M", "virt", "-cpu", "cortex-a57", "-m", "256", "-nographic", "-no-reboot", "-accel", "tcg"],
    ...["-drive", `if=pflash,format=raw,index=0,file=${flash0}`],
    ...["-drive", `if=pflash,format=raw,index=1,readonly=on,file=${flash1}`],
    ...["-drive", `if=none,id=d0,format=raw,file=${disk}`, "-device", "virtio-blk-device,drive=d0"],
  ];
  const child = spawn("qemu-system-aarch64", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(
        new Error(`U-Boot did not finish ${steps} boots in ${timeoutMs} ms; console:\n${out.slice(-3000)}`),
      );
    }, timeoutMs);
    const onData = (b: Buffer) => {
      out += b.toString("latin1");
      if (/KEEL-ALL-DONE\r?\n/.test(out)) {
        clearTimeout(timer);
        child.kill("SIGKILL");
        done(out);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (!out.includes("KEEL-ALL-DONE"))
        fail(new Error(`qemu-system-aarch64 exited (${code}) early; console:\n${out.slice(-3000)}`));
    });
  });
}

/** Runs the boots in one U-Boot session and returns what the script did at each. */
export async function runUboot(steps: UbootStep[], timeoutMs = 300_000): Promise<UbootBoot[]> {
  const dir = await mkdtemp(join(tmpdir(), "keel-uboot-"));
  try {
    const files = [
      await mkScript(dir, "boot", await wrapperScript(steps.length)),
      await mkScript(dir, "keel", rigScript(await readFile(BOOT_CMD, "utf8"))),
    ];
    for (const [i, s] of steps.entries()) {
      if (!s.env) continue;
      const f = join(dir, `in${i}.txt`);
      await writeFile(f, toEnvText(s.env));
      files.push(f);
    }
    const disk = await makeDisk(dir, files);
    const console = await runQemu(dir, disk, steps.length, timeoutMs);
    const boots: UbootBoot[] = [];
    for (let i = 0; i < steps.length; i++) {
      const at = (marker: string) => console.search(new RegExp(`${marker}\r?\n`));
      const start = at(`KEEL-STEP ${i}`);
      const end = at(i + 1 < steps.length ? `KEEL-STEP ${i + 1}` : "KEEL-ALL-DONE");
      if (start < 0 || end < 0)
        throw new Error(`boot ${i} not found on the console:\n${console.slice(-3000)}`);
      const text = console.slice(start, end);
      const slot = /keel: slot ([AB]), /.exec(text)?.[1] as "A" | "B" | undefined;
      const choice = slot ?? (text.includes("KEEL-RESET") ? "reset" : undefined);
      if (!choice) throw new Error(`boot ${i}: the script neither booted a slot nor reset:\n${text}`);
      const saved = parseExport(
        (await run("mtype", ["-i", `${disk}@@${PART_OFFSET}`, `::out${i}.txt`])).toString("utf8"),
      );
      boots.push({ choice, saved });
    }
    return boots;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
