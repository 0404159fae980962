/** `keel fleet set-windows` input and the window lines of `fleet windows` and `rollout status`. */
import { describe, expect, it } from "vitest";
import { parseWindowSpec, renderFleetWindows, windowLine } from "../../cli/commands/fleet-windows.ts";
import { renderRollout } from "../../cli/commands/rollout.ts";
import { CliUsageError } from "../../cli/errors.ts";
import { SchemaError } from "../../core/errors.ts";
import { demoWindow } from "../../local/demo-windows.ts";
import { rolloutViewFixture } from "./helpers.ts";

describe("parseWindowSpec", () => {
  it("reads cron, duration and zone", () => {
    expect(parseWindowSpec("0 2 * * SAT 4h Europe/Berlin")).toEqual({
      cron: "0 2 * * SAT",
      durationMinutes: 240,
      timeZone: "Europe/Berlin",
    });
    expect(parseWindowSpec("  30 1 1 * *   90m  UTC ")).toEqual({
      cron: "30 1 1 * *",
      durationMinutes: 90,
      timeZone: "UTC",
    });
  });

  it.each([
    ["0 2 * * 4h UTC", CliUsageError, /--window 1 .*expected "<minute> <hour>/],
    ["0 2 * * * 90s UTC", CliUsageError, /whole minutes/],
    ["0 2 * * * soon UTC", CliUsageError, /invalid duration "soon"/],
    ["0 2 * * * 1d UTC", SchemaError, /windows\[0\]\.durationMinutes/],
    ["0 2 * * * 1h Atlantis/Capital", SchemaError, /windows\[0\]\.timeZone: is not an IANA time zone/],
    ["0 2 31 2 X 1h UTC", SchemaError, /windows\[0\]\.cron: .*day-of-week field: "X"/],
  ])("refuses %j", (spec, type, message) => {
    expect(() => parseWindowSpec(spec)).toThrow(type);
    expect(() => parseWindowSpec(spec)).toThrow(message);
  });
});

describe("window lines", () => {
  it("says open until, next opens, or unrestricted", () => {
    expect(windowLine({ open: true }, false)).toBe("no maintenance windows (rollouts run at any time)");
    expect(windowLine({ open: true, closesAt: "2026-01-01T03:00:00.000Z" }, true)).toBe(
      "inside a maintenance window until 2026-01-01T03:00:00.000Z",
    );
    expect(windowLine({ open: false, opensAt: "2026-01-02T02:00:00.000Z" }, true)).toBe(
      "outside the maintenance windows; next opens 2026-01-02T02:00:00.000Z",
    );
    const text = renderFleetWindows({
      fleet: "edge",
      windows: [{ cron: "0 2 * * *", durationMinutes: 120, timeZone: "UTC" }],
      at: "2026-01-01T00:00:00.000Z",
      updatedAt: "2026-01-01T00:00:00.000Z",
      updatedBy: "ops",
      state: { open: false, opensAt: "2026-01-01T02:00:00.000Z" },
    });
    expect(text).toContain("  0 2 * * * 2h UTC");
    expect(text).toContain("next opens 2026-01-01T02:00:00.000Z");
  });

  it("shows a rollout waiting for a window, and the next window of one that is not", () => {
    const base = rolloutViewFixture();
    const waiting = renderRollout({
      ...base,
      waitingForWindow: { since: "2026-01-01T00:00:00.000Z", opensAt: "2026-01-01T02:00:00.000Z" },
    });
    expect(waiting).toContain(
      "waiting for a maintenance window since 2026-01-01T00:00:00.000Z; next opens 2026-01-01T02:00:00.000Z",
    );
    const inside = renderRollout({
      ...base,
      window: { restricted: true, open: true, closesAt: "2026-01-01T04:00:00.000Z" },
    });
    expect(inside).toContain("inside a maintenance window until 2026-01-01T04:00:00.000Z");
    expect(renderRollout({ ...base, retryOf: "r0" })).toContain("retry of r0");
  });

  it("gives the demo a window open n minutes of every 2n", () => {
    expect(demoWindow(1)).toEqual({ cron: "*/2 * * * *", durationMinutes: 1, timeZone: "UTC" });
    expect(() => demoWindow(16)).toThrow(RangeError);
  });
});
