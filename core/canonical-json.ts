/**
 * RFC 8785 (JSON Canonicalization Scheme) serialisation: the exact bytes every signature covers.
 *
 * - object members sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3), which is what
 *   JavaScript's default string comparison does;
 * - numbers serialised as ECMAScript's Number.prototype.toString (§3.2.2.3), which JSON.stringify does;
 * - strings escaped as JSON.stringify does (§3.2.2.2 matches ES2019+ well-formed stringify);
 * - no whitespace. Non-finite numbers, undefined, functions, bigint and symbols are refused because
 *   they have no JSON form; strings with lone surrogates are refused because RFC 8785 §3.2.2.2 requires
 *   well-formed Unicode (I-JSON) and they have no UTF-8 encoding to sign.
 */
import { CanonicalJsonError } from "./errors.ts";

export function canonicalize(value: unknown): string {
  return serialize(value, "$");
}

export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalize(value));
}

function serialize(value: unknown, path: string): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${path}: ${value} has no JSON form`);
      return JSON.stringify(value);
    case "string":
      return serializeString(value, path);
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v, i) => serialize(v, `${path}[${i}]`)).join(",")}]`;
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${serializeString(k, `${path} member name`)}:${serialize(v, `${path}.${k}`)}`).join(",")}}`;
    }
    default:
      throw new CanonicalJsonError(`${path}: a ${typeof value} has no JSON form`);
  }
}

/** With the u flag a lone surrogate is its own code point of category Cs; a valid pair never matches. */
const LONE_SURROGATE = /\p{Cs}/u;

function serializeString(value: string, path: string): string {
  if (LONE_SURROGATE.test(value)) throw new CanonicalJsonError(`${path}: string contains a lone surrogate`);
  return JSON.stringify(value);
}
