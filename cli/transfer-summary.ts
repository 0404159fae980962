/**
 * Bytes saved by delta updates in a rollout (docs/delta.md), from the status details each device reported
 * with its outcome (`transfer`, `bytesFetched`, `imageBytes`). Details are device input: a value that is
 * not a plain non-negative integer is left out of the sums, never trusted.
 */
import type { DeviceOutcome } from "../functions/rollout/model.ts";

export interface TransferTotals {
  devices: number;
  delta: number;
  fetched: number;
  imageBytes: number;
}

const count = (v: string | undefined): number | null =>
  v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : null;

export function transferTotals(devices: ReadonlyArray<DeviceOutcome>): TransferTotals {
  const t: TransferTotals = { devices: 0, delta: 0, fetched: 0, imageBytes: 0 };
  for (const d of devices) {
    const details = d.statusDetails ?? {};
    const fetched = count(details.bytesFetched);
    const size = count(details.imageBytes);
    if (fetched === null || size === null) continue;
    t.devices++;
    if (details.transfer === "delta") t.delta++;
    t.fetched += fetched;
    t.imageBytes += size;
  }
  return t;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** One status line, or null when no device reported how its image came. */
export function transferLine(devices: ReadonlyArray<DeviceOutcome>): string | null {
  const t = transferTotals(devices);
  if (t.devices === 0) return null;
  const saved = Math.max(0, t.imageBytes - t.fetched);
  const pct = t.imageBytes > 0 ? Math.round((saved * 100) / t.imageBytes) : 0;
  return `  transfer: ${t.delta} of ${t.devices} device(s) by delta — fetched ${mb(t.fetched)} of ${mb(t.imageBytes)}, ${mb(saved)} saved (${pct} %)`;
}
