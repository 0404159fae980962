import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalBytes } from "../../core/canonical-json.ts";
import { KeyFileError, SchemaError } from "../../core/errors.ts";
import {
  generateKeyPair,
  keyIdOf,
  parsePublicKeyFile,
  parseSecretKeyFile,
  publicKeyFileText,
  secretKeyFileText,
  signValue,
  toHex,
  verifySignatureBytes,
} from "../../core/keys.ts";
import { key } from "./fixtures.ts";

describe("keys", () => {
  it("keyId is the hex SHA-256 of the raw 32-byte public key", () => {
    const k = key(7);
    expect(k.publicKey).toHaveLength(32);
    expect(k.keyId).toBe(createHash("sha256").update(k.publicKey).digest("hex"));
    expect(keyIdOf(k.publicKey)).toBe(k.keyId);
  });

  it("derives the RFC 8032 test 1 public key from its seed", () => {
    // RFC 8032 §7.1 TEST 1: secret 9d61b19d…7f60 → public d75a9801…511a.
    const seed = Buffer.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "hex");
    const kp = parseSecretKeyFile(
      JSON.stringify({
        keytype: "ed25519",
        keyId: keyIdOf(
          Buffer.from("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "hex"),
        ),
        seed: seed.toString("hex"),
      }),
      "rfc8032.key",
    );
    expect(toHex(kp.publicKey)).toBe("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  });

  it("secret and public key files round-trip", () => {
    const k = generateKeyPair();
    const secret = parseSecretKeyFile(secretKeyFileText(k), "a.key");
    expect(secret.keyId).toBe(k.keyId);
    expect(toHex(secret.secretKey)).toBe(toHex(k.secretKey));
    const pub = parsePublicKeyFile(publicKeyFileText(k), "a.pub");
    expect(pub).toEqual({ keyId: k.keyId, publicKey: k.publicKey });
  });

  it("signatures made with a key verify with its public key and no other", () => {
    const a = key(1);
    const b = key(2);
    const value = { hello: "world", n: 1 };
    const sig = signValue(value, a);
    expect(sig.keyId).toBe(a.keyId);
    expect(verifySignatureBytes(canonicalBytes(value), sig.sig, toHex(a.publicKey))).toBe(true);
    expect(verifySignatureBytes(canonicalBytes(value), sig.sig, toHex(b.publicKey))).toBe(false);
    expect(verifySignatureBytes(canonicalBytes({ ...value, n: 2 }), sig.sig, toHex(a.publicKey))).toBe(false);
    // Wrong lengths are a plain "does not verify", never an exception.
    expect(verifySignatureBytes(canonicalBytes(value), sig.sig.slice(2), toHex(a.publicKey))).toBe(false);
  });

  it("refuses a secret key file whose keyId does not match its seed", () => {
    const a = key(1);
    const text = secretKeyFileText(a).replace(a.keyId, key(2).keyId);
    expect(() => parseSecretKeyFile(text, "a.key")).toThrow(KeyFileError);
    expect(() => parseSecretKeyFile(text, "a.key")).toThrow(
      /secret key file a\.key: keyId .* does not match its seed/,
    );
  });

  it("refuses a public key file whose keyId is not the hash of its key", () => {
    const a = key(1);
    const text = publicKeyFileText(a).replace(a.keyId, key(2).keyId);
    expect(() => parsePublicKeyFile(text, "a.pub")).toThrow(/is not the SHA-256 of its public key/);
  });

  it("refuses malformed key files with the field path", () => {
    expect(() => parsePublicKeyFile("{}", "x.pub")).toThrow(SchemaError);
    expect(() => parsePublicKeyFile(secretKeyFileText(key(1)), "x.pub")).toThrow(/public key file x\.pub/);
    expect(() => parseSecretKeyFile(publicKeyFileText(key(1)), "x.key")).toThrow(/seed/);
    const rsa = JSON.parse(publicKeyFileText(key(1))) as Record<string, unknown>;
    expect(() => parsePublicKeyFile(JSON.stringify({ ...rsa, keytype: "rsa" }), "x.pub")).toThrow(/keytype/);
    expect(() => parsePublicKeyFile("not json", "x.pub")).toThrow(/not valid UTF-8 JSON/);
  });
});
