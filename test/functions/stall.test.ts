/**
 * A rollout whose AWS calls keep failing does not sit silently: every failed attempt is recorded on the
 * rollout, after MAX_EFFECT_ATTEMPTS (or at once, for an input AWS would refuse) it is STALLED with the
 * error, logs the one `rollout.stalled` line the alarm counts, makes no more calls until resumed.
 */
import { IoTClient, ListJobsCommand } from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClients, destroyClients } from "../../functions/clients.ts";
import { createRolloutDeps, type RolloutDeps } from "../../functions/deps.ts";
import { parseEnv } from "../../functions/env.ts";
import { createLogger, ROLLOUT_STALLED_EVENT } from "../../functions/log.ts";
import { advanceRollout } from "../../functions/rollout/advance.ts";
import { MAX_EFFECT_ATTEMPTS, nextEffect, planRollout, resume } from "../../functions/rollout/engine.ts";
import type { Rollout } from "../../functions/rollout/model.ts";
import { CreateRolloutBodySchema } from "../../functions/rollout-api/contract.ts";
import { ROLLOUT_STALLED_PATTERN } from "../../infra/constructs/alarms.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { startTestCloud, type TestCloud } from "./cloud.ts";
import { envFor } from "./fixtures.ts";

let cloud: TestCloud;
const clientsToClose: Array<ReturnType<typeof createClients>> = [];
let n = 0;

beforeAll(async () => {
  cloud = await startTestCloud();
});

afterAll(async () => {
  for (const c of clientsToClose) destroyClients(c);
  await cloud?.stop();
});

/** Deps against the local cloud, optionally with an IoT endpoint nobody listens on; log lines kept. */
function depsWith(iotEndpoint?: string): { deps: RolloutDeps; lines: Array<Record<string, unknown>> } {
  const env = parseEnv({ ...envFor(cloud.info), LOG_LEVEL: "info" });
  const clients = createClients(env);
  clientsToClose.push(clients);
  const iot = iotEndpoint
    ? new IoTClient({
        region: cloud.info.region,
        endpoint: iotEndpoint,
        credentials: LOCAL_CREDENTIALS,
        maxAttempts: 1,
      })
    : clients.iot;
  const lines: Array<Record<string, unknown>> = [];
  const deps = createRolloutDeps(env, "advance-rollout", {
    clients: { ...clients, iot },
    now: () => cloud.clock.now(),
  });
  return { deps: { ...deps, log: createLogger("advance-rollout", "info", (e) => lines.push(e)) }, lines };
}

async function saved(deps: RolloutDeps, waves: unknown[]): Promise<Rollout> {
  const r = planRollout({
    id: `rstall-${++n}`,
    body: CreateRolloutBodySchema.parse({ release: "1.0.0", fleets: ["stall"], waves }),
    release: { version: "1.0.0", releaseCounter: 1, manifestKey: "m", imageKey: "i" },
    now: cloud.clock.now(),
    by: "test",
  });
  return deps.store.saveRollout(r, true);
}

const stalledLines = (lines: Array<Record<string, unknown>>) =>
  lines.filter((l) => l.event === ROLLOUT_STALLED_EVENT);

describe("a rollout whose CreateJob keeps failing", () => {
  it("records each attempt, stalls after the last one with the error, alarms once and calls no more", async () => {
    // Port 9 (discard) refuses connections on the test host: every IoT call fails at once.
    const { deps, lines } = depsWith("http://127.0.0.1:9");
    const r = await saved(deps, [{ percent: 100 }]);
    for (let i = 1; i < MAX_EFFECT_ATTEMPTS; i++) {
      await expect(advanceRollout(deps, r.id)).rejects.toThrow();
      const now = await deps.store.getRollout(r.id);
      expect(now?.status).toBe("RUNNING");
      expect(now?.effectFailure).toMatchObject({ effect: "create-job", attempts: i, stalled: false });
    }
    expect(stalledLines(lines)).toEqual([]);
    const stalled = await advanceRollout(deps, r.id);
    expect(stalled?.status).toBe("STALLED");
    expect(stalled?.reason).toMatch(
      new RegExp(`^wave 1: create-job failed ${MAX_EFFECT_ATTEMPTS} time\\(s\\): `),
    );
    expect(stalled?.effectFailure).toMatchObject({ attempts: MAX_EFFECT_ATTEMPTS, stalled: true });
    expect(stalled?.timeline.at(-1)?.event).toBe("stalled");
    expect(stalledLines(lines)).toEqual([
      expect.objectContaining({ level: "warn", rolloutId: r.id, effect: "create-job" }),
    ]);
    // The line is the one the alarm's metric filter counts.
    expect(ROLLOUT_STALLED_PATTERN.logPatternString).toContain(`$.event = "${ROLLOUT_STALLED_EVENT}"`);
    // Stalled: nothing more to do until an operator acts; further runs change nothing and log nothing.
    expect(nextEffect(stalled as Rollout)).toBeNull();
    const again = await advanceRollout(deps, r.id);
    expect(again?.version).toBe(stalled?.version);
    expect(stalledLines(lines)).toHaveLength(1);
    // Resume: RUNNING again with a fresh set of attempts.
    const resumed = resume(again as Rollout, cloud.clock.now(), "op");
    expect(resumed.status).toBe("RUNNING");
    expect(resumed.effectFailure).toBeUndefined();
    expect(resumed.reason).toBeUndefined();
  });

  it("stalls at once, without calling AWS, when the job's input breaks AWS's limits", async () => {
    // The API refuses such a value at its edge; a rollout stored before that check existed still has it.
    const { deps, lines } = depsWith();
    const r = await saved(deps, [{ percent: 100, failureThresholdPercent: 10.125 }]);
    const stalled = await advanceRollout(deps, r.id);
    expect(stalled?.status).toBe("STALLED");
    expect(stalled?.effectFailure).toMatchObject({ attempts: 1, stalled: true });
    expect(stalled?.effectFailure?.error).toMatch(
      /AwsLimitError: iot:CreateJob input breaks AWS's limits: .*thresholdPercentage/,
    );
    expect(stalledLines(lines)).toHaveLength(1);
    const jobs = await cloud.iotClient.send(new ListJobsCommand({}));
    expect((jobs.jobs ?? []).map((j) => j.jobId)).not.toContain(r.waves[0]?.jobId);
  });
});
