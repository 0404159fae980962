/**
 * Wave buckets (docs/architecture.md#waves-without-per-device-calls). Each device belongs, from registration, to
 * one of 100 bucket thing groups of its fleet. bucket = first 4 bytes of SHA-256(thing name) read as a
 * big-endian unsigned integer, mod 100. SHA-256 spreads any naming scheme (serials, sequential ids)
 * evenly, is stable across languages and releases, and 2^32 mod 100 leaves a bias below 1e-7.
 */
import { createHash } from "node:crypto";

export const BUCKET_COUNT = 100;

export function bucketOf(thingName: string): number {
  return createHash("sha256").update(thingName, "utf8").digest().readUInt32BE(0) % BUCKET_COUNT;
}

export function bucketGroupName(fleet: string, bucket: number): string {
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= BUCKET_COUNT) {
    throw new RangeError(`bucket must be an integer 0–${BUCKET_COUNT - 1}, got ${bucket}`);
  }
  return `${fleet}-b${String(bucket).padStart(2, "0")}`;
}

/** Buckets [from, to) reached once a rollout has covered `percent` % of the fleet (rounded up). */
export function bucketsUpTo(percent: number): number {
  if (!(percent > 0 && percent <= 100)) throw new RangeError(`percent must be in (0, 100], got ${percent}`);
  return Math.min(BUCKET_COUNT, Math.ceil(percent - 1e-9));
}

/** The buckets a wave adds when the cumulative coverage moves from `previousPercent` to `percent`. */
export function waveBuckets(previousPercent: number, percent: number): number[] {
  const from = previousPercent <= 0 ? 0 : bucketsUpTo(previousPercent);
  const to = bucketsUpTo(percent);
  const out: number[] = [];
  for (let b = from; b < to; b++) out.push(b);
  return out;
}
