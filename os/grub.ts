/**
 * GRUB for both firmware kinds, built with grub-mkimage (no grub-install: it needs the disk as a block
 * device). Both images carry every module they need and the prefix `(hd0,gpt1)/EFI/keel`, so they read
 * the same wrapper grub.cfg on the ESP, which sets the serial console and kernel arguments and then
 * `source`s the shipped device/boot/grub.cfg unchanged (docs/bootloaders.md).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.ts";

export const GRUB_PREFIX = "(hd0,gpt1)/EFI/keel";
const COMMON_MODULES = [
  "normal",
  "configfile",
  "linux",
  "part_gpt",
  "fat",
  "squash4",
  "ext2",
  "loadenv",
  "test",
  "echo",
  "serial",
  "terminal",
  "gzio",
  "halt",
  "reboot",
  "sleep",
];

/**
 * Kernel arguments for every slot: serial console; a panic resets the node so GRUB can fall back.
 * `no_timer_check`: under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic
 * (observed). `systemd.watchdog_sec=60`: systemd pings the watchdog from PID 1's event loop, which a
 * starved TCG guest can stall for longer than the image's 15 s during early boot (observed resets).
 */
export const KERNEL_CMDLINE =
  "ro console=ttyS0,115200 panic=5 loglevel=4 systemd.show_status=1 no_timer_check systemd.watchdog_sec=60";

export function wrapperConfig(cmdline: string = KERNEL_CMDLINE): string {
  return `# KeelOS boot: serial console and kernel arguments, then the A/B selection shipped as keel.cfg.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set keel_cmdline="${cmdline}"
set keel_root_rescue="(hd0,gpt4)"
source "$prefix/keel.cfg"
# keel.cfg waits 3 s for a human; a node boots at once (the menu still shows on the serial console).
set timeout=0
`;
}

export interface GrubImages {
  /** EFI/BOOT/BOOTX64.EFI */
  efi: Buffer;
  /** boot.img, to patch into the MBR */
  bootImg: Buffer;
  /** core.img, for the bios_grub partition */
  coreImg: Buffer;
}

export async function buildGrub(work: string): Promise<GrubImages> {
  const efiOut = join(work, "bootx64.efi");
  const coreOut = join(work, "core.img");
  await run("grub-mkimage", [
    "-O",
    "x86_64-efi",
    "-p",
    GRUB_PREFIX,
    "-o",
    efiOut,
    ...COMMON_MODULES,
    "efi_gop",
  ]);
  await run("grub-mkimage", [
    "-O",
    "i386-pc",
    "-p",
    GRUB_PREFIX,
    "-o",
    coreOut,
    "biosdisk",
    ...COMMON_MODULES,
  ]);
  return {
    efi: await readFile(efiOut),
    bootImg: await readFile("/usr/lib/grub/i386-pc/boot.img"),
    coreImg: await readFile(coreOut),
  };
}

const SECTOR = 512;
/** boot.img: where the 64-bit LBA of core.img's first sector is stored (GRUB_BOOT_MACHINE_KERNEL_SECTOR). */
const BOOT_KERNEL_SECTOR = 0x5c;
/** core.img's first sector (diskboot.img) ends with a blocklist: start LBA (8), sector count (2), segment (2). */
const DISKBOOT_BLOCKLIST = SECTOR - 12;

/**
 * What grub-bios-setup would write, done by hand: boot.img's code (not the partition table) into the
 * MBR pointing at core.img's LBA, and core.img's blocklist pointing at the sectors after its first.
 */
export function biosBootCode(g: GrubImages, coreLba: number): { mbrCode: Buffer; core: Buffer } {
  const mbrCode = Buffer.from(g.bootImg.subarray(0, 440));
  mbrCode.writeBigUInt64LE(BigInt(coreLba), BOOT_KERNEL_SECTOR);
  const core = Buffer.from(g.coreImg);
  core.writeBigUInt64LE(BigInt(coreLba + 1), DISKBOOT_BLOCKLIST);
  core.writeUInt16LE(Math.ceil(core.length / SECTOR) - 1, DISKBOOT_BLOCKLIST + 8);
  return { mbrCode, core };
}
