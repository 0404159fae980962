/**
 * Property tests: any change to the signed bytes breaks verification (docs/architecture.md#releases-and-trust: signatures cover the
 * RFC 8785 bytes of `signed`, so no edit can keep a signature valid).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalize } from "../../core/canonical-json.ts";
import { SchemaError, ThresholdError } from "../../core/errors.ts";
import { ReleaseSignedSchema } from "../../core/schemas.ts";
import { verifyInitialRoot, verifyRelease } from "../../core/verify.ts";
import { key, makeRelease, makeRoot, NOW, sign, wire } from "./fixtures.ts";

const rootKey = key(1);
const releaseKey = key(2);
const root = makeRoot({ rootKeys: [rootKey], releaseKeys: [releaseKey] });
const release = makeRelease();
const envelope = sign(release, [releaseKey]);
const time = { now: NOW };

/** Well-typed replacement values per field, so most mutants pass the schema and hit the signature check. */
const hex64 = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 });
const ident = fc.stringMatching(/^[a-z0-9:_.-]{1,12}$/);
const timestamp = fc
  .integer({ min: Date.parse("2030-01-01T00:00:00Z"), max: Date.parse("2035-01-01T00:00:00Z") })
  .map((ms) => new Date(ms).toISOString());
const fieldMutations: Record<string, fc.Arbitrary<unknown>> = {
  os: ident,
  version: fc.tuple(fc.nat(20), fc.nat(20), fc.nat(20)).map(([a, b, c]) => `${a}.${b}.${c}`),
  releaseCounter: fc.nat(),
  compatible: fc.array(ident, { minLength: 1, maxLength: 4 }),
  "image.key": fc.stringMatching(/^releases\/[a-z0-9.]{1,10}\/image\.squashfs$/),
  "image.size": fc.integer({ min: 1, max: 2 ** 40 }),
  "image.sha256": hex64,
  createdAt: timestamp,
  expiresAt: timestamp.filter((t) => Date.parse(t) > NOW.getTime()),
  // Anything at all in any field, including wrong types.
  _any: fc.jsonValue(),
};

function setPath(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(obj);
  const parts = path.split(".");
  let cur: Record<string, unknown> = copy;
  for (const p of parts.slice(0, -1)) cur = cur[p] as Record<string, unknown>;
  cur[parts[parts.length - 1] as string] = value;
  return copy;
}

const leafPaths = [
  "_type",
  "schemaVersion",
  "os",
  "version",
  "releaseCounter",
  "compatible",
  "image.key",
  "image.size",
  "image.sha256",
  "image.format",
  "createdAt",
  "expiresAt",
];

describe("signed bytes", () => {
  it("the unmodified envelope verifies (so the refusals below are about the change)", () => {
    expect(verifyRelease(wire(envelope), root, time).signers).toEqual([releaseKey.keyId]);
  });

  it("any well-typed change of any field fails the signature check", () => {
    const mutation = fc
      .constantFrom(...Object.keys(fieldMutations).filter((k) => k !== "_any"))
      .chain((path) => (fieldMutations[path] as fc.Arbitrary<unknown>).map((value) => ({ path, value })));
    fc.assert(
      fc.property(mutation, ({ path, value }) => {
        const signed = setPath(release as unknown as Record<string, unknown>, path, value);
        fc.pre(canonicalize(signed) !== canonicalize(release));
        fc.pre(ReleaseSignedSchema.safeParse(signed).success);
        expect(() => verifyRelease({ signed, signatures: envelope.signatures }, root, time)).toThrow(
          ThresholdError,
        );
      }),
      { numRuns: 300 },
    );
  });

  it("any value of any type at any field is refused", () => {
    const mutation = fc.record({ path: fc.constantFrom(...leafPaths), value: fc.jsonValue() });
    fc.assert(
      fc.property(mutation, ({ path, value }) => {
        const signed = setPath(release as unknown as Record<string, unknown>, path, value);
        fc.pre(canonicalize(signed) !== canonicalize(release));
        expect(() => verifyRelease({ signed, signatures: envelope.signatures }, root, time)).toThrow();
      }),
      { numRuns: 300 },
    );
  });

  it("an extra member anywhere in the signed body is refused as unknown", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("", "image"),
        fc
          .string({ minLength: 1 })
          .filter((k) => !(k in release) && !(k in release.image) && k !== "__proto__"),
        fc.jsonValue(),
        (where, name, value) => {
          const signed = structuredClone(release) as unknown as Record<string, Record<string, unknown>>;
          const target = where === "" ? signed : (signed[where] as Record<string, unknown>);
          target[name] = value;
          expect(() => verifyRelease({ signed, signatures: envelope.signatures }, root, time)).toThrow(
            SchemaError,
          );
        },
      ),
    );
  });

  it("any single-character edit of the canonical text that still parses fails", () => {
    const text = canonicalize(release);
    fc.assert(
      fc.property(fc.nat(text.length - 1), fc.string({ minLength: 1, maxLength: 1 }), (at, ch) => {
        const edited = text.slice(0, at) + ch + text.slice(at + 1);
        let signed: unknown;
        try {
          signed = JSON.parse(edited);
        } catch {
          fc.pre(false);
        }
        // An edit can make a number too large for a double (1e999 parses as Infinity), which has no
        // canonical form at all: that text is not the signed one either, and must still be refused.
        let same = false;
        try {
          same = canonicalize(signed) === text;
        } catch {
          same = false;
        }
        fc.pre(!same);
        expect(() => verifyRelease({ signed, signatures: envelope.signatures }, root, time)).toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it("any flipped bit in a signature fails", () => {
    const sig = envelope.signatures[0]?.sig ?? "";
    fc.assert(
      fc.property(fc.nat(sig.length - 1), fc.integer({ min: 1, max: 15 }), (at, x) => {
        const nibble = (Number.parseInt(sig[at] ?? "0", 16) ^ x).toString(16);
        const bad = { keyId: releaseKey.keyId, sig: sig.slice(0, at) + nibble + sig.slice(at + 1) };
        expect(() => verifyRelease({ signed: release, signatures: [bad] }, root, time)).toThrow(
          ThresholdError,
        );
      }),
    );
  });

  it("the same holds for trust roots: any well-typed edit breaks the root signature", () => {
    const env = sign(root, [rootKey]);
    expect(verifyInitialRoot(wire(env), time)).toEqual(root);
    fc.assert(
      fc.property(
        fc.record({
          version: fc.integer({ min: 2, max: 1000 }),
          threshold: fc.constant(1),
          expiresAt: timestamp.filter((t) => Date.parse(t) > NOW.getTime() && t !== root.expiresAt),
        }),
        fc.constantFrom("version", "expiresAt"),
        (values, field) => {
          const signed = { ...root, [field]: values[field as "version" | "expiresAt"] };
          expect(() => verifyInitialRoot({ signed, signatures: env.signatures }, time)).toThrow(
            ThresholdError,
          );
        },
      ),
    );
  });
});
