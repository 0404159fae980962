/** The advance-rollout Lambda as a factory over its environment (schedule ticks and IoT job events). */
import { createClients, type HandlerOptions } from "../clients.ts";
import { type Env, required } from "../env.ts";
import { createLogger, errorFields } from "../log.ts";
import { type AdvanceDeps, advanceAll } from "../rollout/advance.ts";
import { Store } from "../store.ts";
import { handleIotEvent, isIotEvent } from "./events.ts";

export function createAdvanceDeps(env: Env, service: string, options: HandlerOptions): AdvanceDeps {
  const { s3, ddb, iot } = options.clients ?? createClients(env);
  const now = options.now ?? Date.now;
  return {
    jobs: {
      iot,
      s3,
      bucket: env.BUCKET_NAME,
      region: env.AWS_REGION,
      presignRoleArn: required(env, "PRESIGN_ROLE_ARN"),
    },
    store: new Store(ddb, env.TABLE_NAME),
    now,
    log: createLogger(service, env.LOG_LEVEL),
  };
}

export function createAdvanceRolloutHandler(env: Env, options: HandlerOptions = {}) {
  const deps = createAdvanceDeps(env, "advance-rollout", options);
  return async (event: unknown) => {
    try {
      if (isIotEvent(event)) {
        await handleIotEvent(deps, event);
        return { kind: "event" };
      }
      // Anything else is the schedule (EventBridge "Scheduled Event", or the local timer's tick).
      const rollouts = await advanceAll(deps);
      return {
        kind: "schedule",
        rollouts: rollouts.map((r) => ({ id: r.id, status: r.status, wave: r.current + 1 })),
      };
    } catch (err) {
      deps.log.error("advance-rollout failed", errorFields(err));
      throw err;
    }
  };
}
