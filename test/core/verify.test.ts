import { describe, expect, it } from "vitest";
import {
  describeError,
  ExpiredError,
  KeyIdMismatchError,
  RootRotationError,
  SchemaError,
  ThresholdError,
} from "../../core/errors.ts";
import { signValue } from "../../core/keys.ts";
import {
  effectiveTime,
  verifyInitialRoot,
  verifyRelease,
  verifyRole,
  verifyRootUpdate,
  walkRootChain,
} from "../../core/verify.ts";
import { key, makeRelease, makeRoot, NOW, sign, wire } from "./fixtures.ts";

const [r1, r2, r3, rel1, rel2, rel3, outsider] = [1, 2, 3, 11, 12, 13, 99].map(key) as [
  ReturnType<typeof key>,
  ReturnType<typeof key>,
  ReturnType<typeof key>,
  ReturnType<typeof key>,
  ReturnType<typeof key>,
  ReturnType<typeof key>,
  ReturnType<typeof key>,
];

const root1 = makeRoot({
  rootKeys: [r1, r2, r3],
  rootThreshold: 2,
  releaseKeys: [rel1, rel2, rel3],
  releaseThreshold: 2,
});
const time = { now: NOW };

describe("verifyRelease", () => {
  it("accepts a release signed by a threshold of release keys and reports who signed", () => {
    // Prepare
    const release = makeRelease();
    // Act
    const v = verifyRelease(wire(sign(release, [rel1, rel3])), root1, time);
    // Assess
    expect(v.release).toEqual(release);
    expect(v.signers.sort()).toEqual([rel1.keyId, rel3.keyId].sort());
    // No time to persist: only an accepted release may move trusted time (core/acceptance.ts).
    expect(Object.keys(v).sort()).toEqual(["release", "signers"]);
  });

  it("refuses one signature short of the threshold, naming have/need", () => {
    const env = sign(makeRelease(), [rel1]);
    expect(() => verifyRelease(env, root1, time)).toThrow(ThresholdError);
    expect(() => verifyRelease(env, root1, time)).toThrow(/1 valid signature\(s\) of 2 needed/);
  });

  it("counts duplicate signatures by one key once", () => {
    const env = sign(makeRelease(), [rel1, rel1, rel1]);
    expect(env.signatures).toHaveLength(3);
    expect(() => verifyRelease(env, root1, time)).toThrow(/1 valid signature\(s\) of 2 needed/);
  });

  it("ignores signatures by keys the release role does not trust, even root keys", () => {
    const env = sign(makeRelease(), [rel1, outsider, r1, r2]);
    const err = (() => {
      try {
        verifyRelease(env, root1, time);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ThresholdError);
    expect((err as ThresholdError).have).toBe(1);
    expect(describeError(err)).toContain(`key ${outsider.keyId.slice(0, 16)}… is not trusted for release`);
  });

  it("refuses an edited manifest field (signature no longer verifies)", () => {
    const env = sign(makeRelease(), [rel1, rel2]);
    const edited = { ...env, signed: { ...env.signed, releaseCounter: 13 } };
    expect(() => verifyRelease(edited, root1, time)).toThrow(/does not verify/);
  });

  it("refuses a signature claiming a trusted key id but made by another key", () => {
    const release = makeRelease();
    const forged = { keyId: rel2.keyId, sig: signValue(release, outsider).sig };
    const env = { signed: release, signatures: [signValue(release, rel1), forged] };
    expect(() => verifyRelease(env, root1, time)).toThrow(ThresholdError);
  });

  it("refuses an expired manifest, naming the expiry and the trusted time", () => {
    const env = sign(makeRelease({ expiresAt: "2030-05-31T23:59:59Z" }), [rel1, rel2]);
    expect(() => verifyRelease(env, root1, time)).toThrow(ExpiredError);
    expect(() => verifyRelease(env, root1, time)).toThrow(
      "release 1.2.0 manifest expired at 2030-05-31T23:59:59Z (trusted time is 2030-06-01T00:00:00.000Z)",
    );
  });

  it("treats expiresAt equal to now as expired", () => {
    const env = sign(makeRelease({ expiresAt: "2030-06-01T00:00:00Z" }), [rel1, rel2]);
    expect(() => verifyRelease(env, root1, time)).toThrow(ExpiredError);
  });

  it("refuses any release when the root has expired", () => {
    const expiredRoot = { ...root1, expiresAt: "2030-01-01T00:00:00Z" };
    const env = sign(makeRelease(), [rel1, rel2]);
    expect(() => verifyRelease(env, expiredRoot, time)).toThrow(/trust root version 1 expired at 2030-01-01/);
  });

  it("a clock moved backwards cannot revive an expired manifest: latestKnown wins", () => {
    const env = sign(makeRelease({ expiresAt: "2030-07-01T00:00:00Z" }), [rel1, rel2]);
    const backwards = {
      now: new Date("2030-06-01T00:00:00Z"),
      latestKnown: new Date("2030-07-02T00:00:00Z"),
    };
    expect(effectiveTime(backwards).toISOString()).toBe("2030-07-02T00:00:00.000Z");
    expect(() => verifyRelease(env, root1, backwards)).toThrow(/trusted time is 2030-07-02/);
    // The same manifest is fine with the honest clock and no later knowledge.
    expect(() => verifyRelease(env, root1, { now: backwards.now })).not.toThrow();
  });

  it("counts one public key listed under two key ids once (threshold counts keys)", () => {
    // A root hand-built past parseRootEnvelope: rel1's key also listed under a forged id.
    const forged = "f".repeat(64);
    const root = makeRoot({ rootKeys: [r1], releaseKeys: [rel1], releaseThreshold: 1 });
    root.keys[forged] = root.keys[rel1.keyId] as (typeof root.keys)[string];
    root.roles.release = { keyIds: [rel1.keyId, forged], threshold: 2 };
    const release = makeRelease();
    const sig = signValue(release, rel1);
    const env = { signed: release, signatures: [sig, { keyId: forged, sig: sig.sig }] };
    expect(() => verifyRole(env.signed, env.signatures, root, "release")).toThrow(
      /1 valid signature\(s\) of 2 needed.*not the SHA-256 of its public key/,
    );
  });

  it("refuses schema problems in the signed body before counting signatures", () => {
    const env = sign({ ...makeRelease(), extra: true }, [rel1, rel2]);
    expect(() => verifyRelease(env, root1, time)).toThrow(SchemaError);
    expect(() => verifyRelease(env, root1, time)).toThrow(/Unrecognized key: "extra"/);
  });
});

describe("trust root", () => {
  it("root 1 must meet its own root threshold", () => {
    expect(verifyInitialRoot(wire(sign(root1, [r1, r2])), time)).toEqual(root1);
    expect(() => verifyInitialRoot(sign(root1, [r1]), time)).toThrow(
      /root role \(root v1\): 1 valid signature\(s\) of 2/,
    );
    // Release keys cannot sign for the root role.
    expect(() => verifyInitialRoot(sign(root1, [r1, rel1]), time)).toThrow(ThresholdError);
  });

  it("refuses a root whose key id is not the SHA-256 of its public key (KeyIdMismatchError)", () => {
    // One release key listed under its own id and a made-up one: a threshold of 2 met by one key.
    const forged = "e".repeat(64);
    const root = makeRoot({ rootKeys: [r1], releaseKeys: [rel1] });
    root.keys[forged] = root.keys[rel1.keyId] as (typeof root.keys)[string];
    root.roles.release = { keyIds: [rel1.keyId, forged], threshold: 2 };
    const err = (() => {
      try {
        verifyInitialRoot(wire(sign(root, [r1])), time);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(KeyIdMismatchError);
    expect((err as KeyIdMismatchError).issues).toEqual([
      { path: `keys.${forged}`, message: `key id is not the SHA-256 of its public key (${rel1.keyId})` },
    ]);
    // The same refusal for a rotation to such a root.
    const next = { ...root, version: 2 };
    expect(() => verifyRootUpdate(makeRoot({ rootKeys: [r1] }), wire(sign(next, [r1])))).toThrow(
      KeyIdMismatchError,
    );
  });

  it("refuses an expired root 1", () => {
    const old = { ...root1, expiresAt: "2030-01-01T00:00:00Z" };
    expect(() => verifyInitialRoot(sign(old, [r1, r2]), time)).toThrow(ExpiredError);
  });

  // Root 2 drops r3 and adds r4; thresholds stay 2.
  const r4 = key(4);
  const root2 = makeRoot({
    version: 2,
    rootKeys: [r1, r2, r4],
    rootThreshold: 2,
    releaseKeys: [rel1, rel2],
    releaseThreshold: 1,
  });

  it("rotation needs a threshold of the old root keys AND of the new ones", () => {
    // r1+r2 are in both roots: enough for both.
    expect(verifyRootUpdate(root1, wire(sign(root2, [r1, r2])))).toEqual(root2);
    // r3 (old only) + r4 (new only): one of each, short on both sides.
    expect(() => verifyRootUpdate(root1, sign(root2, [r3, r4]))).toThrow(
      /trust root v1 \(old keys\): 1 valid/,
    );
    // Old keys only: r1+r3 meet the old threshold, but r3 is gone from root 2 → 1 of 2 there.
    expect(() => verifyRootUpdate(root1, sign(root2, [r1, r3]))).toThrow(
      /trust root v2 \(new keys\): 1 valid/,
    );
    // New keys only: r4 + r1 → old has only r1.
    expect(() => verifyRootUpdate(root1, sign(root2, [r4, r1]))).toThrow(
      /trust root v1 \(old keys\): 1 valid/,
    );
  });

  it("refuses version gaps and replays", () => {
    const root3 = { ...root2, version: 3 };
    expect(() => verifyRootUpdate(root1, sign(root3, [r1, r2]))).toThrow(RootRotationError);
    expect(() => verifyRootUpdate(root1, sign(root3, [r1, r2]))).toThrow(
      "trust root version 3 cannot follow version 1: expected 2",
    );
    expect(() => verifyRootUpdate(root1, sign(root1, [r1, r2]))).toThrow(/cannot follow version 1/);
  });

  it("walks a chain forward and trusts the last root's keys", () => {
    const root3 = makeRoot({ version: 3, rootKeys: [r2, r4], rootThreshold: 2, releaseKeys: [rel3] });
    const chain = [wire(sign(root2, [r1, r2])), wire(sign(root3, [r1, r2, r4]))];
    const last = walkRootChain(root1, chain, time);
    expect(last).toEqual(root3);
    // rel3 is trusted only by root 3; rel1 is no longer.
    expect(verifyRelease(sign(makeRelease(), [rel3]), last, time).signers).toEqual([rel3.keyId]);
    expect(() => verifyRelease(sign(makeRelease(), [rel1]), last, time)).toThrow(ThresholdError);
  });

  it("an out-of-order chain is refused", () => {
    const root3 = makeRoot({ version: 3, rootKeys: [r2, r4], rootThreshold: 2 });
    const chain = [sign(root3, [r1, r2, r4]), sign(root2, [r1, r2])];
    expect(() => walkRootChain(root1, chain, time)).toThrow(RootRotationError);
  });

  it("intermediate roots may be expired; the last one may not", () => {
    const expired2 = { ...root2, expiresAt: "2030-01-01T00:00:00Z" };
    const root3 = makeRoot({ version: 3, rootKeys: [r1, r2], rootThreshold: 2 });
    expect(walkRootChain(root1, [sign(expired2, [r1, r2]), sign(root3, [r1, r2])], time).version).toBe(3);
    expect(() => walkRootChain(root1, [sign(expired2, [r1, r2])], time)).toThrow(
      /trust root version 2 expired/,
    );
  });

  it("a rotated-out release key no longer counts", () => {
    const release = makeRelease();
    // rel3 signs alone; root 1 trusts rel3 but root 2 does not list it.
    const root1of1 = {
      ...root1,
      roles: { ...root1.roles, release: { ...root1.roles.release, threshold: 1 } },
    };
    expect(verifyRelease(sign(release, [rel3]), root1of1, time).signers).toEqual([rel3.keyId]);
    const current = walkRootChain(root1of1, [sign(root2, [r1, r2])], time);
    expect(() => verifyRelease(sign(release, [rel3]), current, time)).toThrow(/is not trusted for release/);
  });

  it("verifyRole lists the keys that counted", () => {
    const release = makeRelease();
    expect(verifyRole(release, sign(release, [rel2, rel1]).signatures, root1, "release")).toEqual([
      rel2.keyId,
      rel1.keyId,
    ]);
  });
});
