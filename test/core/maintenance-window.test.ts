import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cronMatchesDay, parseCron } from "../../core/cron.ts";
import { CronError } from "../../core/errors.ts";
import {
  combinedWindowState,
  type MaintenanceWindow,
  MaintenanceWindowSchema,
  nextStart,
  windowState,
  zoneOffset,
} from "../../core/maintenance-window.ts";

const at = (s: string) => Date.parse(s);
const iso = (n: number | undefined) => (n === undefined ? undefined : new Date(n).toISOString());

describe("parseCron", () => {
  it("reads values, ranges, steps, lists and names", () => {
    const c = parseCron("0,30 2-4 * JAN-MAR mon-fri");
    expect([...c.minutes]).toEqual([0, 30]);
    expect([...c.hours]).toEqual([2, 3, 4]);
    expect([...c.months]).toEqual([1, 2, 3]);
    expect([...c.weekdays]).toEqual([1, 2, 3, 4, 5]);
    expect([...parseCron("*/20 * * * 7").minutes]).toEqual([0, 20, 40]);
    expect([...parseCron("5/20 * * * 7").weekdays]).toEqual([0]);
    expect([...parseCron("5/20 * * * *").minutes]).toEqual([5, 25, 45]);
  });

  it("combines restricted day fields with OR, as Vixie cron does", () => {
    const c = parseCron("0 0 1 * MON");
    expect(cronMatchesDay(c, 1, 6, 3)).toBe(true);
    expect(cronMatchesDay(c, 2, 6, 1)).toBe(true);
    expect(cronMatchesDay(c, 2, 6, 2)).toBe(false);
    expect(cronMatchesDay(parseCron("0 0 * * MON"), 1, 6, 3)).toBe(false);
  });

  it.each([
    ["0 2 * *", /has 4 field/],
    ["60 2 * * *", /minute field: 60 is outside 0-59/],
    ["0 24 * * *", /hour field: 24 is outside/],
    ["0 2 0 * *", /day-of-month field: 0 is outside 1-31/],
    ["0 2 * 13 *", /month field: 13/],
    ["0 2 * * 8", /day-of-week field: 8/],
    ["0 2 * * FUN", /day-of-week field: "FUN" is not a number or name/],
    ["0 5-2 * * *", /hour field: range 5-2 runs backwards/],
    ["*/0 * * * *", /minute field: step must be at least 1/],
    ["0 1-2-3 * * *", /hour field/],
  ])("refuses %j naming the field", (expr, message) => {
    expect(() => parseCron(expr)).toThrow(CronError);
    expect(() => parseCron(expr)).toThrow(message);
  });
});

describe("MaintenanceWindowSchema", () => {
  it.each([
    [{ cron: "0 2 * *", durationMinutes: 60, timeZone: "UTC" }, "cron"],
    [{ cron: "0 2 * * *", durationMinutes: 0, timeZone: "UTC" }, "durationMinutes"],
    [{ cron: "0 2 * * *", durationMinutes: 1431, timeZone: "UTC" }, "durationMinutes"],
    [{ cron: "0 2 * * *", durationMinutes: 1.5, timeZone: "UTC" }, "durationMinutes"],
    [{ cron: "0 2 * * *", durationMinutes: 60, timeZone: "Mars/Olympus" }, "timeZone"],
    [{ cron: "0 2 * * *", durationMinutes: 60, timeZone: "UTC", extra: 1 }, ""],
  ])("refuses %j at %j", (input, path) => {
    const r = MaintenanceWindowSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path.join(".")).toBe(path);
  });
});

describe("window calculator", () => {
  const berlin = (cron: string, durationMinutes = 60): MaintenanceWindow => ({
    cron,
    durationMinutes,
    timeZone: "Europe/Berlin",
  });

  it("follows daylight saving time: the same wall-clock hour is a different UTC hour in summer", () => {
    const w = [berlin("0 2 * * *")];
    expect(iso(windowState(w, at("2026-01-10T00:00:00Z")).opensAt)).toBe("2026-01-10T01:00:00.000Z");
    expect(iso(windowState(w, at("2026-07-10T01:30:00Z")).opensAt)).toBe("2026-07-11T00:00:00.000Z");
    expect(windowState(w, at("2026-07-10T01:00:00Z")).open).toBe(false);
    expect(windowState(w, at("2026-07-10T00:00:00Z"))).toEqual({
      open: true,
      closesAt: at("2026-07-10T01:00:00Z"),
    });
  });

  it("opens a start in the skipped hour after the jump, and a repeated hour's start once", () => {
    // 2026-03-29: 02:00 → 03:00 in Berlin; 02:30 does not exist and opens at 03:30 CEST.
    expect(iso(nextStart("30 2 * * *", "Europe/Berlin", at("2026-03-28T12:00:00Z")))).toBe(
      "2026-03-29T01:30:00.000Z",
    );
    // 2026-10-25: 03:00 → 02:00; 02:30 happens twice, the window opens at the first only.
    expect(iso(nextStart("30 2 * * *", "Europe/Berlin", at("2026-10-24T12:00:00Z")))).toBe(
      "2026-10-25T00:30:00.000Z",
    );
    expect(iso(nextStart("30 2 * * *", "Europe/Berlin", at("2026-10-25T00:31:00Z")))).toBe(
      "2026-10-26T01:30:00.000Z",
    );
  });

  it("treats no windows as always open, and a cron that never fires as never open", () => {
    expect(windowState([], 0)).toEqual({ open: true });
    expect(windowState([{ cron: "0 0 31 2 *", durationMinutes: 5, timeZone: "UTC" }], 0)).toEqual({
      open: false,
    });
  });

  it("reports no close for windows that never close", () => {
    const hourly: MaintenanceWindow[] = [{ cron: "0 * * * *", durationMinutes: 60, timeZone: "UTC" }];
    expect(windowState(hourly, at("2026-02-02T01:10:00Z"))).toEqual({ open: true });
    const s = combinedWindowState(
      [hourly, [{ cron: "0 1 * * *", durationMinutes: 60, timeZone: "UTC" }]],
      at("2026-02-02T01:10:00Z"),
    );
    expect(s).toEqual({ open: true, closesAt: at("2026-02-02T02:00:00Z") });
  });

  it("chains windows that touch into one span", () => {
    const w: MaintenanceWindow[] = [
      { cron: "0 1 * * *", durationMinutes: 60, timeZone: "UTC" },
      { cron: "0 2 * * *", durationMinutes: 30, timeZone: "UTC" },
    ];
    expect(iso(windowState(w, at("2026-02-02T01:10:00Z")).closesAt)).toBe("2026-02-02T02:30:00.000Z");
  });

  it("opens several fleets' windows together only where they overlap", () => {
    const ny: MaintenanceWindow = { cron: "0 2 * * *", durationMinutes: 120, timeZone: "America/New_York" };
    const s = combinedWindowState([[ny], [berlin("0 9 * * *")]], at("2026-01-05T06:00:00Z"));
    expect(iso(s.opensAt)).toBe("2026-01-05T08:00:00.000Z");
    const open = combinedWindowState([[ny], [berlin("0 9 * * *")], []], at("2026-01-05T08:30:00Z"));
    expect(open).toEqual({ open: true, closesAt: at("2026-01-05T09:00:00Z") });
  });

  const zones = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/St_Johns",
  ];
  const cronArb = fc
    .tuple(
      fc.constantFrom("0", "30", "15,45", "*/20"),
      fc.constantFrom("*", "2", "1-3", "*/6", "23"),
      fc.constantFrom("*", "1", "15"),
      fc.constantFrom("*", "3", "10", "3,10"),
      fc.constantFrom("*", "0", "MON-FRI", "6"),
    )
    .map((f) => f.join(" "));
  const windowArb = fc.record({
    cron: cronArb,
    durationMinutes: fc.integer({ min: 1, max: 1430 }),
    timeZone: fc.constantFrom(...zones),
  });
  // 2026–2027, so DST transitions of every zone above are covered.
  const timeArb = fc.integer({ min: at("2026-01-01T00:00:00Z"), max: at("2027-12-31T00:00:00Z") });

  it("property: an open state stays open until closesAt and is closed there", () => {
    fc.assert(
      fc.property(fc.array(windowArb, { minLength: 1, maxLength: 2 }), timeArb, (ws, t) => {
        const s = windowState(ws, t);
        if (!s.open || s.closesAt === undefined) return;
        expect(s.closesAt).toBeGreaterThan(t);
        expect(windowState(ws, s.closesAt - 1).open).toBe(true);
        expect(windowState(ws, Math.floor((t + s.closesAt) / 2)).open).toBe(true);
        expect(windowState(ws, s.closesAt).open).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it("property: a closed state is closed until opensAt and open there", () => {
    fc.assert(
      fc.property(fc.array(windowArb, { minLength: 1, maxLength: 2 }), timeArb, (ws, t) => {
        const s = windowState(ws, t);
        if (s.open || s.opensAt === undefined) return;
        expect(s.opensAt).toBeGreaterThan(t);
        expect(windowState(ws, s.opensAt - 1).open).toBe(false);
        expect(windowState(ws, Math.floor((t + s.opensAt) / 2)).open).toBe(false);
        expect(windowState(ws, s.opensAt).open).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("property: a start is at or after t, on a matching day, at the cron's wall-clock time (outside gaps)", () => {
    fc.assert(
      fc.property(cronArb, fc.constantFrom(...zones), timeArb, (cron, tz, t) => {
        const s = nextStart(cron, tz, t);
        if (s === undefined) return;
        expect(s).toBeGreaterThanOrEqual(t);
        // A start the zone's jump moved is checked by the DST example above.
        if (zoneOffset(tz, s - 3_600_000) !== zoneOffset(tz, s)) return;
        const wall = new Date(s + zoneOffset(tz, s));
        const spec = parseCron(cron);
        expect(spec.minutes.has(wall.getUTCMinutes())).toBe(true);
        expect(spec.hours.has(wall.getUTCHours())).toBe(true);
        expect(cronMatchesDay(spec, wall.getUTCDate(), wall.getUTCMonth() + 1, wall.getUTCDay())).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});
