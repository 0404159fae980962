/** ed25519 keys (tweetnacl), key ids and the on-disk key file formats the CLI reads and writes. */
import { createHash } from "node:crypto";
import nacl from "tweetnacl";
import { z } from "zod";
import { canonicalBytes } from "./canonical-json.ts";
import { KeyFileError } from "./errors.ts";
import { parseJsonWith } from "./parse.ts";
import { HEX64, KeyIdSchema, type PublicKey, type Signature } from "./schemas.ts";

export interface KeyPair {
  keyId: string;
  publicKey: Uint8Array; // 32 bytes
  secretKey: Uint8Array; // 64 bytes (seed + public), tweetnacl's form
}

export const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));

/** keyId = hex SHA-256 of the raw 32-byte public key (docs/architecture.md#releases-and-trust). */
export function keyIdOf(publicKey: Uint8Array): string {
  return createHash("sha256").update(publicKey).digest("hex");
}

export function generateKeyPair(): KeyPair {
  const kp = nacl.sign.keyPair();
  return { keyId: keyIdOf(kp.publicKey), publicKey: kp.publicKey, secretKey: kp.secretKey };
}

export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  const kp = nacl.sign.keyPair.fromSeed(seed);
  return { keyId: keyIdOf(kp.publicKey), publicKey: kp.publicKey, secretKey: kp.secretKey };
}

export function publicKeyEntry(publicKey: Uint8Array): PublicKey {
  return { keytype: "ed25519", public: toHex(publicKey) };
}

/** Signs the RFC 8785 canonical bytes of `signed`. */
export function signValue(signed: unknown, key: KeyPair): Signature {
  return { keyId: key.keyId, sig: toHex(nacl.sign.detached(canonicalBytes(signed), key.secretKey)) };
}

export function verifySignatureBytes(message: Uint8Array, sigHex: string, publicKeyHex: string): boolean {
  const sig = fromHex(sigHex);
  const pub = fromHex(publicKeyHex);
  if (sig.length !== nacl.sign.signatureLength || pub.length !== nacl.sign.publicKeyLength) return false;
  return nacl.sign.detached.verify(message, sig, pub);
}

const SecretKeyFileSchema = z.strictObject({
  keytype: z.literal("ed25519"),
  keyId: KeyIdSchema,
  seed: z.string().regex(HEX64, "must be 64 hex characters (ed25519 seed)"),
});
const PublicKeyFileSchema = z.strictObject({
  keytype: z.literal("ed25519"),
  keyId: KeyIdSchema,
  public: z.string().regex(HEX64, "must be 64 hex characters (ed25519 public key)"),
});

export function secretKeyFileText(key: KeyPair): string {
  return `${JSON.stringify({ keytype: "ed25519", keyId: key.keyId, seed: toHex(key.secretKey.slice(0, 32)) }, null, 2)}\n`;
}

export function publicKeyFileText(key: { keyId: string; publicKey: Uint8Array }): string {
  return `${JSON.stringify({ keytype: "ed25519", keyId: key.keyId, public: toHex(key.publicKey) }, null, 2)}\n`;
}

export function parseSecretKeyFile(text: string, source: string): KeyPair {
  const f = parseJsonWith(SecretKeyFileSchema, text, `secret key file ${source}`);
  const kp = keyPairFromSeed(fromHex(f.seed));
  if (kp.keyId !== f.keyId) {
    throw new KeyFileError(
      `secret key file ${source}: keyId ${f.keyId} does not match its seed (${kp.keyId})`,
    );
  }
  return kp;
}

export function parsePublicKeyFile(text: string, source: string): { keyId: string; publicKey: Uint8Array } {
  const f = parseJsonWith(PublicKeyFileSchema, text, `public key file ${source}`);
  const publicKey = fromHex(f.public);
  if (keyIdOf(publicKey) !== f.keyId) {
    throw new KeyFileError(
      `public key file ${source}: keyId ${f.keyId} is not the SHA-256 of its public key`,
    );
  }
  return { keyId: f.keyId, publicKey };
}
