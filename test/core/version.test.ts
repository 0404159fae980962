import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseDurationSeconds } from "../../core/duration.ts";
import { DurationError } from "../../core/errors.ts";
import { compareVersions, isSemver } from "../../core/version.ts";

describe("compareVersions (semver 2.0.0 §11)", () => {
  // The precedence chain from §11, lowest first.
  const chain = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
  ];
  it("orders the spec's example chain", () => {
    for (let i = 0; i < chain.length; i++) {
      for (let j = 0; j < chain.length; j++) {
        expect(compareVersions(chain[i] as string, chain[j] as string)).toBe(Math.sign(i - j));
      }
    }
  });

  it("ignores build metadata", () => {
    expect(compareVersions("1.0.0+build.1", "1.0.0+build.2")).toBe(0);
  });

  it("is antisymmetric", () => {
    const v = fc.tuple(fc.nat(30), fc.nat(30), fc.nat(30)).map((t) => t.join("."));
    fc.assert(
      fc.property(v, v, (a, b) => {
        expect(compareVersions(a, b)).toBe(-compareVersions(b, a) || 0);
      }),
    );
  });

  it("compares numeric identifiers above 2^53 exactly (core and pre-release)", () => {
    // Both numbers round to 9007199254740992 as a Number.
    expect(compareVersions("9007199254740993.0.0", "9007199254740992.0.0")).toBe(1);
    expect(compareVersions("1.0.9007199254740992", "1.0.9007199254740993")).toBe(-1);
    expect(compareVersions("1.0.0-rc.9007199254740993", "1.0.0-rc.9007199254740992")).toBe(1);
    expect(compareVersions("1.0.0-99999999999999999999", "1.0.0-99999999999999999999")).toBe(0);
  });

  it("orders big numeric identifiers as BigInt does", () => {
    const big = fc.bigInt({ min: 0n, max: 2n ** 80n });
    fc.assert(
      fc.property(big, big, (a, b) => {
        const expected = a === b ? 0 : a < b ? -1 : 1;
        expect(compareVersions(`1.${a}.0`, `1.${b}.0`)).toBe(expected);
        expect(compareVersions(`1.0.0-x.${a}`, `1.0.0-x.${b}`)).toBe(expected);
      }),
    );
  });

  it("recognises semver and refuses the rest", () => {
    expect(isSemver("1.2.3-rc.1+b5")).toBe(true);
    for (const bad of ["1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3-01", ""])
      expect(isSemver(bad)).toBe(false);
    expect(() => compareVersions("1.2", "1.2.3")).toThrow(/not a semantic version/);
  });
});

describe("parseDurationSeconds", () => {
  it("reads the units operators type", () => {
    expect(parseDurationSeconds("90d")).toBe(90 * 86400);
    expect(parseDurationSeconds("2h")).toBe(7200);
    expect(parseDurationSeconds("1w")).toBe(604800);
    expect(parseDurationSeconds("30")).toBe(30);
    expect(parseDurationSeconds("1.5m")).toBe(90);
  });
  it("refuses nonsense and non-positive durations", () => {
    for (const bad of ["", "d", "10y", "-1d", "0", "1e3"])
      expect(() => parseDurationSeconds(bad)).toThrow(DurationError);
  });
});
