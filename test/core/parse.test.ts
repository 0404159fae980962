/** Bad input in every shape is refused with the field path and reason, before any signature is looked at. */
import { describe, expect, it } from "vitest";
import { describeError, SchemaError, StrictJsonError } from "../../core/errors.ts";
import { MAX_JSON_BYTES, parseJsonText, parseJsonWith } from "../../core/parse.ts";
import { RootSignedSchema } from "../../core/schemas.ts";
import { parseReleaseEnvelope, parseRootEnvelope, verifyRelease } from "../../core/verify.ts";
import { key, makeRelease, makeRoot, NOW, sign, wire } from "./fixtures.ts";

const k = key(5);
const root = makeRoot({ rootKeys: [k] });
const good = wire(sign(makeRelease(), [k])) as { signed: Record<string, unknown>; signatures: unknown[] };

function issues(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    if (err instanceof SchemaError) return [...err.issues];
    throw err;
  }
  throw new Error("expected a SchemaError");
}

describe("JSON text", () => {
  it("refuses malformed JSON, naming the document", () => {
    expect(() => parseJsonText('{"signed": ', "release manifest x.json")).toThrow(
      /invalid release manifest x\.json: signed: not valid UTF-8 JSON \(unexpected end of text at offset 11\)/,
    );
  });

  it("refuses invalid UTF-8 bytes instead of replacing them", () => {
    const bytes = new Uint8Array([...Buffer.from('{"a":"'), 0xc3, 0x28, ...Buffer.from('"}')]);
    expect(() => parseJsonText(bytes, "doc")).toThrow(/not valid UTF-8 JSON/);
    // A valid multi-byte sequence is fine.
    expect(parseJsonText(new Uint8Array(Buffer.from('{"a":"é"}')), "doc")).toEqual({ a: "é" });
  });

  it("refuses documents over 1 MiB before parsing them", () => {
    const huge = `{"a":"${"x".repeat(MAX_JSON_BYTES)}"}`;
    expect(() => parseJsonText(huge, "doc")).toThrow(
      `document is ${huge.length} bytes, limit is ${MAX_JSON_BYTES}`,
    );
    expect(() => parseJsonText(new Uint8Array(MAX_JSON_BYTES + 1), "doc")).toThrow(/limit is 1048576/);
    // Exactly at the limit is still parsed.
    const edge = `"${"x".repeat(MAX_JSON_BYTES - 2)}"`;
    expect(parseJsonText(edge, "doc")).toHaveLength(MAX_JSON_BYTES - 2);
  });

  it("counts the limit in UTF-8 bytes, not characters", () => {
    const s = `"${"é".repeat(MAX_JSON_BYTES / 2)}"`; // 2 bytes each: over the limit in bytes
    expect(s.length).toBeLessThan(MAX_JSON_BYTES);
    expect(() => parseJsonText(s, "doc")).toThrow(/limit is/);
  });
});

describe("signed JSON where no member name is special", () => {
  const text = JSON.stringify(good);
  // The member goes inside `signed`, as the first member, written the way an attacker would.
  const withMember = (member: string) => text.replace('"signed":{', `"signed":{${member},`);

  it("refuses an unknown member named __proto__ inside signed as an unknown field", () => {
    const doc = withMember('"__proto__":{"releaseCounter":0}');
    expect(() => parseReleaseEnvelope(parseJsonText(doc, "m"))).toThrow(/Unrecognized key: "__proto__"/);
    expect(() => verifyRelease(parseJsonText(doc, "m"), root, { now: NOW })).toThrow(SchemaError);
    // A __proto__ member in the envelope itself is refused the same way.
    const outer = text.replace('{"signed":', '{"__proto__":[],"signed":');
    expect(() => parseReleaseEnvelope(parseJsonText(outer, "m"))).toThrow(/Unrecognized key: "__proto__"/);
  });

  it("refuses a member name given twice, naming its path (canonical JSON would differ)", () => {
    const doc = withMember('"version":"9.9.9"');
    const err = (() => {
      try {
        parseJsonText(doc, "release manifest m");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(StrictJsonError);
    expect((err as StrictJsonError).issues[0]?.path).toBe("signed.version");
    expect(describeError(err)).toMatch(/member "version" appears twice/);
  });

  it("the signed envelope keeps every member as parsed (no rebuild by assignment)", () => {
    const doc = withMember('"__proto__":1');
    const env = parseJsonText(doc, "m") as { signed: object };
    expect(Object.keys(env.signed)).toContain("__proto__");
    expect(Object.getPrototypeOf(env.signed)).toBe(Object.prototype);
  });
});

describe("release envelope schema", () => {
  it("accepts the good envelope", () => {
    expect(parseReleaseEnvelope(good).signed).toEqual(makeRelease());
  });

  it("names missing fields by path", () => {
    const { image: _i, ...noImage } = good.signed;
    expect(issues(() => parseReleaseEnvelope({ ...good, signed: noImage }))).toContainEqual({
      path: "image",
      message: expect.stringMatching(/expected object/),
    });
    expect(issues(() => parseReleaseEnvelope({ signed: good.signed }))).toContainEqual({
      path: "signatures",
      message: expect.stringMatching(/expected array/),
    });
  });

  it("names wrong types by path", () => {
    const signed = { ...good.signed, releaseCounter: "12", compatible: "rpi4" };
    const found = issues(() => parseReleaseEnvelope({ ...good, signed }));
    expect(found.map((i) => i.path).sort()).toEqual(["compatible", "releaseCounter"]);
    expect(issues(() => parseReleaseEnvelope([]))[0]?.path).toBe("");
    expect(issues(() => parseReleaseEnvelope(null))[0]?.path).toBe("");
  });

  it("refuses unknown fields at every level (strict objects)", () => {
    expect(issues(() => parseReleaseEnvelope({ ...good, extra: 1 }))).toContainEqual({
      path: "",
      message: 'Unrecognized key: "extra"',
    });
    const signed = { ...good.signed, image: { ...(good.signed.image as object), compression: "xz" } };
    expect(issues(() => parseReleaseEnvelope({ ...good, signed }))[0]?.path).toBe("image");
    const sigs = [{ ...(good.signatures[0] as object), alg: "ed25519" }];
    expect(issues(() => parseReleaseEnvelope({ ...good, signatures: sigs }))[0]?.path).toBe("signatures[0]");
  });

  it("checks formats: semver, hex digests, timestamps, identifiers, object keys", () => {
    const bad: Array<[string, Record<string, unknown>]> = [
      ["version", { version: "1.2" }],
      ["image.sha256", { image: { ...(good.signed.image as object), sha256: "A".repeat(64) } }],
      ["image.size", { image: { ...(good.signed.image as object), size: 0 } }],
      ["image.key", { image: { ...(good.signed.image as object), key: "releases/../x" } }],
      ["image.format", { image: { ...(good.signed.image as object), format: "ext4" } }],
      ["createdAt", { createdAt: "2030-05-01 00:00" }],
      ["expiresAt", { expiresAt: "2030-05-01T00:00:00+02:00" }],
      ["compatible[0]", { compatible: ["rpi 4"] }],
      ["compatible", { compatible: [] }],
      ["releaseCounter", { releaseCounter: 1.5 }],
      ["releaseCounter", { releaseCounter: -1 }],
      ["schemaVersion", { schemaVersion: 2 }],
      ["_type", { _type: "root" }],
    ];
    for (const [path, patch] of bad) {
      expect(
        issues(() => parseReleaseEnvelope({ ...good, signed: { ...good.signed, ...patch } })).map(
          (i) => i.path,
        ),
      ).toContain(path);
    }
  });

  it("refuses malformed signatures and too many of them", () => {
    const sig = good.signatures[0] as { keyId: string; sig: string };
    expect(
      issues(() => parseReleaseEnvelope({ ...good, signatures: [{ ...sig, sig: "zz" }] }))[0]?.path,
    ).toBe("signatures[0].sig");
    expect(
      issues(() => parseReleaseEnvelope({ ...good, signatures: [{ ...sig, keyId: "ab" }] }))[0]?.path,
    ).toBe("signatures[0].keyId");
    expect(
      issues(() => parseReleaseEnvelope({ ...good, signatures: Array.from({ length: 65 }, () => sig) }))[0]
        ?.path,
    ).toBe("signatures");
  });

  it("verifyRelease reports schema errors from JSON text parsed by the same path", () => {
    const text = JSON.stringify({ ...good, signed: { ...good.signed, os: 7 } });
    expect(() => verifyRelease(parseJsonText(text, "m"), root, { now: NOW })).toThrow(
      /invalid release manifest \(signed\): os: /,
    );
  });
});

describe("trust root schema", () => {
  const signed = makeRoot({ rootKeys: [k, key(6)], rootThreshold: 2 });

  it("refuses a threshold above the keys listed", () => {
    const bad = { ...signed, roles: { ...signed.roles, release: { ...signed.roles.release, threshold: 3 } } };
    expect(issues(() => parseJsonWith(RootSignedSchema, JSON.stringify(bad), "root"))).toContainEqual({
      path: "roles.release.threshold",
      message: "threshold 3 is more than the 2 key(s) listed",
    });
  });

  it("refuses a key listed twice in a role, a role key missing from keys, and a zero threshold", () => {
    const dup = { ...signed, roles: { ...signed.roles, root: { keyIds: [k.keyId, k.keyId], threshold: 1 } } };
    expect(issues(() => parseRootEnvelope({ signed: dup, signatures: [] }))[0]?.message).toBe(
      "lists a key id twice",
    );
    const missing = {
      ...signed,
      roles: { ...signed.roles, root: { keyIds: ["c".repeat(64)], threshold: 1 } },
    };
    expect(issues(() => parseRootEnvelope({ signed: missing, signatures: [] }))[0]).toEqual({
      path: "roles.root.keyIds[0]",
      message: `key ${"c".repeat(64)} is not in keys`,
    });
    const zero = { ...signed, roles: { ...signed.roles, root: { ...signed.roles.root, threshold: 0 } } };
    expect(issues(() => parseRootEnvelope({ signed: zero, signatures: [] }))[0]?.path).toBe(
      "roles.root.threshold",
    );
  });

  it("refuses a version 0 and unknown roles", () => {
    expect(
      issues(() => parseRootEnvelope({ signed: { ...signed, version: 0 }, signatures: [] }))[0]?.path,
    ).toBe("version");
    const extraRole = { ...signed, roles: { ...signed.roles, targets: signed.roles.root } };
    expect(issues(() => parseRootEnvelope({ signed: extraRole, signatures: [] }))[0]?.path).toBe("roles");
  });
});
