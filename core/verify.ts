/**
 * Threshold signature verification for the two roles, root rotation, and release verification with
 * trusted time (docs/architecture.md#releases-and-trust). Pure: callers pass the clock in.
 */
import { canonicalBytes } from "./canonical-json.ts";
import { ExpiredError, KeyIdMismatchError, RootRotationError, ThresholdError } from "./errors.ts";
import { fromHex, keyIdOf, verifySignatureBytes } from "./keys.ts";
import { parseWith } from "./parse.ts";
import {
  type Envelope,
  EnvelopeSchema,
  type ReleaseSigned,
  ReleaseSignedSchema,
  type RoleName,
  type RootSigned,
  RootSignedSchema,
  type Signature,
} from "./schemas.ts";

/** The device's idea of "now": never earlier than the latest time seen in verified metadata. */
export interface TrustedTime {
  now: Date;
  latestKnown?: Date | undefined;
}

export function effectiveTime(t: TrustedTime): Date {
  if (t.latestKnown && t.latestKnown.getTime() > t.now.getTime()) return t.latestKnown;
  return t.now;
}

export function parseRootEnvelope(value: unknown, what = "trust root"): Envelope<RootSigned> {
  const env = parseWith(EnvelopeSchema, value, what);
  const signed = parseWith(RootSignedSchema, env.signed, `${what} (signed)`);
  checkKeyIds(signed, `${what} (signed)`);
  return { signed, signatures: env.signatures };
}

/**
 * A key id is the SHA-256 of its public key, nothing else: otherwise one key listed under two ids would
 * count twice towards a threshold. A root that breaks the rule is refused as a whole.
 */
export function checkKeyIds(root: RootSigned, what = "trust root"): void {
  const issues = Object.entries(root.keys)
    .filter(([id, key]) => keyIdOf(fromHex(key.public)) !== id)
    .map(([id, key]) => ({
      path: `keys.${id}`,
      message: `key id is not the SHA-256 of its public key (${keyIdOf(fromHex(key.public))})`,
    }));
  if (issues.length > 0) throw new KeyIdMismatchError(what, issues);
}

export function parseReleaseEnvelope(value: unknown, what = "release manifest"): Envelope<ReleaseSigned> {
  const env = parseWith(EnvelopeSchema, value, what);
  return {
    signed: parseWith(ReleaseSignedSchema, env.signed, `${what} (signed)`),
    signatures: env.signatures,
  };
}

/**
 * Counts valid signatures over `signed` by keys that `root` assigns to `role`. What counts is distinct
 * public keys, not key ids: a key signing twice, or listed under a second id, counts once (a key id that
 * is not its key's SHA-256 never counts, should a root reach here without parseRootEnvelope); keys the
 * role does not list are ignored; returns the key ids that counted, or throws with have/need.
 */
export function verifyRole(
  signed: unknown,
  signatures: ReadonlyArray<Signature>,
  root: RootSigned,
  role: RoleName,
  label = `${role} role (root v${root.version})`,
): string[] {
  const spec = root.roles[role];
  const message = canonicalBytes(signed);
  const counted = new Set<string>();
  const keysCounted = new Set<string>();
  const details: string[] = [];
  for (const s of signatures) {
    if (counted.has(s.keyId)) continue;
    if (!spec.keyIds.includes(s.keyId)) {
      details.push(`key ${s.keyId.slice(0, 16)}… is not trusted for ${role}`);
      continue;
    }
    const key = root.keys[s.keyId];
    if (!key || keyIdOf(fromHex(key.public)) !== s.keyId) {
      details.push(`key ${s.keyId.slice(0, 16)}… is not the SHA-256 of its public key`);
      continue;
    }
    if (keysCounted.has(key.public)) {
      details.push(`key ${s.keyId.slice(0, 16)}… already counted`);
      continue;
    }
    if (verifySignatureBytes(message, s.sig, key.public)) {
      counted.add(s.keyId);
      keysCounted.add(key.public);
    } else details.push(`signature by key ${s.keyId.slice(0, 16)}… does not verify`);
  }
  if (counted.size < spec.threshold) throw new ThresholdError(label, counted.size, spec.threshold, details);
  return [...counted];
}

function checkNotExpired(what: string, expiresAt: string, time: TrustedTime): void {
  const now = effectiveTime(time);
  if (Date.parse(expiresAt) <= now.getTime()) throw new ExpiredError(what, expiresAt, now.toISOString());
}

/** Root 1 (shipped in the image or given on the command line): must be signed by its own root threshold. */
export function verifyInitialRoot(value: unknown, time: TrustedTime): RootSigned {
  const env = parseRootEnvelope(value);
  verifyRole(env.signed, env.signatures, env.signed, "root");
  checkNotExpired(`trust root version ${env.signed.version}`, env.signed.expiresAt, time);
  return env.signed;
}

/**
 * Root N+1 is valid only when signed by a threshold of root N's root keys and a threshold of its own.
 * Expiry of intermediate roots is not checked (TUF §5.3): only the root a walk ends on must be current.
 */
export function verifyRootUpdate(trusted: RootSigned, next: unknown): RootSigned {
  const env = parseRootEnvelope(next, `trust root version ${trusted.version + 1}`);
  if (env.signed.version !== trusted.version + 1) {
    throw new RootRotationError(
      `trust root version ${env.signed.version} cannot follow version ${trusted.version}: expected ${trusted.version + 1}`,
    );
  }
  verifyRole(
    env.signed,
    env.signatures,
    trusted,
    "root",
    `root role of trust root v${trusted.version} (old keys)`,
  );
  verifyRole(
    env.signed,
    env.signatures,
    env.signed,
    "root",
    `root role of trust root v${env.signed.version} (new keys)`,
  );
  return env.signed;
}

/** Walks a chain of roots forward from a trusted one; the final root must not be expired. */
export function walkRootChain(
  trusted: RootSigned,
  chain: ReadonlyArray<unknown>,
  time: TrustedTime,
): RootSigned {
  let current = trusted;
  for (const next of chain) current = verifyRootUpdate(current, next);
  checkNotExpired(`trust root version ${current.version}`, current.expiresAt, time);
  return current;
}

/**
 * A release whose signatures and expiry hold. Deliberately carries no time to persist: a verified
 * release may still be refused (other hardware, a downgrade), and trusted time may only advance from a
 * release that was accepted in full (checkAcceptance, then TrustStore.advanceTime on the device).
 */
export interface VerifiedRelease {
  release: ReleaseSigned;
  signers: string[];
}

export function verifyRelease(value: unknown, root: RootSigned, time: TrustedTime): VerifiedRelease {
  checkNotExpired(`trust root version ${root.version}`, root.expiresAt, time);
  const env = parseReleaseEnvelope(value);
  const signers = verifyRole(env.signed, env.signatures, root, "release");
  checkNotExpired(`release ${env.signed.version} manifest`, env.signed.expiresAt, time);
  return { release: env.signed, signers };
}
