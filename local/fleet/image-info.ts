/**
 * What a simulated node learns from the image in its booted slot: the demo images carry
 * `/etc/keelos-release` (KEY=value lines). Read with the real `unsquashfs`, so the slot must hold a real
 * SquashFS image; bytes after the image (the rest of the slot) are ignored by unsquashfs.
 */
import { execFile } from "node:child_process";
import { open } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

export const RELEASE_FILE = "etc/keelos-release";

export interface ImageInfo {
  version: string | undefined;
  /** `KUBELET=broken` in the image makes the simulated kubelet never become healthy. */
  kubeletHealthy: boolean;
}

export function parseReleaseFile(text: string): ImageInfo {
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] && m[2] !== undefined) vars.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
  }
  return { version: vars.get("VERSION"), kubeletHealthy: vars.get("KUBELET") !== "broken" };
}

/** SquashFS superblock magic ("hsqs", little-endian 0x73717368) at offset 0. */
const SQUASHFS_MAGIC = Buffer.from("hsqs", "latin1");

async function hasSquashfsMagic(slotPath: string): Promise<boolean> {
  const fh = await open(slotPath, "r");
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 0);
    return buf.equals(SQUASHFS_MAGIC);
  } finally {
    await fh.close();
  }
}

/**
 * Reads the release file out of a slot. A slot without a SquashFS (empty, invalidated, half-written) or one
 * unsquashfs cannot read reads as no OS (null); a readable image without the release file boots with an
 * unknown version and a healthy kubelet.
 */
export async function readImageInfo(slotPath: string): Promise<ImageInfo | null> {
  try {
    if (!(await hasSquashfsMagic(slotPath))) return null;
  } catch {
    return null;
  }
  try {
    const { stdout } = await run("unsquashfs", ["-cat", slotPath, RELEASE_FILE], { maxBuffer: 64 * 1024 });
    return parseReleaseFile(stdout);
  } catch {
    // -cat fails for a missing file and for a corrupt image alike; listing tells them apart.
    try {
      await run("unsquashfs", ["-l", slotPath], { maxBuffer: 64 * 1024 * 1024 });
      return { version: undefined, kubeletHealthy: true };
    } catch {
      return null;
    }
  }
}
