/**
 * `keel fleet set-windows|windows` (docs/fleets.md#maintenance-windows): a fleet's maintenance windows,
 * each given as `"<cron> <duration> <time zone>"` — a five-field cron for when it opens, in the zone's
 * wall-clock time, how long it stays open (90m, 2h), and an IANA zone: `"0 2 * * SAT 4h Europe/Berlin"`.
 */
import type { Command } from "commander";
import { parseDurationSeconds } from "../../core/duration.ts";
import { describeError } from "../../core/errors.ts";
import { formatWindow, type MaintenanceWindow } from "../../core/maintenance-window.ts";
import { parseWith } from "../../core/parse.ts";
import {
  FleetWindowsBodySchema,
  type FleetWindowsView,
  FleetWindowsViewSchema,
  type WindowStateView,
} from "../../functions/rollout-api/contract.ts";
import { ApiClient, addTargetOptions, resolveTarget, type TargetFlags } from "../api-client.ts";
import { CliUsageError } from "../errors.ts";

/** `"<m h dom mon dow> <duration> <tz>"` → a window; the API checks the fields again (400 naming them). */
export function parseWindowSpec(spec: string, index = 0): MaintenanceWindow {
  const parts = spec.trim().split(/\s+/);
  const where = `--window ${index + 1} ${JSON.stringify(spec)}`;
  if (parts.length !== 7) {
    throw new CliUsageError(
      `${where}: expected "<minute> <hour> <day-of-month> <month> <day-of-week> <duration> <time zone>", e.g. "0 2 * * * 2h UTC"`,
    );
  }
  const [duration, timeZone] = parts.slice(5) as [string, string];
  let seconds: number;
  try {
    seconds = parseDurationSeconds(duration);
  } catch (err) {
    throw new CliUsageError(`${where}: ${describeError(err)}`, { cause: err });
  }
  if (seconds % 60 !== 0) throw new CliUsageError(`${where}: the duration must be whole minutes (90m, 2h)`);
  const window = { cron: parts.slice(0, 5).join(" "), durationMinutes: seconds / 60, timeZone };
  // Parsed as the API body is, so a bad cron or zone reads as its 400 would: `windows[0].cron: …`.
  const body = parseWith(FleetWindowsBodySchema, { windows: [window] }, where);
  const [parsed] = body.windows;
  if (!parsed) throw new CliUsageError(`${where}: no window`);
  return parsed;
}

/** One line: open until / next opens, or no restriction. */
export function windowLine(s: WindowStateView, restricted: boolean): string {
  if (!restricted) return "no maintenance windows (rollouts run at any time)";
  if (s.open) return `inside a maintenance window${s.closesAt ? ` until ${s.closesAt}` : ""}`;
  return s.opensAt
    ? `outside the maintenance windows; next opens ${s.opensAt}`
    : "no maintenance window opens within the search horizon";
}

export function renderFleetWindows(v: FleetWindowsView): string {
  const lines = [`fleet ${v.fleet}: ${windowLine(v.state, v.windows.length > 0)} (at ${v.at})`];
  for (const w of v.windows) lines.push(`  ${formatWindow(w)}`);
  if (v.updatedBy) lines.push(`set ${v.updatedAt} by ${v.updatedBy}`);
  return `${lines.join("\n")}\n`;
}

const collectWindow = (value: string, previous: string[] = []) => [...previous, value];

export function register(fleet: Command): void {
  addTargetOptions(
    fleet
      .command("set-windows")
      .description("set a fleet's maintenance windows: waves start and devices install only inside one")
      .argument("<fleet>", "fleet name")
      .option(
        "--window <spec>",
        'a window, "<cron> <duration> <time zone>", e.g. "0 2 * * SAT 4h Europe/Berlin" (repeat for several)',
        collectWindow,
      )
      .option("--clear", "remove every window (rollouts run at any time)"),
  ).action(async (name: string, flags: TargetFlags & { window?: string[]; clear?: boolean }) => {
    if (flags.clear === (flags.window !== undefined)) {
      throw new CliUsageError("give one or more --window, or --clear");
    }
    const windows = (flags.window ?? []).map((w, i) => parseWindowSpec(w, i));
    const api = new ApiClient(await resolveTarget(flags));
    const v = parseWith(
      FleetWindowsViewSchema,
      await api.request("PUT", `/fleets/${encodeURIComponent(name)}/windows`, { windows }),
      "API answer",
    );
    process.stdout.write(renderFleetWindows(v));
  });

  addTargetOptions(
    fleet
      .command("windows")
      .description("a fleet's maintenance windows and whether one is open now")
      .argument("<fleet>", "fleet name"),
  ).action(async (name: string, flags: TargetFlags) => {
    const api = new ApiClient(await resolveTarget(flags));
    const v = parseWith(
      FleetWindowsViewSchema,
      await api.get(`/fleets/${encodeURIComponent(name)}/windows`),
      "API answer",
    );
    process.stdout.write(renderFleetWindows(v));
  });
}
