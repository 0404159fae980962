/**
 * What the handlers work with, built once per handler from the validated environment: the AWS clients,
 * the store, the clock and a logger. One module for all three functions, so the local wiring and the
 * Lambda entry points build them the same way.
 */
import { createClients, type HandlerOptions, type RoleTagsLookup } from "./clients.ts";
import { type Env, required } from "./env.ts";
import { createLogger, type Logger } from "./log.ts";
import type { JobsConfig } from "./rollout/iot.ts";
import { Store } from "./store.ts";

/** What the rollout engine needs: IoT Jobs (and S3 for the trust roots), the table, time and logs. */
export interface RolloutDeps {
  jobs: JobsConfig;
  store: Store;
  now: () => number;
  log: Logger;
}

/** The rollout API's: the engine's, plus the deployment's fleets and the policy new devices get. */
export interface ApiDeps extends RolloutDeps {
  /** Fleets the API accepts; empty = any. */
  fleets: string[];
  thingPolicyName: string | undefined;
  /** Role tags for enrolment tag rules; absent, tag rules match nobody (docs/fleets.md#enrolment). */
  roleTags: RoleTagsLookup | undefined;
}

export function createRolloutDeps(env: Env, service: string, options: HandlerOptions = {}): RolloutDeps {
  const { s3, ddb, iot } = options.clients ?? createClients(env);
  return {
    jobs: {
      iot,
      s3,
      bucket: env.BUCKET_NAME,
      region: env.AWS_REGION,
      presignRoleArn: required(env, "PRESIGN_ROLE_ARN"),
    },
    store: new Store(ddb, env.TABLE_NAME),
    now: options.now ?? Date.now,
    log: createLogger(service, env.LOG_LEVEL),
  };
}

export function createApiDeps(env: Env, options: HandlerOptions = {}): ApiDeps {
  return {
    ...createRolloutDeps(env, "rollout-api", options),
    fleets: env.FLEETS,
    thingPolicyName: env.THING_POLICY_NAME,
    roleTags: options.roleTags,
  };
}
