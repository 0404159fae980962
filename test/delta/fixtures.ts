/**
 * Delta test fixtures: two small root trees that differ in a few files, packed by the real
 * `keel release build` code (real mksquashfs, chunk index appended), and a manifest that names the index.
 */
import { randomBytes } from "node:crypto";
import { cp, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ensureChunkIndex } from "../../cli/chunk-image.ts";
import { buildImage } from "../../cli/commands/release.ts";
import { signValue } from "../../core/keys.ts";
import type { ChunkIndexRef } from "../../core/schemas.ts";
import { type Signers, signRelease } from "../device/helpers/release.ts";

export interface ImagePair {
  oldImage: string;
  newImage: string;
  ref: ChunkIndexRef;
}

/** ~1.3 MB trees of incompressible files; NEW rewrites two files and adds one. */
export async function buildPair(dir: string): Promise<ImagePair> {
  const oldTree = join(dir, "old-tree");
  const newTree = join(dir, "new-tree");
  await mkdir(join(oldTree, "usr/lib"), { recursive: true });
  await mkdir(join(oldTree, "etc"), { recursive: true });
  for (let i = 0; i < 40; i++) {
    await writeFile(
      join(oldTree, "usr/lib", `lib${String(i).padStart(2, "0")}.so`),
      randomBytes(20_000 + i * 500),
    );
  }
  await writeFile(join(oldTree, "etc/os-release"), "NAME=KeelOS\nVERSION=1.0.0\n");
  await cp(oldTree, newTree, { recursive: true });
  await writeFile(join(newTree, "etc/os-release"), "NAME=KeelOS\nVERSION=1.1.0\n");
  await writeFile(join(newTree, "usr/lib/lib17.so"), randomBytes(30_000));
  await writeFile(join(newTree, "usr/lib/libnew.so"), randomBytes(12_000));
  const oldImage = join(dir, "old.squashfs");
  const newImage = join(dir, "new.squashfs");
  await buildImage(oldTree, oldImage);
  await buildImage(newTree, newImage);
  const ref = await ensureChunkIndex(newImage, { write: false });
  if (!ref) throw new Error("fixture image is not SquashFS");
  return { oldImage, newImage, ref };
}

/** A signed manifest for `image` whose `image.chunks` is `chunks` (omitted: no delta for this release). */
export function deltaManifest(signers: Signers, image: Uint8Array, chunks?: ChunkIndexRef) {
  const env = signRelease(signers, { version: "1.1.0", releaseCounter: 2, image });
  const signed = { ...env.signed, image: { ...env.signed.image, ...(chunks ? { chunks } : {}) } };
  return { signed, signatures: [signValue(signed, signers.releaseKey)] };
}
