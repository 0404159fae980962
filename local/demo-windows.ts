/**
 * `keel dev --demo --window-minutes N` (docs/fleets.md#maintenance-windows): the demo fleet gets a short
 * recurring maintenance window — open N minute(s), closed N minute(s), in UTC — so the rollouts show
 * waves waiting for a window, stopping when it closes and resuming in the next one.
 */
import type { MaintenanceWindow } from "../core/maintenance-window.ts";
import { parseWith } from "../core/parse.ts";
import { FleetWindowsViewSchema } from "../functions/rollout-api/contract.ts";
import type { RolloutApi } from "./fleet/environment.ts";

export const MAX_DEMO_WINDOW_MINUTES = 15;

/** Every 2N minutes (a cron step, restarting each hour), open for N. */
export function demoWindow(minutes: number): MaintenanceWindow {
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_DEMO_WINDOW_MINUTES) {
    throw new RangeError(
      `window minutes must be a whole number 1–${MAX_DEMO_WINDOW_MINUTES}, got ${minutes}`,
    );
  }
  return { cron: `*/${2 * minutes} * * * *`, durationMinutes: minutes, timeZone: "UTC" };
}

/** Longest a rollout of `waves` waves may wait for windows: one closed spell per wave, and one more. */
export function windowWaitMs(minutes: number, waves: number): number {
  return (waves + 1) * minutes * 60_000;
}

/** Sets the demo fleet's window through the rollout API; returns the line the demo prints. */
export async function setDemoWindows(
  api: RolloutApi & { request(method: "PUT", path: string, body: unknown): Promise<unknown> },
  fleet: string,
  minutes: number,
): Promise<string> {
  const w = demoWindow(minutes);
  const view = parseWith(
    FleetWindowsViewSchema,
    await api.request("PUT", `/fleets/${encodeURIComponent(fleet)}/windows`, { windows: [w] }),
    "rollout API answer",
  );
  const now = view.state.open ? `open until ${view.state.closesAt}` : `next opens ${view.state.opensAt}`;
  return `Maintenance window for fleet ${fleet}: "${w.cron}" for ${minutes} minute(s), UTC (${now}); waves start and nodes download and reboot only inside it.\n`;
}
