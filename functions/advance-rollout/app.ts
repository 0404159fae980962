/** The advance-rollout Lambda as a factory over its environment (schedule ticks and IoT job events). */
import type { HandlerOptions } from "../clients.ts";
import { createRolloutDeps } from "../deps.ts";
import type { Env } from "../env.ts";
import { errorFields } from "../log.ts";
import { advanceAll } from "../rollout/advance.ts";
import { convergeAll } from "../rollout/converge.ts";
import { handleIotEvent, isIotEvent } from "./events.ts";

export function createAdvanceRolloutHandler(env: Env, options: HandlerOptions = {}) {
  const deps = createRolloutDeps(env, "advance-rollout", options);
  return async (event: unknown) => {
    try {
      if (isIotEvent(event)) {
        await handleIotEvent(deps, event);
        return { kind: "event" };
      }
      // Anything else is the schedule (EventBridge "Scheduled Event", or the local timer's tick).
      const rollouts = await advanceAll(deps);
      // After the rollouts, so a fleet whose rollout just ended converges on its new target.
      const fleets = await convergeAll(deps);
      return {
        kind: "schedule",
        rollouts: rollouts.map((r) => ({ id: r.id, status: r.status, wave: r.current + 1 })),
        convergence: fleets.map((t) => ({
          fleet: t.fleet,
          target: t.release,
          jobId: t.convergence.jobId,
          phase: t.convergence.phase,
        })),
      };
    } catch (err) {
      deps.log.error("advance-rollout failed", errorFields(err));
      throw err;
    }
  };
}
