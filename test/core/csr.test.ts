import { execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildCsr, MAX_CSR_PEM_CHARS, parseCsr } from "../../core/csr.ts";
import { bits, derToPem, distinguishedName, oid, seq, tlv, uint } from "../../core/der.ts";
import { CsrError, SchemaError } from "../../core/errors.ts";

const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
const spkiOf = (k: KeyObject) =>
  (k.type === "public" ? k : createPublicKey(k)).export({ format: "der", type: "spki" });
const derOf = (pem: string) =>
  Buffer.from(
    pem
      .split("\n")
      .filter((l) => l && !l.startsWith("-----"))
      .join(""),
    "base64",
  );

/** A CSR assembled by hand, so each test can break exactly one part of it. */
function handCsr(o: {
  key?: KeyObject;
  signer?: KeyObject;
  version?: number;
  alg?: string;
  tail?: Buffer;
}): string {
  const key = o.key ?? p256();
  const info = seq(
    uint(Buffer.from([o.version ?? 0])),
    distinguishedName({ commonName: "n" }),
    spkiOf(key),
    tlv(0xa0, Buffer.alloc(0)),
  );
  const sig = sign("sha256", info, o.signer ?? key);
  return derToPem(
    "CERTIFICATE REQUEST",
    Buffer.concat([
      seq(info, seq(oid(o.alg ?? "1.2.840.10045.4.3.2")), bits(sig)),
      o.tail ?? Buffer.alloc(0),
    ]),
  );
}

function refusal(pem: string): string {
  try {
    parseCsr(pem);
  } catch (err) {
    expect(err).toBeInstanceOf(CsrError);
    expect(err).toBeInstanceOf(SchemaError);
    return (err as CsrError).message;
  }
  throw new Error("the CSR was accepted");
}

describe("PKCS#10 CSRs", () => {
  const tmp = mkdtempSync(join(tmpdir(), "keel-csr-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("a CSR built from a node's key parses back to the same public key and CN, and openssl verifies it", () => {
    const key = p256();
    const pem = buildCsr(key, "node-1");
    const parsed = parseCsr(pem);
    expect(parsed.commonName).toBe("node-1");
    expect(spkiOf(parsed.publicKey).equals(spkiOf(key))).toBe(true);
    writeFileSync(join(tmp, "ours.csr"), pem);
    const out = execFileSync("openssl", ["req", "-in", join(tmp, "ours.csr"), "-verify", "-noout"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(out).not.toMatch(/fail/i);
  });

  it("a CSR made by openssl for a P-256 key is accepted", () => {
    const keyFile = join(tmp, "o.key");
    writeFileSync(keyFile, p256().export({ format: "pem", type: "pkcs8" }));
    const pem = execFileSync(
      "openssl",
      ["req", "-new", "-key", keyFile, "-subj", "/O=Keel/CN=from-openssl"],
      { encoding: "utf8" },
    );
    expect(parseCsr(pem).commonName).toBe("from-openssl");
  });

  it("refuses keys other than EC P-256: RSA, P-384, Ed25519", () => {
    const rsaKey = join(tmp, "rsa.key");
    writeFileSync(
      rsaKey,
      generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "pem", type: "pkcs8" }),
    );
    const rsa = execFileSync("openssl", ["req", "-new", "-key", rsaKey, "-subj", "/CN=rsa"], {
      encoding: "utf8",
    });
    expect(refusal(rsa)).toMatch(/is rsa; only EC P-256/);
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
    expect(refusal(handCsr({ key: p384 }))).toMatch(/secp384r1.*only EC P-256/);
    expect(() => buildCsr(generateKeyPairSync("ed25519").privateKey, "x")).toThrow(
      /is ed25519; only EC P-256/,
    );
  });

  it("refuses a signature that is not the request's own key's (a stolen public key, an altered request)", () => {
    expect(refusal(handCsr({ signer: p256() }))).toMatch(/signature does not verify/);
    const der = derOf(buildCsr(p256(), "node-a"));
    const at = der.indexOf(Buffer.from("node-a"));
    der[at + 5] = "b".charCodeAt(0);
    expect(refusal(derToPem("CERTIFICATE REQUEST", der))).toMatch(/signature does not verify/);
  });

  it("refuses garbled input, each with its reason", () => {
    const good = buildCsr(p256(), "n");
    const der = derOf(good);
    expect(refusal("hello")).toMatch(/is not PEM/);
    expect(refusal(good.replace(/CERTIFICATE REQUEST/g, "CERTIFICATE"))).toMatch(
      /is a PEM CERTIFICATE, not a CERTIFICATE REQUEST/,
    );
    expect(refusal(good.replace("-----END CERTIFICATE REQUEST-----", ""))).toMatch(/no matching -----END/);
    expect(refusal(good.replace(/\n([A-Za-z])/, "\n!$1"))).toMatch(/not base64/);
    expect(refusal(derToPem("CERTIFICATE REQUEST", der.subarray(0, der.length - 3)))).toMatch(
      /not valid DER: .*runs past the end/,
    );
    expect(refusal(handCsr({ tail: Buffer.from([0x05, 0x00]) }))).toMatch(/after the end of the structure/);
    const indefinite = Buffer.from(der);
    indefinite[1] = 0x80;
    expect(refusal(derToPem("CERTIFICATE REQUEST", indefinite))).toMatch(/indefinite length/);
    expect(refusal(handCsr({ version: 1 }))).toMatch(/version is not 0/);
    expect(refusal(handCsr({ alg: "1.2.840.10045.4.3.3" }))).toMatch(
      /signatureAlgorithm is 1\.2\.840\.10045\.4\.3\.3/,
    );
    expect(refusal(derToPem("CERTIFICATE REQUEST", seq(uint(Buffer.from([1])))))).toMatch(
      /has 1 parts, expected 3/,
    );
    expect(refusal(`${good}\n${"A".repeat(MAX_CSR_PEM_CHARS)}`)).toMatch(/characters; at most 4096/);
  });
});
