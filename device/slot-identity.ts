/**
 * The two slots must be two different places on disk, and the one being written must not be the one
 * running (docs/guarantees.md). Paths are compared after resolving links, and files and block devices by
 * what they are (device and inode, or the block device number), so a symlink, a hard link or a second
 * name of the same partition cannot make an install overwrite the running system.
 */
import { realpath, stat } from "node:fs/promises";
import type { Slot } from "./boot/types.ts";
import { SameSlotError } from "./errors.ts";

type Stats = Awaited<ReturnType<typeof stat>>;

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

async function resolved(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path; // a missing slot is compared by its name; stat decides once it exists
  }
}

/** Two stats of the same storage: the same inode, or the same block device. */
function sameStorage(a: Stats, b: Stats): boolean {
  if (a.isBlockDevice() && b.isBlockDevice()) return a.rdev === b.rdev;
  return a.dev === b.dev && a.ino === b.ino;
}

/** Refuses slots A and B that are the same file or block device (SameSlotError naming both paths). */
export async function assertDistinctSlots(slots: Readonly<Record<Slot, string>>): Promise<void> {
  const [a, b] = await Promise.all([resolved(slots.A), resolved(slots.B)]);
  if (a === b) {
    throw new SameSlotError(`slots A (${slots.A}) and B (${slots.B}) are the same file ${a}`);
  }
  const [sa, sb] = await Promise.all([statOrNull(slots.A), statOrNull(slots.B)]);
  if (sa && sb && sameStorage(sa, sb)) {
    throw new SameSlotError(
      `slots A (${slots.A}) and B (${slots.B}) are the same ${sa.isBlockDevice() ? "block device" : "file"}`,
    );
  }
}

/**
 * Right before writing `target`: it must not be the booted slot's storage, nor the block device the
 * running root filesystem is mounted from.
 */
export async function assertWritable(
  slots: Readonly<Record<Slot, string>>,
  target: Slot,
  booted: Slot,
): Promise<void> {
  if (target === booted) throw new SameSlotError(`slot ${target} is the booted slot; refusing to write it`);
  await assertDistinctSlots(slots);
  const [t, root] = await Promise.all([statOrNull(slots[target]), stat("/")]);
  if (t?.isBlockDevice() && t.rdev === root.dev) {
    throw new SameSlotError(
      `slot ${target} (${slots[target]}) holds the running root filesystem; refusing to write it`,
    );
  }
}
