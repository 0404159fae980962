/**
 * The bootable KeelOS disk, built without loop devices or mounts: partition images made in files
 * (mkfs.vfat + mtools for the ESP, mkfs.ext4 -d for persistence), a GPT written by sgdisk, the images
 * placed with dd, and GRUB's BIOS boot code patched in by hand (os/grub.ts). The partition numbers are
 * the ones the shipped grub.cfg expects: 1 ESP, 2 slot A, 3 slot B, 4 rescue; then 5 persistence and
 * 6 bios_grub (first on the disk, numbered last).
 */
import { mkdir, open, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OsInputError } from "./errors.ts";
import { run } from "./exec.ts";
import { biosBootCode, buildGrub, wrapperConfig } from "./grub.ts";

const MiB = 1024 * 1024;
const SECTOR = 512;

export interface DiskLayoutInput {
  /** Size of each root slot (A, B and rescue), MiB. */
  slotMiB: number;
  /** Whole disk, MiB; default: the smallest that fits with a 256 MiB persistence partition. */
  diskMiB?: number | undefined;
  imageBytes: number;
}

export interface Part {
  num: number;
  label: string;
  type: string;
  startMiB: number;
  sizeMiB: number;
}

export const ESP_MiB = 32;
export const MIN_DATA_MiB = 64;
export const DEFAULT_DATA_MiB = 256;

/** The partition table, checked before anything is written. */
export function diskLayout(inp: DiskLayoutInput): { diskMiB: number; parts: Part[] } {
  if (!Number.isInteger(inp.slotMiB) || inp.slotMiB < 16) {
    throw new OsInputError(`slot size must be a whole number of MiB, at least 16 (got ${inp.slotMiB})`);
  }
  const imageMiB = Math.ceil(inp.imageBytes / MiB);
  if (imageMiB > inp.slotMiB) {
    throw new OsInputError(
      `the root image (${imageMiB} MiB) does not fit a ${inp.slotMiB} MiB slot; raise --slot-size`,
    );
  }
  // 1 MiB for the GPT, 1 MiB bios_grub, ESP, three slots, persistence, 1 MiB for the backup GPT.
  const fixed = 1 + 1 + ESP_MiB + 3 * inp.slotMiB + 1;
  const diskMiB = inp.diskMiB ?? fixed + DEFAULT_DATA_MiB;
  if (!Number.isInteger(diskMiB) || diskMiB < fixed + MIN_DATA_MiB) {
    throw new OsInputError(
      `a ${diskMiB} MiB disk is too small for two ${inp.slotMiB} MiB slots, a rescue slot, the ESP and persistence: it needs at least ${fixed + MIN_DATA_MiB} MiB`,
    );
  }
  const parts: Part[] = [];
  let at = 1;
  const add = (num: number, label: string, type: string, sizeMiB: number) => {
    parts.push({ num, label, type, startMiB: at, sizeMiB });
    at += sizeMiB;
  };
  add(6, "bios_grub", "EF02", 1);
  add(1, "keel-esp", "EF00", ESP_MiB);
  add(2, "keel-a", "8300", inp.slotMiB);
  add(3, "keel-b", "8300", inp.slotMiB);
  add(4, "keel-rescue", "8300", inp.slotMiB);
  add(5, "keel-data", "8300", diskMiB - at - 1);
  return { diskMiB, parts };
}

function part(parts: Part[], label: string): Part {
  const p = parts.find((x) => x.label === label);
  if (!p) throw new Error(`layout has no ${label}`);
  return p;
}

export interface DiskInput extends DiskLayoutInput {
  /** The factory release SquashFS: written into slot A and the rescue slot. */
  image: string;
  /** The shipped device/boot/grub.cfg, copied unchanged as EFI/keel/keel.cfg. */
  grubCfg: string;
  /** Files for the persistence partition (config/agent.json, certificates…), copied as they are. */
  dataDir: string;
  out: string;
  work: string;
}

async function place(disk: string, img: string, startMiB: number): Promise<void> {
  await run("dd", [
    `if=${img}`,
    `of=${disk}`,
    "bs=1M",
    `seek=${startMiB}`,
    "conv=notrunc,sparse",
    "status=none",
  ]);
}

/** Fixed ids so the same inputs give the same disk. */
const DISK_GUID = "4b45454c-0000-4000-8000-000000000000";

export async function buildDisk(inp: DiskInput): Promise<{ diskMiB: number; parts: Part[] }> {
  const layout = diskLayout(inp);
  await mkdir(inp.work, { recursive: true });
  const env = { MTOOLS_SKIP_CHECK: "1", SOURCE_DATE_EPOCH: "0", E2FSPROGS_FAKE_TIME: "1" };

  // ESP: both GRUB images' configuration and the environment block, slot A committed.
  const grub = await buildGrub(inp.work);
  const esp = join(inp.work, "esp.img");
  await rm(esp, { force: true });
  await writeFile(esp, "");
  await truncate(esp, ESP_MiB * MiB);
  await run("mkfs.vfat", ["-F", "16", "-n", "KEELESP", "-i", "4b45454c", esp]);
  const efi = join(inp.work, "bootx64.efi");
  const wrapper = join(inp.work, "grub.cfg");
  await writeFile(wrapper, wrapperConfig());
  const grubenv = join(inp.work, "grubenv");
  await rm(grubenv, { force: true });
  await run("grub-editenv", [grubenv, "create"]);
  await run("grub-editenv", [grubenv, "set", "A_OK=1", "A_TRY=0", "B_OK=0", "B_TRY=0", "ORDER=A B"]);
  await run("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT", "::/EFI/keel"], { env });
  for (const [src, dst] of [
    [efi, "::/EFI/BOOT/BOOTX64.EFI"],
    [wrapper, "::/EFI/keel/grub.cfg"],
    [inp.grubCfg, "::/EFI/keel/keel.cfg"],
    [grubenv, "::/EFI/keel/grubenv"],
  ] as const) {
    await run("mcopy", ["-i", esp, src, dst], { env });
  }

  // Persistence: ext4 filled from a directory.
  const data = part(layout.parts, "keel-data");
  const dataImg = join(inp.work, "data.img");
  await rm(dataImg, { force: true });
  await run(
    "mkfs.ext4",
    [
      "-q",
      "-L",
      "keel-data",
      "-U",
      "4b45454c-0000-4000-8000-00000000da7a",
      "-E",
      "root_owner=0:0",
      "-d",
      inp.dataDir,
      dataImg,
      `${data.sizeMiB}M`,
    ],
    { env },
  );

  // The disk: GPT, then each image at its partition, then the BIOS boot code.
  const tmp = `${inp.out}.tmp-${process.pid}`;
  await rm(tmp, { force: true });
  await writeFile(tmp, "");
  await truncate(tmp, layout.diskMiB * MiB);
  try {
    const args = ["-o", "-U", DISK_GUID];
    for (const p of layout.parts) {
      const first = p.startMiB * (MiB / SECTOR);
      const last = (p.startMiB + p.sizeMiB) * (MiB / SECTOR) - 1;
      args.push("-n", `${p.num}:${first}:${last}`, "-t", `${p.num}:${p.type}`, "-c", `${p.num}:${p.label}`);
      args.push("-u", `${p.num}:4b45454c-0000-4000-8000-${String(p.num).padStart(12, "0")}`);
    }
    await run("sgdisk", [...args, tmp]);
    await place(tmp, esp, part(layout.parts, "keel-esp").startMiB);
    await place(tmp, inp.image, part(layout.parts, "keel-a").startMiB);
    await place(tmp, inp.image, part(layout.parts, "keel-rescue").startMiB);
    await place(tmp, dataImg, data.startMiB);
    const biosPart = part(layout.parts, "bios_grub");
    const coreLba = biosPart.startMiB * (MiB / SECTOR);
    const { mbrCode, core } = biosBootCode(grub, coreLba);
    if (core.length > biosPart.sizeMiB * MiB)
      throw new OsInputError(`GRUB core.img (${core.length} bytes) does not fit bios_grub`);
    const fh = await open(tmp, "r+");
    try {
      await fh.write(mbrCode, 0, mbrCode.length, 0);
      await fh.write(core, 0, core.length, coreLba * SECTOR);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, inp.out);
  } finally {
    await rm(tmp, { force: true });
  }
  await stat(inp.out);
  return layout;
}
