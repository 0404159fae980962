/** Signing fixtures for device tests: a root with one root key and one release key, and signed releases. */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generateKeyPair, type KeyPair, publicKeyEntry, signValue } from "../../../core/keys.ts";
import type { ReleaseSigned, RootSigned } from "../../../core/schemas.ts";

export interface Signers {
  rootKey: KeyPair;
  releaseKey: KeyPair;
  root: { signed: RootSigned; signatures: ReturnType<typeof signValue>[] };
}

const inAYear = () => new Date(Date.now() + 365 * 86400_000).toISOString().replace(/\.\d+Z$/, "Z");

export function makeSigners(): Signers {
  const rootKey = generateKeyPair();
  const releaseKey = generateKeyPair();
  const signed: RootSigned = {
    _type: "root",
    schemaVersion: 1,
    version: 1,
    expiresAt: inAYear(),
    keys: {
      [rootKey.keyId]: publicKeyEntry(rootKey.publicKey),
      [releaseKey.keyId]: publicKeyEntry(releaseKey.publicKey),
    },
    roles: {
      root: { keyIds: [rootKey.keyId], threshold: 1 },
      release: { keyIds: [releaseKey.keyId], threshold: 1 },
    },
  };
  return { rootKey, releaseKey, root: { signed, signatures: [signValue(signed, rootKey)] } };
}

export interface ReleaseOptions {
  version: string;
  releaseCounter: number;
  image: Uint8Array;
  compatible?: string[];
  /** Sign with this key instead of the release key (bad signature). */
  signWith?: KeyPair;
  /** Put this digest in the manifest instead of the image's (hash mismatch). */
  sha256?: string;
  size?: number;
}

export function signRelease(s: Signers, o: ReleaseOptions) {
  const signed: ReleaseSigned = {
    _type: "release",
    schemaVersion: 1,
    os: "keelos",
    version: o.version,
    releaseCounter: o.releaseCounter,
    compatible: o.compatible ?? ["rpi4"],
    image: {
      key: `releases/${o.version}/image.squashfs`,
      size: o.size ?? o.image.byteLength,
      sha256: o.sha256 ?? createHash("sha256").update(o.image).digest("hex"),
      format: "squashfs",
    },
    createdAt: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, "Z"),
    expiresAt: inAYear(),
  };
  return { signed, signatures: [signValue(signed, o.signWith ?? s.releaseKey)] };
}

export function randomImage(size: number): Uint8Array {
  return new Uint8Array(randomBytes(size));
}

/**
 * A real SquashFS image, as releases are: a KeelOS os-release (1.1.0) and `payloadBytes` of payload,
 * packed by mksquashfs under `dir` (its `rootfs/` is made there).
 */
export async function squashfsImage(dir: string, payloadBytes = 0): Promise<Buffer> {
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "etc"), { recursive: true });
  await writeFile(join(rootfs, "etc/os-release"), 'NAME="KeelOS"\nVERSION_ID="1.1.0"\n');
  if (payloadBytes > 0) await writeFile(join(rootfs, "payload"), Buffer.alloc(payloadBytes, 7));
  const image = join(dir, "image.squashfs");
  execFileSync("mksquashfs", [rootfs, image, "-noappend", "-quiet", "-no-progress"]);
  return readFile(image);
}
