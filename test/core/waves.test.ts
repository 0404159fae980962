import { describe, expect, it } from "vitest";
import { BUCKET_COUNT, bucketGroupName, bucketOf, bucketsUpTo, waveBuckets } from "../../core/waves.ts";

describe("bucketOf", () => {
  it("is stable: fixed names map to fixed buckets (changing the function would move every device)", () => {
    // first 4 bytes of SHA-256(name), big-endian, mod 100. For "": SHA-256 starts e3b0c442 = 3820012610 → 10.
    expect(bucketOf("")).toBe(10);
    expect(["device-0", "device-1", "device-2", "thing-42", "rpi4-00000000deadbeef"].map(bucketOf)).toEqual([
      22, 45, 3, 53, 60,
    ]);
  });

  it("spreads a million sequential names within a few percent of uniform per bucket", () => {
    const n = 1_000_000;
    const counts = new Array<number>(BUCKET_COUNT).fill(0);
    for (let i = 0; i < n; i++) {
      const b = bucketOf(`device-${i}`);
      counts[b] = (counts[b] ?? 0) + 1;
    }
    const expected = n / BUCKET_COUNT;
    const worst = Math.max(...counts.map((c) => Math.abs(c - expected) / expected));
    // Binomial σ ≈ 1 % of 10 000; 5 % is a 5σ bound that a broken hash (e.g. mod of a counter) misses widely.
    expect(worst).toBeLessThan(0.05);
    expect(counts.every((c) => c > 0)).toBe(true);
  });

  it("always returns an integer 0–99", () => {
    for (const name of ["a", "ä", "😀", "x".repeat(128)]) {
      const b = bucketOf(name);
      expect(Number.isInteger(b) && b >= 0 && b < 100).toBe(true);
    }
  });
});

describe("wave math", () => {
  it("names bucket groups with two digits", () => {
    expect(bucketGroupName("prod", 0)).toBe("prod-b00");
    expect(bucketGroupName("prod", 99)).toBe("prod-b99");
    expect(() => bucketGroupName("prod", 100)).toThrow(RangeError);
    expect(() => bucketGroupName("prod", 1.5)).toThrow(RangeError);
  });

  it("covers percentages by whole buckets, rounding up", () => {
    expect(bucketsUpTo(1)).toBe(1);
    expect(bucketsUpTo(10)).toBe(10);
    expect(bucketsUpTo(0.5)).toBe(1);
    expect(bucketsUpTo(33.3)).toBe(34);
    expect(bucketsUpTo(100)).toBe(100);
    expect(() => bucketsUpTo(0)).toThrow(RangeError);
    expect(() => bucketsUpTo(101)).toThrow(RangeError);
  });

  it("each wave adds exactly the buckets between the previous and the new coverage", () => {
    expect(waveBuckets(0, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(waveBuckets(10, 12)).toEqual([10, 11]);
    expect(waveBuckets(50, 50)).toEqual([]);
    const plan = [1, 5, 25, 50, 100];
    const all = plan.flatMap((p, i) => waveBuckets(i === 0 ? 0 : (plan[i - 1] as number), p));
    expect(all).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});
