/** Deterministic keys, roots and releases for core tests: every test passes its own clock. */
import { type KeyPair, keyPairFromSeed, publicKeyEntry, signValue } from "../../core/keys.ts";
import type { Envelope, ReleaseSigned, RootSigned } from "../../core/schemas.ts";

/** Key number n, from a fixed seed, so failures reproduce. */
export function key(n: number): KeyPair {
  return keyPairFromSeed(new Uint8Array(32).fill(n));
}

export const NOW = new Date("2030-06-01T00:00:00Z");
export const LATER = "2031-01-01T00:00:00Z";

export function makeRoot(opts: {
  version?: number;
  rootKeys: KeyPair[];
  rootThreshold?: number;
  releaseKeys?: KeyPair[];
  releaseThreshold?: number;
  expiresAt?: string;
}): RootSigned {
  const releaseKeys = opts.releaseKeys ?? opts.rootKeys;
  const keys: RootSigned["keys"] = {};
  for (const k of [...opts.rootKeys, ...releaseKeys]) keys[k.keyId] = publicKeyEntry(k.publicKey);
  return {
    _type: "root",
    schemaVersion: 1,
    version: opts.version ?? 1,
    expiresAt: opts.expiresAt ?? LATER,
    keys,
    roles: {
      root: { keyIds: opts.rootKeys.map((k) => k.keyId), threshold: opts.rootThreshold ?? 1 },
      release: { keyIds: releaseKeys.map((k) => k.keyId), threshold: opts.releaseThreshold ?? 1 },
    },
  };
}

export function makeRelease(overrides: Partial<ReleaseSigned> = {}): ReleaseSigned {
  return {
    _type: "release",
    schemaVersion: 1,
    os: "keelos",
    version: "1.2.0",
    releaseCounter: 12,
    compatible: ["pc-x86_64", "rpi4"],
    image: {
      key: "releases/1.2.0/image.squashfs",
      size: 1048576,
      sha256: "a".repeat(64),
      format: "squashfs",
    },
    createdAt: "2030-05-01T00:00:00Z",
    expiresAt: "2030-08-01T00:00:00Z",
    ...overrides,
  };
}

/** An envelope signed by each key in order (a key listed twice signs twice). */
export function sign<T>(signed: T, keys: ReadonlyArray<KeyPair>): Envelope<T> {
  return { signed, signatures: keys.map((k) => signValue(signed, k)) };
}

/** JSON round trip: what a device gets after the envelope crossed the wire. */
export function wire<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value));
}
