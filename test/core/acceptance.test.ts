import { describe, expect, it } from "vitest";
import { checkAcceptance, checkImageDigest } from "../../core/acceptance.ts";
import { AcceptanceCode, AcceptanceError, ImageMismatchError } from "../../core/errors.ts";
import { makeRelease } from "./fixtures.ts";

const release = makeRelease({ version: "1.2.0", releaseCounter: 12, compatible: ["pc-x86_64", "rpi4"] });
const installed = { version: "1.1.0", releaseCounter: 11 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof AcceptanceError) return err.code;
    throw err;
  }
  return undefined;
}

describe("checkAcceptance", () => {
  it("accepts a newer release on listed hardware whose version the job names", () => {
    expect(checkAcceptance({ release, installed, hardware: "rpi4", jobVersion: "1.2.0" })).toEqual({
      kind: "upgrade",
      release,
    });
    expect(checkAcceptance({ release, installed: null, hardware: "pc-x86_64" })).toEqual({
      kind: "upgrade",
      release,
    });
  });

  it("accepts the same release again (re-delivered job)", () => {
    const same = { version: "1.2.0", releaseCounter: 12 };
    expect(checkAcceptance({ release, installed: same, hardware: "rpi4" })).toEqual({
      kind: "same-release",
      release,
    });
  });

  it("refuses a job whose version differs from the signed manifest's (director vs repository)", () => {
    const fn = () => checkAcceptance({ release, installed, hardware: "rpi4", jobVersion: "1.3.0" });
    expect(codeOf(fn)).toBe(AcceptanceCode.VersionMismatch);
    expect(fn).toThrow("job asks for version 1.3.0 but the signed manifest is for 1.2.0");
  });

  it("refuses hardware not in compatible, listing what is", () => {
    const fn = () => checkAcceptance({ release, installed, hardware: "rpi3" });
    expect(codeOf(fn)).toBe(AcceptanceCode.Incompatible);
    expect(fn).toThrow("hardware rpi3 is not in the release's compatible list [pc-x86_64, rpi4]");
  });

  it("refuses a lower releaseCounter (anti-rollback) even with a higher version", () => {
    const fn = () =>
      checkAcceptance({ release, installed: { version: "1.0.0", releaseCounter: 13 }, hardware: "rpi4" });
    expect(codeOf(fn)).toBe(AcceptanceCode.Downgrade);
    expect(fn).toThrow("releaseCounter 12 is below the installed 13 (1.0.0)");
  });

  it("refuses an equal counter with a different version", () => {
    const fn = () =>
      checkAcceptance({ release, installed: { version: "1.1.9", releaseCounter: 12 }, hardware: "rpi4" });
    expect(codeOf(fn)).toBe(AcceptanceCode.EqualCounter);
  });

  it("refuses a higher counter with an older or equal version (downgrade)", () => {
    expect(
      codeOf(() =>
        checkAcceptance({ release, installed: { version: "1.3.0", releaseCounter: 5 }, hardware: "rpi4" }),
      ),
    ).toBe(AcceptanceCode.Downgrade);
    expect(
      codeOf(() =>
        checkAcceptance({ release, installed: { version: "1.2.0", releaseCounter: 5 }, hardware: "rpi4" }),
      ),
    ).toBe(AcceptanceCode.Downgrade);
  });

  it("checks the job version before anything else", () => {
    const fn = () =>
      checkAcceptance({
        release,
        installed: { version: "9.0.0", releaseCounter: 99 },
        hardware: "x",
        jobVersion: "2.0.0",
      });
    expect(codeOf(fn)).toBe(AcceptanceCode.VersionMismatch);
  });
});

describe("checkImageDigest", () => {
  const expected = { size: 4096, sha256: "a".repeat(64) };
  it("passes when both match", () => {
    expect(() => checkImageDigest(expected, { ...expected })).not.toThrow();
  });
  it("names size and hash mismatches with expected and actual", () => {
    expect(() => checkImageDigest(expected, { size: 4095, sha256: expected.sha256 })).toThrow(
      "image size mismatch: expected 4096, got 4095",
    );
    const err = (() => {
      try {
        checkImageDigest(expected, { size: 4096, sha256: "b".repeat(64) });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ImageMismatchError);
    expect(err).toMatchObject({ field: "sha256", expected: "a".repeat(64), actual: "b".repeat(64) });
  });
});
