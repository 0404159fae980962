/** The pre-provisioning hook Lambda as a factory over its environment, so the local wiring can build it too. */
import { createClients, type HandlerOptions } from "../clients.ts";
import type { Env } from "../env.ts";
import { createLogger } from "../log.ts";
import { Store } from "../store.ts";
import { ClaimStore } from "../store-claim.ts";
import { decide, type HookAnswer } from "./hook.ts";

export function createProvisioningHookHandler(env: Env, options: HandlerOptions = {}) {
  const { ddb, iot } = options.clients ?? createClients(env);
  const deps = {
    iot,
    store: new Store(ddb, env.TABLE_NAME),
    claims: new ClaimStore(ddb, env.TABLE_NAME),
    fleets: env.FLEETS,
    now: options.now ?? Date.now,
    log: createLogger("provisioning-hook", env.LOG_LEVEL),
  };
  return (event: unknown): Promise<HookAnswer> => decide(deps, event);
}
