/**
 * Just enough DER to build the X.509 v3 certificates the local CA issues (RFC 5280): EC P-256 keys,
 * ecdsa-with-SHA256 signatures, and the handful of extensions TLS stacks (Node, OpenSSL in mosquitto) check.
 * Keys, signing and parsing are node:crypto's; only the encoding is ours (core/der.ts, shared with the CSRs
 * of core/csr.ts), because the x509 libraries on npm need a global reflect polyfill and forge has no EC support.
 */
import { createHash, createPublicKey, type KeyObject, sign } from "node:crypto";
import {
  bits,
  bool,
  type DistinguishedName,
  derToPem,
  explicit,
  distinguishedName as name,
  octets,
  oid,
  seq,
  time,
  tlv,
  uint,
} from "../core/der.ts";

export { type DistinguishedName, derToPem };

// --- X.509 ---

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

function extension(id: string, critical: boolean, value: Uint8Array): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents. */
function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ format: "der", type: "spki" });
  // For P-256 the SPKI ends with the 65-byte uncompressed point; hashing the point is the usual choice.
  return createHash("sha1")
    .update(spki.subarray(spki.length - 65))
    .digest();
}

export interface CertificateSpec {
  serial: Uint8Array;
  subject: DistinguishedName;
  issuer: DistinguishedName;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  issuerPublicKey: KeyObject;
  signingKey: KeyObject;
  /** ca: may sign certificates; server/client: a TLS leaf with that extended key usage. */
  role: "ca" | "server" | "client";
  /** subjectAltName entries for a server certificate. */
  altNames?: { dns?: string[]; ip?: string[] };
}

/** Builds and signs an X.509 v3 certificate; returns its DER bytes. */
export function buildCertificate(spec: CertificateSpec): Buffer {
  const extensions: Buffer[] = [];
  if (spec.role === "ca") {
    // cA TRUE, pathLenConstraint 0: the local CA signs leaves only.
    extensions.push(extension(OID.basicConstraints, true, seq(bool(true), uint(Buffer.from([0])))));
    // keyCertSign (bit 5) and cRLSign (bit 6): 0b0000011x, one unused bit.
    extensions.push(extension(OID.keyUsage, true, bits(Buffer.from([0x06]), 1)));
  } else {
    extensions.push(extension(OID.basicConstraints, true, seq()));
    // digitalSignature (bit 0) only: what ECDHE-ECDSA TLS needs; seven unused bits.
    extensions.push(extension(OID.keyUsage, true, bits(Buffer.from([0x80]), 7)));
    extensions.push(
      extension(OID.extKeyUsage, false, seq(oid(spec.role === "server" ? OID.serverAuth : OID.clientAuth))),
    );
    // keyIdentifier [0] IMPLICIT OCTET STRING
    extensions.push(
      extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, keyIdentifier(spec.issuerPublicKey)))),
    );
  }
  extensions.push(extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(spec.publicKey))));
  const alt = spec.altNames;
  if (alt) {
    const names = [
      ...(alt.dns ?? []).map((d) => tlv(0x82, Buffer.from(d, "ascii"))), // dNSName [2] IA5String
      ...(alt.ip ?? []).map((ip) => tlv(0x87, Buffer.from(ip.split(".").map(Number)))), // iPAddress [7], IPv4
    ];
    extensions.push(extension(OID.subjectAltName, false, seq(...names)));
  }

  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))), // v3
    uint(spec.serial),
    algorithm,
    name(spec.issuer),
    seq(time(spec.notBefore), time(spec.notAfter)),
    name(spec.subject),
    spec.publicKey.export({ format: "der", type: "spki" }),
    explicit(3, seq(...extensions)),
  );
  // Node signs EC keys with a DER-encoded ECDSA-Sig-Value, exactly what the signatureValue BIT STRING holds.
  const signature = sign("sha256", tbs, spec.signingKey);
  return seq(tbs, algorithm, bits(signature));
}

export interface CrlSpec {
  issuer: DistinguishedName;
  signingKey: KeyObject;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: Array<{ serial: Uint8Array; date: Date }>;
}

/** Builds and signs a v1 certificate revocation list (RFC 5280 §5): the serials the issuer no longer honours. */
export function buildCrl(spec: CrlSpec): Buffer {
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const entries = spec.revoked.map((r) => seq(uint(r.serial), time(r.date)));
  const tbs = seq(
    algorithm,
    name(spec.issuer),
    time(spec.thisUpdate),
    time(spec.nextUpdate),
    // revokedCertificates is absent, not empty, when nothing is revoked.
    ...(entries.length > 0 ? [seq(...entries)] : []),
  );
  return seq(tbs, algorithm, bits(sign("sha256", tbs, spec.signingKey)));
}

/** The public key of a private key, for signing certificates about it. */
export function publicKeyOf(privateKey: KeyObject): KeyObject {
  return createPublicKey(privateKey);
}
