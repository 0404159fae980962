/**
 * PKCS#10 certificate signing requests (RFC 2986) for EC P-256 keys: the node builds one from a key it
 * generated and keeps (device enrolment), the cloud side parses and verifies one before anything issues a
 * certificate for it (the IoT stand-in's CreateCertificateFromCsr, `keel fleet register --csr`). Only the
 * CSR crosses the network; the private key never leaves the node (docs/security.md).
 *
 * The parser is strict: one PEM block in canonical base64, DER with minimal lengths and nothing trailing,
 * version 0, an EC P-256 key, ecdsa-with-SHA256, and a signature that verifies with the key the request
 * names (proof that whoever sent it holds the private key). Anything else is a CsrError naming the reason.
 */
import { createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import {
  bits,
  type DerElement,
  DerError,
  derToPem,
  distinguishedName,
  NAME_OID,
  oid,
  oidText,
  readChildren,
  readOnly,
  seq,
  TAG,
  tlv,
  uint,
} from "./der.ts";
import { CsrError, describeError } from "./errors.ts";

/** AWS IoT CreateCertificateFromCsr: `certificateSigningRequest` is at most 4096 characters. */
export const MAX_CSR_PEM_CHARS = 4096;

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const LABELS = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"] as const;

/** What a node's key must be: EC on P-256 (the curve AWS IoT and the local CA issue for). */
export function assertP256(key: KeyObject, what: string): void {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== "ec" || curve !== "prime256v1") {
    throw new CsrError(
      `${what} is ${key.asymmetricKeyType ?? "unknown"}${curve ? ` (${curve})` : ""}; only EC P-256 (prime256v1) keys are accepted`,
    );
  }
}

/** Builds a signed CSR (PEM) for the key pair of `privateKey`, with `commonName` as the subject. */
export function buildCsr(privateKey: KeyObject, commonName: string): string {
  assertP256(privateKey, "the private key");
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  const info = seq(
    uint(Buffer.from([0])), // version v1(0)
    distinguishedName({ commonName }),
    spki,
    tlv(TAG.context0, Buffer.alloc(0)), // attributes [0] IMPLICIT SET OF Attribute: none
  );
  // Node signs EC keys with a DER ECDSA-Sig-Value, exactly what the signature BIT STRING holds.
  const signature = sign("sha256", info, privateKey);
  return derToPem("CERTIFICATE REQUEST", seq(info, seq(oid(ECDSA_WITH_SHA256)), bits(signature)));
}

export interface ParsedCsr {
  /** The public key the request is for; a certificate issued for it is usable only with the node's key. */
  publicKey: KeyObject;
  /** The subject's common name, when it has one. */
  commonName: string | undefined;
}

/** Parses and verifies a PEM CSR; throws CsrError with the reason it is refused. */
export function parseCsr(pem: string): ParsedCsr {
  if (typeof pem !== "string") throw new CsrError("must be a PEM string");
  if (pem.length > MAX_CSR_PEM_CHARS) {
    throw new CsrError(`is ${pem.length} characters; at most ${MAX_CSR_PEM_CHARS} are accepted`);
  }
  const der = pemBody(pem);
  try {
    return parseDer(der);
  } catch (err) {
    if (err instanceof DerError) throw new CsrError(`is not valid DER: ${err.message}`, { cause: err });
    throw err;
  }
}

function pemBody(pem: string): Buffer {
  const lines = pem.replace(/\r\n/g, "\n").trim().split("\n");
  const first = lines[0] ?? "";
  const label = LABELS.find((l) => first === `-----BEGIN ${l}-----`);
  if (!label) {
    const seen = /^-----BEGIN ([A-Z0-9 ]+)-----$/.exec(first)?.[1];
    throw new CsrError(
      seen
        ? `is a PEM ${seen}, not a CERTIFICATE REQUEST`
        : "is not PEM (no -----BEGIN CERTIFICATE REQUEST----- line)",
    );
  }
  if (lines[lines.length - 1] !== `-----END ${label}-----`) {
    throw new CsrError(`has no matching -----END ${label}----- line (or text after it)`);
  }
  const body = lines.slice(1, -1).join("");
  if (body.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
    throw new CsrError("has a PEM body that is not base64");
  }
  const der = Buffer.from(body, "base64");
  // Node's decoder skips what it does not understand; the canonical re-encoding must be what was sent.
  if (der.toString("base64") !== body) throw new CsrError("has a PEM body that is not canonical base64");
  return der;
}

function expect(e: DerElement | undefined, tag: number, what: string): DerElement {
  if (!e) throw new CsrError(`${what} is missing`);
  if (e.tag !== tag)
    throw new CsrError(`${what} has tag 0x${e.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return e;
}

function parseDer(der: Buffer): ParsedCsr {
  const top = expect(readOnly(der), TAG.sequence, "CertificationRequest");
  const parts = readChildren(top.content);
  if (parts.length !== 3) throw new CsrError(`CertificationRequest has ${parts.length} parts, expected 3`);
  const info = expect(parts[0], TAG.sequence, "certificationRequestInfo");
  const algorithm = expect(parts[1], TAG.sequence, "signatureAlgorithm");
  const signature = expect(parts[2], TAG.bitString, "signature");

  const fields = readChildren(info.content);
  if (fields.length !== 4)
    throw new CsrError(`certificationRequestInfo has ${fields.length} fields, expected 4`);
  const version = expect(fields[0], TAG.integer, "version");
  if (!version.content.equals(Buffer.from([0]))) throw new CsrError("version is not 0 (v1)");
  const commonName = subjectCommonName(expect(fields[1], TAG.sequence, "subject"));
  const spki = expect(fields[2], TAG.sequence, "subjectPKInfo");
  // Attributes (extension requests and the like) must be well formed; a certificate takes none of them.
  readChildren(expect(fields[3], TAG.context0, "attributes").content);

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki.encoded, format: "der", type: "spki" });
  } catch (err) {
    throw new CsrError(`subjectPKInfo is not a public key: ${describeError(err)}`, { cause: err });
  }
  assertP256(publicKey, "the request's key");

  const alg = readChildren(algorithm.content);
  const algOid = expect(alg[0], TAG.oid, "signatureAlgorithm.algorithm");
  // RFC 5758 §3.2: ecdsa-with-SHA256 has no parameters, not even NULL.
  if (oidText(algOid.content) !== ECDSA_WITH_SHA256 || alg.length !== 1) {
    throw new CsrError(
      `signatureAlgorithm is ${oidText(algOid.content)}; only ecdsa-with-SHA256 is accepted`,
    );
  }
  if (signature.content[0] !== 0 || signature.content.length < 2) {
    throw new CsrError("signature BIT STRING is empty or has unused bits");
  }
  let ok: boolean;
  try {
    ok = verify(
      "sha256",
      info.encoded,
      { key: publicKey, dsaEncoding: "der" },
      signature.content.subarray(1),
    );
  } catch (err) {
    throw new CsrError(`signature cannot be checked: ${describeError(err)}`, { cause: err });
  }
  if (!ok)
    throw new CsrError("signature does not verify with the request's own key (altered, or not signed by it)");
  return { publicKey, commonName };
}

/** The CN of a Name (SEQUENCE OF SET OF AttributeTypeAndValue), read strictly; undefined when absent. */
function subjectCommonName(subject: DerElement): string | undefined {
  let cn: string | undefined;
  for (const rdn of readChildren(subject.content)) {
    expect(rdn, TAG.set, "subject RDN");
    for (const atv of readChildren(rdn.content)) {
      const [type, value, ...rest] = readChildren(expect(atv, TAG.sequence, "subject attribute").content);
      if (rest.length > 0 || !value) throw new CsrError("subject attribute is not a (type, value) pair");
      if (oidText(expect(type, TAG.oid, "subject attribute type").content) !== NAME_OID.commonName) continue;
      if (![TAG.utf8String, TAG.printableString, TAG.ia5String].includes(value.tag as 0x0c)) {
        throw new CsrError("subject CN is not a UTF8String, PrintableString or IA5String");
      }
      cn = value.content.toString("utf8");
    }
  }
  return cn;
}
