import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalBytes, canonicalize } from "../../core/canonical-json.ts";
import { CanonicalJsonError } from "../../core/errors.ts";

/** An IEEE 754 double from its 16 hex digits, as RFC 8785 Appendix B lists them. */
function fromBits(hex: string): number {
  const b = Buffer.from(hex, "hex");
  return b.readDoubleBE(0);
}

describe("RFC 8785 test vectors", () => {
  it.each([
    // RFC 8785 Appendix B: IEEE 754 bits → canonical text.
    ["0000000000000000", "0"],
    ["8000000000000000", "0"], // -0 serialises as 0
    ["0000000000000001", "5e-324"],
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"],
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"],
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"],
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"],
  ])("number %s → %s", (bits, text) => {
    expect(canonicalize(fromBits(bits))).toBe(text);
  });

  it("formats the boundary numbers the RFC calls out", () => {
    expect(canonicalize(1e21)).toBe("1e+21");
    expect(canonicalize(1e20)).toBe("100000000000000000000");
    expect(canonicalize(1e-7)).toBe("1e-7");
    expect(canonicalize(1e-6)).toBe("0.000001");
    expect(canonicalize(-0)).toBe("0");
    expect(canonicalize(4.5)).toBe("4.5");
  });

  it("canonicalizes the §3.2.2 example", () => {
    // The RFC's input, written as JSON text so the parser produces exactly its numbers and escapes.
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    );
    expect(canonicalize(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it("sorts member names by UTF-16 code units (§3.2.3 example)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // 😀 (U+1F600, surrogates D83D DE00) sorts before U+FB33 by code unit, though after it by code point.
    expect(canonicalize(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("escapes control characters in short form where JSON has one, else \\u00xx lower-case", () => {
    expect(canonicalize("\b\t\n\f\r\u0001\u001f\u007f")).toBe('"\\b\\t\\n\\f\\r\\u0001\\u001f\u007f"');
  });

  it("produces UTF-8 bytes", () => {
    expect(Buffer.from(canonicalBytes({ a: "€" })).toString("hex")).toBe(
      Buffer.from('{"a":"€"}', "utf8").toString("hex"),
    );
  });

  it("refuses values with no JSON form, naming where they are", () => {
    expect(() => canonicalize({ a: [1, Number.NaN] })).toThrow(CanonicalJsonError);
    expect(() => canonicalize({ a: [1, Number.NaN] })).toThrow("$.a[1]: NaN has no JSON form");
    expect(() => canonicalize({ b: Number.POSITIVE_INFINITY })).toThrow(/\$\.b: Infinity/);
    expect(() => canonicalize([undefined])).toThrow(/\$\[0\]: a undefined/);
    expect(() => canonicalize({ n: 1n })).toThrow(/a bigint/);
  });

  it("refuses lone surrogates (RFC 8785 §3.2.2.2 requires well-formed strings)", () => {
    expect(() => canonicalize("\ud800")).toThrow(CanonicalJsonError);
    expect(() => canonicalize({ "\udc00x": 1 })).toThrow(/lone surrogate/);
    expect(canonicalize("\ud83d\ude00")).toBe('"😀"');
  });
});

/** JSON values as they come off the wire: what JSON.parse can return. */
const jsonValue = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);

function shuffleKeys(value: unknown, rnd: () => number): unknown {
  if (Array.isArray(value)) return value.map((v) => shuffleKeys(v, rnd));
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).sort(() => rnd() - 0.5);
    return Object.fromEntries(entries.map(([k, v]) => [k, shuffleKeys(v, rnd)]));
  }
  return value;
}

describe("canonical JSON properties", () => {
  it("does not depend on member insertion order", () => {
    fc.assert(
      fc.property(jsonValue, fc.integer(), (v, seed) => {
        let s = seed;
        const rnd = () => {
          s = (s * 1103515245 + 12345) & 0x7fffffff;
          return s / 0x7fffffff;
        };
        expect(canonicalize(shuffleKeys(v, rnd))).toBe(canonicalize(v));
      }),
    );
  });

  it("parses back to the same value", () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        expect(JSON.parse(canonicalize(v))).toEqual(v);
      }),
    );
  });

  it("is idempotent", () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        const once = canonicalize(v);
        expect(canonicalize(JSON.parse(once))).toBe(once);
      }),
    );
  });

  it("writes flat objects as sorted members with no whitespace", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: "binary" }), fc.integer()), (v) => {
        // Default JS sort compares UTF-16 code units, which is exactly RFC 8785 §3.2.3.
        const expected = `{${Object.keys(v)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${v[k]}`)
          .join(",")}}`;
        expect(canonicalize(v)).toBe(expected);
      }),
    );
  });
});
