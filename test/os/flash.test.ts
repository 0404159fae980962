/**
 * `keel os flash` on regular files as targets: a real GPT image (sgdisk) is written byte for byte and
 * read back, the backup GPT is moved to the end of a larger target; and every refusal (mounted, too small,
 * not a disk, not a GPT image, not confirmed) is a FlashRefusedError or OsInputError that leaves the
 * target untouched.
 */
import { createHash } from "node:crypto";
import { mkdtemp, open, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FlashRefusedError, OsInputError } from "../../os/errors.ts";
import { run } from "../../os/exec.ts";
import { checkFlash, flashDisk, mountsOf } from "../../os/flash.ts";

const MiB = 1024 * 1024;
let tmp: string;
let disk: string;
let target: string;
let noMounts: string;

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "keel-os-flash-"));
  disk = join(tmp, "disk.img");
  await writeFile(disk, "");
  await truncate(disk, 8 * MiB);
  await run("sgdisk", ["-n", "1:2048:+2M", "-c", "1:keel-a", "-n", "2:0:0", "-c", "2:keel-data", disk]);
  // Content in the partitions, so a write that skips or misplaces a chunk shows in the comparison.
  const fh = await open(disk, "r+");
  await fh.write(Buffer.alloc(MiB, 0xa5), 0, MiB, 2 * MiB);
  await fh.write(Buffer.from("the end of the data partition"), 0, 29, 7 * MiB);
  await fh.close();
  noMounts = join(tmp, "mountinfo");
  await writeFile(noMounts, "21 26 0:20 / /proc rw,relatime - proc proc rw\n");
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  target = join(tmp, `target-${Math.random().toString(36).slice(2)}`);
  await writeFile(target, Buffer.alloc(16 * MiB, 0x11));
});

async function refused(
  attempt: () => Promise<unknown>,
  kind: typeof FlashRefusedError | typeof OsInputError,
  re: RegExp,
) {
  const before = sha(await readFile(target));
  const err = await attempt().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(kind);
  expect((err as Error).message).toMatch(re);
  expect(sha(await readFile(target))).toBe(before);
}

describe("keel os flash", () => {
  it("writes the image byte for byte, reads it back, and moves the backup GPT to the end of a larger target", async () => {
    const image = await readFile(disk);
    const r = await flashDisk({ disk, device: target, yes: true, mountinfo: noMounts });
    expect(r).toMatchObject({ bytes: 8 * MiB, sha256: sha(image), deviceBytes: 16 * MiB });
    const written = await readFile(target);
    // The image, except the GPT headers that sgdisk -e rewrote (LBA 0–33) to point at the moved backup.
    const gpt = 34 * 512;
    expect(sha(written.subarray(gpt, 2 * MiB))).toBe(sha(image.subarray(gpt, 2 * MiB)));
    expect(written.subarray(2 * MiB, 3 * MiB).equals(image.subarray(2 * MiB, 3 * MiB))).toBe(true);
    expect(written.subarray(7 * MiB, 7 * MiB + 29).toString()).toBe("the end of the data partition");
    expect(written.subarray(written.length - 512).toString("latin1", 0, 8)).toBe("EFI PART");
    const verify = (await run("sgdisk", ["-v", target])).toString();
    expect(verify).toMatch(/No problems found/);
    const parts = (await run("sgdisk", ["-p", target])).toString();
    expect(parts).toMatch(/keel-a/);
    expect(parts).toMatch(/keel-data/);
  });

  it("refuses a target smaller than the image", async () => {
    await truncate(target, 4 * MiB);
    await refused(
      () => flashDisk({ disk, device: target, yes: true, mountinfo: noMounts }),
      FlashRefusedError,
      /less than the image's 8388608/,
    );
  });

  it("refuses a target that is mounted, or whose partition is", async () => {
    const mounted = join(tmp, "mountinfo-mounted");
    await writeFile(mounted, `36 26 7:0 / /mnt/usb rw,relatime - vfat ${target}1 rw\n`);
    await refused(
      () => flashDisk({ disk, device: target, yes: true, mountinfo: mounted }),
      FlashRefusedError,
      /is mounted \(\/mnt\/usb\)/,
    );
  });

  it("refuses without --yes, after every other check passed", async () => {
    await refused(
      () => flashDisk({ disk, device: target, yes: false, mountinfo: noMounts }),
      FlashRefusedError,
      /run again with --yes/,
    );
  });

  it("refuses a missing target, a directory and a character device", async () => {
    for (const [device, re] of [
      [join(tmp, "missing"), /does not exist/],
      [tmp, /neither a block device nor a regular file/],
      ["/dev/null", /neither a block device nor a regular file/],
    ] as const) {
      await refused(() => flashDisk({ disk, device, yes: true, mountinfo: noMounts }), FlashRefusedError, re);
    }
  });

  it("refuses an image that is not a GPT disk", async () => {
    const notDisk = join(tmp, "image.squashfs");
    await writeFile(notDisk, Buffer.alloc(MiB, 0x68));
    await refused(
      () => flashDisk({ disk: notDisk, device: target, yes: true, mountinfo: noMounts }),
      OsInputError,
      /is not a GPT disk image/,
    );
  });

  it("reads this machine's real mount table: the disk / is on counts as mounted", async () => {
    const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
    const root = mountinfo
      .split("\n")
      .map((l) => l.split(" "))
      .find((f) => f[4] === "/");
    const source = root?.[root.indexOf("-") + 2];
    expect(source).toBeDefined();
    expect(mountsOf(source as string, mountinfo)).toContain("/");
    // Only the check, never a write: checkFlash refuses before anything is opened for writing.
    if ((source as string).startsWith("/dev/")) {
      await expect(checkFlash({ disk, device: source as string, yes: true })).rejects.toThrow(
        FlashRefusedError,
      );
    }
  });

  it("matches partitions by the kernel's naming: sdb1, nvme0n1p2, mmcblk0p1, and not sdbz for sdb", () => {
    const info = [
      "1 0 8:17 / /a rw - ext4 /dev/sdb1 rw",
      "2 0 259:2 / /b rw - ext4 /dev/nvme0n1p2 rw",
      "3 0 179:1 / /c\\040d rw - vfat /dev/mmcblk0p1 rw",
      "4 0 8:33 / /e rw - ext4 /dev/sdbz rw",
    ].join("\n");
    expect(mountsOf("/dev/sdb", info)).toEqual(["/a"]);
    expect(mountsOf("/dev/nvme0n1", info)).toEqual(["/b"]);
    expect(mountsOf("/dev/mmcblk0", info)).toEqual(["/c d"]);
    expect(mountsOf("/dev/sdc", info)).toEqual([]);
  });
});
