/**
 * Maintenance windows on the cloud side (docs/fleets.md#maintenance-windows): the fleets' windows as the
 * store keeps them, their state now for the engine's gate (engine.ts applyWindow), and what of them each
 * wave's job carries — the windows in the job document for the agent's own gate, and, where AWS can
 * express them, `schedulingConfig.maintenanceWindows` so IoT itself rolls out only inside one.
 */
import type { MaintenanceWindow as AwsMaintenanceWindow } from "@aws-sdk/client-iot";
import { parseCron } from "../../core/cron.ts";
import {
  combinedWindowState,
  type MaintenanceWindow,
  type WindowState,
} from "../../core/maintenance-window.ts";
import type { WindowStateView } from "../rollout-api/contract.ts";
import type { Store } from "../store.ts";

/** Each fleet's windows, in the order given (a fleet without any: `[]`, no restriction). */
export async function fleetWindowSets(
  store: Store,
  fleets: readonly string[],
): Promise<MaintenanceWindow[][]> {
  return Promise.all(fleets.map(async (f) => (await store.getFleetWindows(f))?.windows ?? []));
}

/** Open when every fleet is inside one of its windows (a wave touches them all). */
export function windowStateOf(sets: ReadonlyArray<readonly MaintenanceWindow[]>, now: number): WindowState {
  return combinedWindowState(sets, now);
}

const iso = (ms: number) => new Date(ms).toISOString();

export function windowStateView(s: WindowState): WindowStateView {
  return {
    open: s.open,
    ...(s.closesAt !== undefined ? { closesAt: iso(s.closesAt) } : {}),
    ...(s.opensAt !== undefined ? { opensAt: iso(s.opensAt) } : {}),
  };
}

/**
 * The windows a wave's job document carries for the agent: the fleets' windows when every fleet has the
 * same ones (one fleet, or fleets managed alike). Fleets with different windows get none in the document —
 * a device cannot tell which fleet's apply to it — and rely on the engine's gate alone.
 */
export function documentWindows(sets: ReadonlyArray<readonly MaintenanceWindow[]>): MaintenanceWindow[] {
  const first = sets[0];
  if (!first || first.length === 0) return [];
  const key = JSON.stringify(first);
  return sets.every((s) => JSON.stringify(s) === key) ? [...first] : [];
}

/** Zones AWS's UTC-only cron can stand for exactly. */
const UTC_ZONES = new Set([
  "UTC",
  "Etc/UTC",
  "GMT",
  "Etc/GMT",
  "Etc/Universal",
  "Universal",
  "Zulu",
  "Etc/Zulu",
]);
const AWS_WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MAX_AWS_CRON = 256;

const listOf = (s: ReadonlySet<number>, names?: readonly string[]) =>
  [...s]
    .sort((a, b) => a - b)
    .map((v) => names?.[v] ?? String(v))
    .join(",");

/**
 * `schedulingConfig.maintenanceWindows` for a wave's CreateJob, or undefined where AWS cannot say the same
 * thing: AWS's start is a cron in UTC, so only windows in UTC pass through (a zone with daylight saving
 * time would drift by an hour for half the year); a cron restricting both day fields (either may match)
 * has no AWS form. The engine's and the agent's gates cover what is not passed.
 */
export function awsMaintenanceWindows(
  windows: readonly MaintenanceWindow[],
): AwsMaintenanceWindow[] | undefined {
  if (windows.length === 0 || !windows.every((w) => UTC_ZONES.has(w.timeZone))) return undefined;
  const out: AwsMaintenanceWindow[] = [];
  for (const w of windows) {
    const c = parseCron(w.cron);
    if (!c.anyDay && !c.anyWeekday) return undefined;
    const fields = w.cron.trim().split(/\s+/);
    const field = (i: number, s: ReadonlySet<number>, names?: readonly string[]) =>
      fields[i] === "*" ? "*" : listOf(s, names);
    const day = c.anyDay ? (c.anyWeekday ? "*" : "?") : field(2, c.days);
    const weekday = c.anyWeekday ? "?" : listOf(c.weekdays, AWS_WEEKDAYS);
    const startTime = `cron(${field(0, c.minutes)} ${field(1, c.hours)} ${day} ${field(3, c.months)} ${weekday} *)`;
    if (startTime.length > MAX_AWS_CRON) return undefined;
    out.push({ startTime, durationInMinutes: w.durationMinutes });
  }
  return out;
}
