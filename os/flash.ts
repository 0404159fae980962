/**
 * `keel os flash`: writes a KeelOS disk image to a whole disk, after the checks that keep it from
 * destroying the wrong one (docs/os-image.md#flash-it-to-a-disk). Everything is checked before the
 * first byte is written: the image is a GPT disk (protective MBR, "EFI PART" header), the target is a
 * whole block device (or a regular file, for images and tests), neither it nor any of its partitions is
 * mounted, it is at least as large as the image, and the operator confirmed. Then every byte of the
 * image is written, the target is flushed, read back and compared by sha256, and the backup GPT is moved
 * to the end of a larger target (`sgdisk -e`).
 */
import { createHash } from "node:crypto";
import { open, readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { FlashRefusedError, OsInputError } from "./errors.ts";
import { run } from "./exec.ts";

const CHUNK = 4 * 1024 * 1024;
const SECTOR = 512;

export interface FlashOptions {
  disk: string;
  device: string;
  /** The operator confirmed that everything on `device` may be destroyed (`--yes`). */
  yes: boolean;
  /** The mount table to check against. @default /proc/self/mountinfo */
  mountinfo?: string;
  progress?: (done: number, total: number) => void;
}

export interface FlashResult {
  bytes: number;
  sha256: string;
  deviceBytes: number;
}

/** The image must be a GPT disk: a protective MBR (0x55AA, type 0xEE) and the GPT header at LBA 1. */
async function checkImage(disk: string): Promise<number> {
  let size: number;
  const head = Buffer.alloc(2 * SECTOR);
  try {
    const st = await stat(disk);
    if (!st.isFile()) throw new OsInputError(`${disk} is not a file`);
    size = st.size;
    const fh = await open(disk, "r");
    try {
      await fh.read(head, 0, head.length, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof OsInputError) throw err;
    throw new OsInputError(`the disk image ${disk} cannot be read`, { cause: err });
  }
  const mbrOk = head[510] === 0x55 && head[511] === 0xaa && head[450] === 0xee;
  const gptOk = head.subarray(SECTOR, SECTOR + 8).toString("latin1") === "EFI PART";
  if (!mbrOk || !gptOk || size % SECTOR !== 0) {
    throw new OsInputError(
      `${disk} is not a GPT disk image (build one with \`keel os build\`: out/disk.img)`,
    );
  }
  return size;
}

/** Unescapes the octal escapes (\040 for a space) of /proc/self/mountinfo fields. */
const unescapeField = (field: string) =>
  field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));

/**
 * The mount points whose source is `device` or one of its partitions (/dev/sdb → /dev/sdb1,
 * /dev/nvme0n1 → /dev/nvme0n1p2, /dev/mmcblk0 → /dev/mmcblk0p1), from mountinfo's text.
 */
export function mountsOf(device: string, mountinfo: string): string[] {
  const partition = new RegExp(`^${device.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}p?[0-9]+$`);
  const found: string[] = [];
  for (const line of mountinfo.split("\n")) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional…] - <fstype> <source> <super options>"
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    const point = fields[4];
    const source = fields[dash + 2];
    if (dash < 0 || point === undefined || source === undefined) continue;
    const src = unescapeField(source);
    if (src === device || partition.test(src)) found.push(unescapeField(point));
  }
  return found;
}

/** The target's size in bytes: a whole block device (not a partition) or an existing regular file. */
async function targetSize(device: string): Promise<number> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(device);
  } catch (err) {
    throw new FlashRefusedError(`${device} does not exist`, { cause: err });
  }
  if (st.isFile()) return st.size;
  if (!st.isBlockDevice()) {
    throw new FlashRefusedError(`${device} is neither a block device nor a regular file`);
  }
  const name = basename(device);
  // A partition has a `partition` file in sysfs; flashing one would leave a disk inside a partition.
  const isPartition = await stat(`/sys/class/block/${name}/partition`).then(
    () => true,
    () => false,
  );
  if (isPartition) throw new FlashRefusedError(`${device} is a partition; give the whole disk`);
  const out = await run("blockdev", ["--getsize64", device]);
  return Number(out.toString("utf8").trim());
}

/** Checks everything (nothing is written); resolves with the image and target sizes. */
export async function checkFlash(o: FlashOptions): Promise<{ imageBytes: number; deviceBytes: number }> {
  const imageBytes = await checkImage(o.disk);
  // The mount table first, before the target is even opened: the one mistake that cannot be undone.
  const mounted = mountsOf(o.device, await readFile(o.mountinfo ?? "/proc/self/mountinfo", "utf8"));
  if (mounted.length > 0) {
    throw new FlashRefusedError(
      `${o.device} is mounted (${mounted.join(", ")}); unmount it first — is it the disk this machine runs from?`,
    );
  }
  const deviceBytes = await targetSize(o.device);
  if (deviceBytes < imageBytes) {
    throw new FlashRefusedError(
      `${o.device} holds ${deviceBytes} bytes, less than the image's ${imageBytes}: it cannot take this disk`,
    );
  }
  if (!o.yes) {
    throw new FlashRefusedError(
      `this destroys everything on ${o.device} (${deviceBytes} bytes); run again with --yes to write ${o.disk}`,
    );
  }
  return { imageBytes, deviceBytes };
}

export async function flashDisk(o: FlashOptions): Promise<FlashResult> {
  const { imageBytes, deviceBytes } = await checkFlash(o);
  const src = await open(o.disk, "r");
  const dst = await open(o.device, "r+");
  const written = createHash("sha256");
  const buf = Buffer.alloc(CHUNK);
  try {
    for (let at = 0; at < imageBytes; ) {
      const { bytesRead } = await src.read(buf, 0, Math.min(CHUNK, imageBytes - at), at);
      if (bytesRead === 0)
        throw new OsInputError(`${o.disk} ended at ${at} of ${imageBytes} bytes while flashing`);
      const chunk = buf.subarray(0, bytesRead);
      written.update(chunk);
      await dst.write(chunk, 0, bytesRead, at);
      at += bytesRead;
      o.progress?.(at, imageBytes);
    }
    await dst.sync();
    // Read back what the target now holds: a failing stick or a wrong device shows here, not at first boot.
    const readBack = createHash("sha256");
    for (let at = 0; at < imageBytes; ) {
      const { bytesRead } = await dst.read(buf, 0, Math.min(CHUNK, imageBytes - at), at);
      if (bytesRead === 0) break;
      readBack.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    const sha256 = written.digest("hex");
    const back = readBack.digest("hex");
    if (back !== sha256) {
      throw new FlashRefusedError(
        `${o.device} reads back sha256 ${back}, not the image's ${sha256}: do not boot it`,
      );
    }
    await dst.close();
    // On a larger disk the image's backup GPT sits mid-disk; move it to the end as firmware expects.
    if (deviceBytes > imageBytes) await run("sgdisk", ["-e", o.device]);
    return { bytes: imageBytes, sha256, deviceBytes };
  } finally {
    await src.close();
    await dst.close().catch(() => {});
  }
}
