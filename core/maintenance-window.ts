/**
 * Maintenance windows (docs/fleets.md#maintenance-windows): a recurring start (five-field cron, read in
 * the window's IANA time zone), a duration, and the calculator that says whether a time is inside one
 * and when the next one opens or the current one closes. Used by the rollout engine (waves start and
 * advance only inside a window), the agent (downloads and reboots only inside one) and the CLI.
 *
 * Time zones go through Intl, so daylight saving time is the platform's tz database's. A start that
 * falls in a skipped hour (spring forward) starts as many minutes after the jump as it was into the
 * gap (02:30 on a 02:00→03:00 night opens at 03:30); a start in a repeated hour (fall back) opens at
 * its first occurrence only.
 */
import { z } from "zod";
import { type CronSpec, cronMatchesDay, parseCron } from "./cron.ts";
import { CronError } from "./errors.ts";

/** AWS's limit for a job's maintenance window (docs/aws-limits.md); ours match so a window can pass through. */
export const MAX_WINDOW_MINUTES = 1430;
export const MAX_WINDOWS = 10;
/** How far ahead the calculator looks for the next window (a cron such as Feb 29 fires within 8 years). */
const SEARCH_DAYS = 8 * 366;

const isTimeZone = (tz: string): boolean => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};

export const TimeZoneSchema = z
  .string()
  .min(1)
  .max(64)
  .refine(isTimeZone, { message: "is not an IANA time zone (e.g. UTC, Europe/Berlin)" });

export const CronSchema = z
  .string()
  .min(1)
  .max(200)
  .superRefine((text, ctx) => {
    try {
      parseCron(text);
    } catch (err) {
      if (!(err instanceof CronError)) throw err;
      ctx.addIssue({ code: "custom", message: err.problem });
    }
  });

export const MaintenanceWindowSchema = z.strictObject({
  /** When the window opens: five-field cron in `timeZone`'s wall-clock time. */
  cron: CronSchema,
  durationMinutes: z.int().min(1).max(MAX_WINDOW_MINUTES),
  timeZone: TimeZoneSchema,
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindowSchema>;

export const MaintenanceWindowsSchema = z.array(MaintenanceWindowSchema).max(MAX_WINDOWS);

/** Whether a time is inside a window, and when that changes (undefined: not within the search horizon). */
export interface WindowState {
  open: boolean;
  /** Open: when the window (and any that overlap or touch it) closes; absent when it never does. */
  closesAt?: number;
  /** Closed: when the next window opens. */
  opensAt?: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

const formats = new Map<string, Intl.DateTimeFormat>();
function formatFor(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formats.set(tz, f);
  }
  return f;
}

/** The zone's offset from UTC at instant `ms`, in ms (wall clock − UTC). */
export function zoneOffset(tz: string, ms: number): number {
  const p: Record<string, number> = {};
  for (const part of formatFor(tz).formatToParts(ms)) {
    if (part.type !== "literal") p[part.type] = Number(part.value);
  }
  const wall = Date.UTC(
    p.year ?? 1970,
    (p.month ?? 1) - 1,
    p.day ?? 1,
    p.hour ?? 0,
    p.minute ?? 0,
    p.second ?? 0,
  );
  return wall - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant a wall-clock time (given as if it were UTC) happens in `tz`: the earliest when the hour
 * repeats, shifted forward by the jump when the hour is skipped.
 */
export function wallToInstant(tz: string, wallAsUtc: number): number {
  const offsets = new Set([
    zoneOffset(tz, wallAsUtc - DAY),
    zoneOffset(tz, wallAsUtc),
    zoneOffset(tz, wallAsUtc + DAY),
  ]);
  const valid = [...offsets].map((o) => wallAsUtc - o).filter((t) => zoneOffset(tz, t) === wallAsUtc - t);
  if (valid.length > 0) return Math.min(...valid);
  // Skipped: read with the offset before the jump (the smaller one), which lands past the gap.
  return wallAsUtc - Math.min(...offsets);
}

const sorted = (s: ReadonlySet<number>) => [...s].sort((a, b) => a - b);

/** The first start of the window's cron at or after `t`, or undefined within the search horizon. */
export function nextStart(cron: CronSpec | string, tz: string, t: number): number | undefined {
  const spec = typeof cron === "string" ? parseCron(cron) : cron;
  const hours = sorted(spec.hours);
  const minutes = sorted(spec.minutes);
  // Start a day early: a wall-clock day of the zone may begin before `t`'s UTC day.
  const wall = t + zoneOffset(tz, t);
  // Wall-clock times this far before `t`'s are before `t` whatever the zone's jumps (at most a few hours).
  const earliestWall = wall - 4 * 3_600_000;
  const first =
    Date.UTC(new Date(wall).getUTCFullYear(), new Date(wall).getUTCMonth(), new Date(wall).getUTCDate()) -
    DAY;
  for (let day = first; day < first + SEARCH_DAYS * DAY; day += DAY) {
    const d = new Date(day);
    if (!cronMatchesDay(spec, d.getUTCDate(), d.getUTCMonth() + 1, d.getUTCDay())) continue;
    if (day + DAY < earliestWall) continue;
    // Offsets run from −12 h to +14 h: when the zone's offset is the same on both sides of every instant
    // this wall-clock day can be, no jump falls in it and each wall time is one subtraction away.
    const before = zoneOffset(tz, day - 14 * 3_600_000);
    const steady = before === zoneOffset(tz, day + DAY + 14 * 3_600_000) ? before : undefined;
    for (const h of hours) {
      for (const m of minutes) {
        const w = day + h * 3_600_000 + m * MINUTE;
        if (w < earliestWall) continue;
        const s = steady === undefined ? wallToInstant(tz, w) : w - steady;
        if (s >= t) return s;
      }
    }
  }
  return undefined;
}

/** The state of one window at `t`: open if a start lies in (t − duration, t]. */
function oneWindow(w: MaintenanceWindow, spec: CronSpec, t: number): WindowState {
  const dur = w.durationMinutes * MINUTE;
  const first = nextStart(spec, w.timeZone, t - dur + 1);
  if (first === undefined) return { open: false };
  if (first > t) return { open: false, opensAt: first };
  // The latest start at or before t closes last. A cron firing every minute has up to 1430 starts in
  // the span, so bisect (nextStart(x) ≤ t holds up to that start) rather than walk them.
  let lo = first;
  let hi = t + 1;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((nextStart(spec, w.timeZone, mid) ?? Number.POSITIVE_INFINITY) <= t) lo = mid;
    else hi = mid;
  }
  return { open: true, closesAt: (nextStart(spec, w.timeZone, lo) ?? first) + dur };
}

/**
 * The state of a set of windows at `t` (any one open = open). No windows at all means no restriction:
 * always open, never closing. An open state's `closesAt` follows windows that overlap or touch.
 */
export function windowState(windows: readonly MaintenanceWindow[], t: number): WindowState {
  if (windows.length === 0) return { open: true };
  const specs = windows.map((w) => ({ w, spec: parseCron(w.cron) }));
  const at = (time: number) => specs.map(({ w, spec }) => oneWindow(w, spec, time));
  const now = at(t);
  const openNow = now.filter((s) => s.open);
  if (openNow.length === 0) {
    const opens = now.map((s) => s.opensAt).filter((x) => x !== undefined);
    return opens.length === 0 ? { open: false } : { open: false, opensAt: Math.min(...opens) };
  }
  let closesAt = Math.max(...openNow.map((s) => s.closesAt ?? t));
  // Chained windows: if another is open at the moment this one closes, the span goes on. Bounded: a
  // chain that does not end within a few links (windows that never close) has no known close.
  for (let i = 0; i < 10; i++) {
    const later = at(closesAt).filter((s) => s.open);
    if (later.length === 0) return { open: true, closesAt };
    closesAt = Math.max(...later.map((s) => s.closesAt ?? closesAt));
  }
  return { open: true };
}

/**
 * The state of several fleets' windows together (a wave that touches them all): open only when every
 * one is open. When closed, `opensAt` is the first time all are open at once.
 */
export function combinedWindowState(
  sets: ReadonlyArray<readonly MaintenanceWindow[]>,
  t: number,
): WindowState {
  const restricted = sets.filter((s) => s.length > 0);
  if (restricted.length === 0) return { open: true };
  const states = restricted.map((s) => windowState(s, t));
  if (states.every((s) => s.open)) {
    const closes = states.map((s) => s.closesAt).filter((c) => c !== undefined);
    return closes.length === 0 ? { open: true } : { open: true, closesAt: Math.min(...closes) };
  }
  // Walk forward to a time when all are open: each step jumps to the next opening of one that is closed.
  let candidate = t;
  for (let i = 0; i < 200; i++) {
    const at = restricted.map((s) => windowState(s, candidate));
    const closed = at.find((s) => !s.open);
    if (!closed) return { open: false, opensAt: candidate };
    if (closed.opensAt === undefined) return { open: false };
    candidate = closed.opensAt;
  }
  return { open: false };
}

/** `0 2 * * * 2h Europe/Berlin`-style text, as the CLI takes and prints a window. */
export function formatWindow(w: MaintenanceWindow): string {
  const d = w.durationMinutes;
  const dur = d % 60 === 0 ? `${d / 60}h` : `${d}m`;
  return `${w.cron} ${dur} ${w.timeZone}`;
}
