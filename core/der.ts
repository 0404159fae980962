/**
 * Just enough DER (X.690) to write and read the X.509 structures Keel handles itself: the certificates and
 * CRLs of the local CA (local/x509.ts) and the PKCS#10 certificate signing requests a node makes and the
 * cloud checks (core/csr.ts). In core/ so that the agent bundle and the local CA share one encoder, and no
 * x509 package (they need a global reflect polyfill, or lack EC) enters either.
 *
 * The reader is strict on purpose: definite, minimal lengths only, nothing past the end, so a CSR has
 * exactly one encoding and a garbled one is refused instead of being half understood.
 */

// --- writing ---

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

export const seq = (...items: Uint8Array[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Uint8Array[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octets = (b: Uint8Array): Buffer => tlv(0x04, b);
export const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, "utf8"));
export const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
/** [n] EXPLICIT (constructed, context-specific). */
export const explicit = (n: number, inner: Uint8Array): Buffer => tlv(0xa0 | n, inner);
/** BIT STRING with the given number of unused trailing bits in the last byte. */
export const bits = (b: Uint8Array, unused = 0): Buffer =>
  tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));

/** A non-negative INTEGER from big-endian bytes (a leading 0x00 keeps it positive). */
export function uint(bytes: Uint8Array): Buffer {
  let b = Buffer.from(bytes);
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const out = [40 * a + b];
  for (const p of rest) {
    const chunk: number[] = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14); // YYYYMMDDHHMMSS
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`, "ascii"))
    : tlv(0x18, Buffer.from(`${iso}Z`, "ascii"));
}

export interface DistinguishedName {
  commonName: string;
  organization?: string;
}

export const NAME_OID = { commonName: "2.5.4.3", organization: "2.5.4.10" } as const;

/** An X.501 Name: O (when given) then CN, each a UTF8String in its own RDN. */
export function distinguishedName(dn: DistinguishedName): Buffer {
  const rdns = [];
  if (dn.organization) rdns.push(set(seq(oid(NAME_OID.organization), utf8(dn.organization))));
  rdns.push(set(seq(oid(NAME_OID.commonName), utf8(dn.commonName))));
  return seq(...rdns);
}

export function derToPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

// --- reading ---

/** DER that breaks the encoding rules; `offset` is where in the input the reader stopped. */
export class DerError extends Error {
  override name = "DerError";
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}

/** One element: its tag, its content bytes, and the whole encoding (tag, length and content). */
export interface DerElement {
  tag: number;
  content: Buffer;
  encoded: Buffer;
  /** Offset of the element in the buffer it was read from. */
  offset: number;
}

/** Reads the element at `offset`; single-byte tags only (all X.509 and PKCS#10 use). */
export function readElement(buf: Buffer, offset = 0): DerElement {
  const tag = buf[offset];
  if (tag === undefined) throw new DerError("unexpected end of data: an element was expected", offset);
  if ((tag & 0x1f) === 0x1f)
    throw new DerError(`multi-byte tag 0x${tag.toString(16)} is not supported`, offset);
  const first = buf[offset + 1];
  if (first === undefined) throw new DerError("unexpected end of data in a length", offset + 1);
  let len: number;
  let start: number;
  if (first < 0x80) {
    len = first;
    start = offset + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError("indefinite length is not DER", offset + 1);
    if (n > 4) throw new DerError(`a ${n}-byte length is too long`, offset + 1);
    len = 0;
    for (let i = 0; i < n; i++) {
      const b = buf[offset + 2 + i];
      if (b === undefined) throw new DerError("unexpected end of data in a length", offset + 2 + i);
      if (i === 0 && b === 0) throw new DerError("length has a leading zero byte (not minimal)", offset + 2);
      len = len * 256 + b;
    }
    if (len < 0x80) throw new DerError("long-form length under 128 (not minimal)", offset + 1);
    start = offset + 2 + n;
  }
  const end = start + len;
  if (end > buf.length) throw new DerError(`length ${len} runs past the end of the data`, offset);
  return { tag, content: buf.subarray(start, end), encoded: buf.subarray(offset, end), offset };
}

/** The elements that make up a constructed element's content, which they must fill exactly. */
export function readChildren(parent: Buffer): DerElement[] {
  const out: DerElement[] = [];
  for (let at = 0; at < parent.length; ) {
    const e = readElement(parent, at);
    out.push(e);
    at += e.encoded.length;
  }
  return out;
}

/** The whole buffer as exactly one element: trailing bytes are refused. */
export function readOnly(buf: Buffer): DerElement {
  const e = readElement(buf, 0);
  if (e.encoded.length !== buf.length) {
    throw new DerError(
      `${buf.length - e.encoded.length} byte(s) after the end of the structure`,
      e.encoded.length,
    );
  }
  return e;
}

/** The dotted form of an OBJECT IDENTIFIER's content bytes. */
export function oidText(content: Buffer): string {
  if (content.length === 0) throw new DerError("empty OBJECT IDENTIFIER", 0);
  const parts: number[] = [];
  let v = 0;
  for (const [i, b] of content.entries()) {
    if (v === 0 && b === 0x80)
      throw new DerError("OBJECT IDENTIFIER arc has a leading 0x80 (not minimal)", i);
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError("OBJECT IDENTIFIER arc is too large", i);
    if ((b & 0x80) === 0) {
      parts.push(v);
      v = 0;
    }
  }
  if ((content[content.length - 1] ?? 0) & 0x80)
    throw new DerError("OBJECT IDENTIFIER ends mid-arc", content.length);
  const [first = 0, ...rest] = parts;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...rest].join(".");
}

export const TAG = {
  integer: 0x02,
  bitString: 0x03,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  sequence: 0x30,
  set: 0x31,
  context0: 0xa0,
} as const;
