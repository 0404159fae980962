/**
 * Pausing a rollout mid-wave on the simulated fleet: the wave's devices carry on and finish, but no next
 * wave starts while paused (no job is created in IoT, even past the bake time); after resume the rollout
 * advances and finishes, and every node runs the release. Asserted through the rollout API, IoT Jobs and
 * the nodes' disks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { RolloutSchema, RolloutViewSchema } from "../../functions/rollout-api/contract.ts";
import { publishDemoReleases } from "../../local/fleet/environment.ts";
import { type E2E, executions, jobExists, onDisk, startE2E, until } from "./helpers.ts";

const DEVICES = 5;
const FLEET = "e2epause";
const RELEASE = "1.1.0";

describe("pause mid-wave, resume, finish", () => {
  let e: E2E;

  beforeAll(async () => {
    e = await startE2E(FLEET, DEVICES);
    await e.env.fleet.waitSettled(60_000);
    await publishDemoReleases(e.env, () => {});
  }, 120_000);

  afterAll(async () => {
    await e?.stop();
  });

  it("holds the next wave while paused and finishes after resume", async () => {
    // Prepare
    const api = e.env.tooling.api;
    const things = e.env.fleet.thingNames();
    const firstWave = things.slice(0, 3);
    const get = async (id: string) => RolloutViewSchema.parse(await api.get(`/rollouts/${id}`));
    const created = RolloutSchema.parse(
      await api.post("/rollouts", {
        release: RELEASE,
        fleets: [FLEET],
        waves: [
          { canary: firstWave, bakeSeconds: 1, successThresholdPercent: 100 },
          { percent: 100, successThresholdPercent: 100 },
        ],
        healthDeadlineSeconds: 20,
      }),
    );
    const wave1 = created.waves[0]?.jobId ?? "";
    const wave2 = created.waves[1]?.jobId ?? "";

    // Act: pause while wave 1's job runs (its executions are queued or in progress, not all done)
    const paused = RolloutSchema.parse(await api.post(`/rollouts/${created.id}/pause`));
    expect(paused.status).toBe("PAUSED");
    expect(paused.current).toBe(0);
    expect(paused.waves[0]?.jobCreatedAt).toBeDefined();
    expect(paused.waves[0]?.completedAt).toBeUndefined();

    // Assess: wave 1's devices finish regardless…
    await until("wave 1 executions to succeed", async () => {
      const ex = await executions(e.iot, wave1);
      return ex.size === firstWave.length && [...ex.values()].every((s) => s === "SUCCEEDED")
        ? ex
        : undefined;
    });
    // …and the engine records it, yet with the bake long over (several schedule ticks), nothing advances.
    await until("the paused rollout to record wave 1's counts", async () => {
      const r = await get(created.id);
      return r.waves[0]?.counts?.succeeded === firstWave.length ? r : undefined;
    });
    await new Promise((r) => setTimeout(r, 3000));
    const held = await get(created.id);
    expect(held.status).toBe("PAUSED");
    expect(held.current).toBe(0);
    expect(held.waves[1]?.jobCreatedAt).toBeUndefined();
    expect(await jobExists(e.iot, wave2)).toBe(false);
    for (const thing of things.slice(3)) expect((await onDisk(e.env, thing)).versions.B, thing).toBeNull();

    // Act: resume
    const resumed = RolloutSchema.parse(await api.post(`/rollouts/${created.id}/resume`));
    expect(["RUNNING", "SUCCEEDED"]).toContain(resumed.status);

    // Assess: it finishes, wave 2 ran through IoT, and every node runs the release
    const done = await until("the rollout to finish", async () => {
      const r = await get(created.id);
      return r.status === "SUCCEEDED" || r.status === "ABORTED" ? r : undefined;
    });
    expect(done.status).toBe("SUCCEEDED");
    expect(done.timeline.map((t) => t.event)).toEqual(
      expect.arrayContaining(["paused", "resumed", "succeeded"]),
    );
    const ex2 = await executions(e.iot, wave2);
    for (const thing of things.slice(3)) expect(ex2.get(thing), thing).toBe("SUCCEEDED");
    await e.env.fleet.waitSettled(30_000);
    for (const thing of things) {
      const disk = await onDisk(e.env, thing);
      expect(disk.versions[disk.booted], thing).toBe(RELEASE);
      expect(disk.boot.slots[disk.booted].good, thing).toBe(true);
    }
    const fleet = await until("the fleet view to show every node on the release", async () => {
      const f = z
        .object({ versions: z.record(z.string(), z.number()) })
        .parse(await api.get(`/fleets/${FLEET}`));
      return f.versions[RELEASE] === DEVICES ? f : undefined;
    });
    expect(fleet.versions).toEqual({ [RELEASE]: DEVICES });
  }, 120_000);
});
