/**
 * A fleet's maintenance windows (docs/fleets.md#maintenance-windows): read them with their state now, or
 * replace them (audited). Running rollouts of the fleet see the change on their next engine run.
 */
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { windowStateOf, windowStateView } from "../rollout/windows.ts";
import type { FleetWindows } from "../store.ts";
import { FleetWindowsBodySchema, type FleetWindowsView } from "./contract.ts";
import { checkFleet } from "./rollouts.ts";
import type { Result } from "./router.ts";

function viewOf(fleet: string, stored: FleetWindows | undefined, now: number): FleetWindowsView {
  const windows = stored?.windows ?? [];
  return {
    fleet,
    windows,
    ...(stored ? { updatedAt: stored.updatedAt, updatedBy: stored.updatedBy } : {}),
    at: new Date(now).toISOString(),
    state: windowStateView(windowStateOf([windows], now)),
  };
}

export async function getFleetWindows(deps: ApiDeps, fleet: string): Promise<Result> {
  checkFleet(deps, fleet);
  return { status: 200, value: viewOf(fleet, await deps.store.getFleetWindows(fleet), deps.now()) };
}

export async function putFleetWindows(
  deps: ApiDeps,
  fleet: string,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  checkFleet(deps, fleet);
  const body = parseWith(FleetWindowsBodySchema, rawBody, "maintenance windows");
  const now = deps.now();
  const record: FleetWindows = {
    windows: body.windows,
    updatedAt: new Date(now).toISOString(),
    updatedBy: caller,
  };
  await deps.store.putFleetWindows(fleet, record);
  await deps.store.audit({
    at: record.updatedAt,
    who: caller,
    action: body.windows.length > 0 ? "fleet.set-windows" : "fleet.clear-windows",
    target: fleet,
    fleets: [fleet],
    detail: { windows: body.windows },
  });
  return { status: 200, value: viewOf(fleet, record, now) };
}
