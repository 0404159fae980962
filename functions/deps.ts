/**
 * What the handlers work with, built once per handler from the validated environment: the AWS clients,
 * the store, the clock and a logger. One module for all three functions, so the local wiring and the
 * Lambda entry points build them the same way.
 */
import { type Clients, createClients, type HandlerOptions, type RoleTagsLookup } from "./clients.ts";
import { type Env, required } from "./env.ts";
import { createLogger, type Logger } from "./log.ts";
import type { JobsConfig } from "./rollout/iot.ts";
import type { ClaimDeps } from "./rollout-api/claim.ts";
import { Store } from "./store.ts";
import { ClaimStore } from "./store-claim.ts";

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
  /** Fleet provisioning by claim: the claim rules, and the hook and role templates name. */
  claim?: ClaimDeps;
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
  // One set of clients for the engine's and the claim store's needs.
  const withClients = { ...options, clients: options.clients ?? createClients(env) };
  return {
    ...createRolloutDeps(env, "rollout-api", withClients),
    fleets: env.FLEETS,
    thingPolicyName: env.THING_POLICY_NAME,
    roleTags: options.roleTags,
    claim: claimDeps(env, withClients.clients),
  };
}

function claimDeps(env: Env, { ddb }: Clients): ClaimDeps {
  const hookArn = env.PROVISIONING_HOOK_ARN;
  const roleArn = env.PROVISIONING_ROLE_ARN;
  return {
    claims: new ClaimStore(ddb, env.TABLE_NAME),
    ...(hookArn && roleArn ? { provisioning: { hookArn, roleArn } } : {}),
  };
}
