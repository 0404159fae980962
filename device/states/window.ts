/**
 * Maintenance windows on the node (docs/fleets.md#maintenance-windows): the job document may carry the
 * fleet's windows, and the agent then begins a download or a reboot only inside one. Validating and
 * Verifying end with `outside-window` when none is open (windowGate), and the two waiting states sleep
 * until one opens, reporting `step: waiting-for-window`. Like every state they are saved before their
 * work, so a restart while waiting waits again; the wait itself touches nothing, so they have no `loop`
 * row — a node rebooted several times during a long wait is not in a crash loop. A cancel ends the wait.
 */
import { type MaintenanceWindow, windowState } from "../../core/maintenance-window.ts";
import type { AgentEvent } from "../state-machine.ts";
import type { StateContext, StateHandler } from "./context.ts";

/** Waits are re-checked at least this often: a wall-clock jump (NTP) must not oversleep a window. */
const MAX_SLEEP_MS = 5 * 60_000;

const windowsOf = (ctx: StateContext): readonly MaintenanceWindow[] =>
  ctx.job.parsed?.maintenanceWindows ?? [];

/** After `inner`, turns the events in `gated` into `outside-window` while the job's windows are closed. */
export function windowGate(inner: StateHandler, gated: readonly AgentEvent[]): StateHandler {
  return {
    name: inner.name,
    async run(ctx) {
      const r = await inner.run(ctx);
      if (!("event" in r) || !gated.includes(r.event)) return r;
      return windowState(windowsOf(ctx), ctx.clock.now()).open ? r : { event: "outside-window" };
    },
  };
}

/** Sleeps until the job's windows are open, then `window-open` (or `next(ctx)`), reporting the wait. */
export function waitingForWindow(
  next: (ctx: StateContext) => AgentEvent = () => "window-open",
): StateHandler {
  return {
    name: "waiting-for-window",
    async run(ctx) {
      let reported: string | undefined;
      for (;;) {
        const now = ctx.clock.now();
        const s = windowState(windowsOf(ctx), now);
        if (s.open) return { event: next(ctx) };
        const opensAt =
          s.opensAt === undefined ? "none within the search horizon" : new Date(s.opensAt).toISOString();
        if (opensAt !== reported) {
          reported = opensAt;
          ctx.logger.info("outside the maintenance windows; waiting", { opensAt });
          ctx.progress({ step: "waiting-for-window", opensAt });
        }
        const wait = s.opensAt === undefined ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, s.opensAt - now);
        await ctx.clock.sleep(Math.max(1, wait), ctx.signal);
      }
    },
  };
}

/** WaitingToReboot: on a cluster node (not a standalone install) the reboot slot comes next. */
export const waitingToReboot = waitingForWindow((ctx) =>
  ctx.job.standalone === null && ctx.cluster ? "window-open-in-cluster" : "window-open",
);
