/** The strict parser returns what JSON.parse returns for every JSON text, and refuses what it must. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeError } from "../../core/errors.ts";
import { JsonSyntaxError, MAX_JSON_DEPTH, parseStrictJson } from "../../core/strict-json.ts";
import { fuzzRuns } from "../fuzz/runs.ts";

const refused = (text: string) => {
  try {
    parseStrictJson(text);
  } catch (err) {
    return err;
  }
  throw new Error(`accepted ${JSON.stringify(text)}`);
};

describe("parseStrictJson", () => {
  it("equals JSON.parse on any JSON text without repeated member names", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 2), (value, indent) => {
        const text = JSON.stringify(value, null, indent);
        expect(parseStrictJson(text)).toStrictEqual(JSON.parse(text));
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  it("agrees with JSON.parse on what is not JSON at all", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'{}[]":,.-+0123456789eEtrufalsn \\u/') }), (text) => {
        let native: unknown;
        try {
          native = JSON.parse(text);
        } catch {
          expect(refused(text)).toBeInstanceOf(JsonSyntaxError);
          return;
        }
        // JSON.parse accepted: strict agrees unless a member name repeats.
        try {
          expect(parseStrictJson(text)).toStrictEqual(native);
        } catch (err) {
          expect(describeError(err)).toMatch(/appears twice/);
        }
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it("keeps __proto__ as an own member, at any depth", () => {
    const v = parseStrictJson('{"a":{"__proto__":{"polluted":true}},"__proto__":null}') as Record<
      string,
      Record<string, unknown>
    >;
    expect(Object.keys(v)).toEqual(["a", "__proto__"]);
    expect(Object.getOwnPropertyDescriptor(v, "__proto__")?.value).toBeNull();
    expect(Object.getPrototypeOf(v.a)).toBe(Object.prototype);
    expect(Object.keys(v.a as object)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("refuses repeated member names, also when written with escapes", () => {
    expect(refused('{"a":1,"a":1}')).toMatchObject({ path: "a" });
    expect(refused('{"x":{"b":1,"\\u0062":2}}')).toMatchObject({ path: "x.b" });
    expect(refused('{"__proto__":1,"__proto__":2}')).toMatchObject({ path: "__proto__" });
  });

  it("refuses nesting deeper than the limit instead of exhausting the stack", () => {
    const ok = `${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}`;
    expect(parseStrictJson(ok)).toBeInstanceOf(Array);
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    expect((refused(deep) as Error).message).toMatch(/nested deeper than 64 levels/);
  });

  it("refuses trailing text, control characters, bad escapes and unterminated strings", () => {
    for (const bad of [
      '{"a":1} x',
      '"a\nb"',
      '"\\x"',
      '"\\u12"',
      '"abc',
      "[1,]",
      "{,}",
      "",
      "01",
      "+1",
      "1.",
    ]) {
      expect(refused(bad), bad).toBeInstanceOf(JsonSyntaxError);
    }
  });
});
