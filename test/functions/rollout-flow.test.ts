/**
 * The rollout engine end to end: the rollout API over signed HTTP (local wiring), advance-rollout driven
 * by the IoT stand-in's job events and the schedule, devices as MQTT clients answering their jobs.
 */
import { DescribeJobCommand, DescribeJobExecutionCommand, ListJobsCommand } from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ApiClient } from "../../cli/api-client.ts";
import { ApiError } from "../../cli/api-client.ts";
import { bucketOf } from "../../core/waves.ts";
import { createAdvanceRolloutHandler } from "../../functions/advance-rollout/app.ts";
import { parseEnv } from "../../functions/env.ts";
import { convergenceJobId } from "../../functions/rollout/convergence.ts";
import { isSettling } from "../../functions/rollout/engine.ts";
import type { Rollout } from "../../functions/rollout/model.ts";
import type { Store } from "../../functions/store.ts";
import type { FunctionsWiring } from "../../local/functions-wiring.ts";
import type { TestCloud } from "./cloud.ts";
import type { Outcome } from "./devices.ts";
import { envFor } from "./fixtures.ts";
import {
  namesAround,
  namesInBuckets,
  type RolloutHarness,
  type RolloutView,
  startRolloutHarness,
} from "./rollout-harness.ts";

let h: RolloutHarness;
let cloud: TestCloud;
let wiring: FunctionsWiring;
let api: ApiClient;
let store: Store;
const devices: Array<{ documents: Array<Record<string, unknown>> }> = [];

async function registerDevice(fleet: string, name: string, outcome: Outcome) {
  const d = await h.registerDevice(fleet, name, outcome);
  devices.push(d);
  return d;
}
const getRollout = (id: string) => h.getRollout(id);
const until = (id: string, pred: (r: RolloutView) => boolean, what: string) => h.until(id, pred, what);

beforeAll(async () => {
  h = await startRolloutHarness();
  ({ cloud, wiring, api } = h);
  store = cloud.store;
});

afterAll(async () => {
  await h?.stop();
});

/** Waits until the control-plane call counts stay the same across a few polls (ticks are 1 s here). */
async function quietControlPlane(): Promise<void> {
  const total = () => Object.values(cloud.iot.stats().apiCalls).reduce((a, b) => a + b, 0);
  let last = total();
  // Bounded: a control plane that never settles only makes the counts below noisier, not the test hang.
  for (let still = 0, polls = 0; still < 4 && polls < 40; polls++) {
    await new Promise((r) => setTimeout(r, 750));
    const now = total();
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

describe("a three-wave rollout", () => {
  it("advances canary → 50 % (baking) → 100 % as devices succeed, then SUCCEEDED", async () => {
    const names = namesAround("edge", 3, 3);
    for (const n of names) await registerDevice("edge", n, "SUCCEEDED");
    const canary = names[0] as string;
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["edge"],
      waves: [{ canary: [canary] }, { percent: 50, bakeSeconds: 120 }, { percent: 100 }],
    })) as Rollout;
    expect(created.waves[0]?.jobCreatedAt).toBeDefined(); // the API starts wave 1 at once

    // Canary succeeds → job event → wave 2 job; 50 % succeeds → baking (clock has not moved).
    let r = await until(
      created.id,
      (x) => x.current === 1 && x.waves[1]?.thresholdMetAt !== undefined,
      "wave 2 to bake",
    );
    expect(r.waves[1]?.counts?.succeeded).toBe(3);
    await wiring.tick();
    expect((await getRollout(created.id)).current).toBe(1); // still baking

    cloud.clock.advance(121_000);
    await wiring.tick();
    r = await until(created.id, (x) => x.status === "SUCCEEDED", "SUCCEEDED");
    expect(r.waves.map((w) => w.counts?.succeeded)).toEqual([1, 3, 3]);
    expect(r.timeline.map((t) => t.event)).toContain("succeeded");

    // Outcomes are recorded from the execution events, which may land just after the job's own event.
    const view = await until(created.id, (x) => x.devices.length === 6, "six device outcomes");
    expect(view.devices.every((d) => d.status === "SUCCEEDED")).toBe(true);
    const jobs = await cloud.iotClient.send(new ListJobsCommand({}));
    expect(
      jobs.jobs
        ?.map((j) => j.jobId)
        .filter((j) => j?.includes(created.id))
        .sort(),
    ).toEqual([1, 2, 3].map((n) => `keel-${created.id}-w${n}`));
    // Devices got the job document with the placeholders presigned against the local S3.
    const doc = devices[0]?.documents[0];
    expect(doc).toMatchObject({ operation: "keel.update", version: "1.1.0", rolloutId: created.id });
    expect(String(doc?.manifestUrl)).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/keel-releases\/releases\/1\.1\.0\/release\.json\?/,
    );
    // The fleet's versions follow the device events and the rollout's last effect: allow them to land.
    await vi.waitFor(
      async () => {
        const fleet = (await api.get("/fleets/edge")) as {
          versions: Record<string, number>;
          highestVersion: string;
        };
        expect(fleet.versions).toEqual({ "1.1.0": 6 });
        expect(fleet.highestVersion).toBe("1.1.0");
      },
      { timeout: 15_000, interval: 50 },
    );
  });

  it("refuses a rollout that would downgrade the fleet", async () => {
    const err = await api
      .post("/rollouts", { release: "1.0.0", fleets: ["edge"], waves: [{ percent: 100 }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(409);
    expect((err as ApiError).message).toMatch(/downgrade for fleet edge/);
  });
});

describe("abort on the failure threshold", () => {
  it("aborts, cancels the wave's job and records the reason when failures pass the threshold", async () => {
    const names = namesAround("bad", 2, 2);
    const outcomes: Outcome[] = ["FAILED", "SUCCEEDED", "FAILED", "SUCCEEDED"];
    for (const [i, n] of names.entries()) await registerDevice("bad", n, outcomes[i] ?? "SUCCEEDED");
    // One silent device keeps the job open, so the cancel has something queued to cancel.
    await registerDevice("bad", namesAround("bad-silent", 1, 0)[0] as string, "SILENT");
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["bad"],
      waves: [{ percent: 100, failureThresholdPercent: 20 }],
    })) as Rollout;
    const r = await until(created.id, (x) => x.status === "ABORTED" && x.cancelDone === true, "ABORTED");
    // 1 failure of 5 is 20 %, not more than 20 %; the second failure passes the threshold.
    expect(r.reason).toBe("wave 1: 2 of 5 device(s) failed (40% > threshold 20%)");
    expect(r.timeline.map((t) => t.event)).toEqual(expect.arrayContaining(["aborted", "job-canceled"]));
    const job = await cloud.iotClient.send(new DescribeJobCommand({ jobId: `keel-${created.id}-w1` }));
    expect(job.job?.status).toBe("CANCELED");
    expect(job.job?.reasonCode).toBe("KEEL_ROLLOUT_ABORTED");
    // The fleet is free again.
    const fleet = (await api.get("/fleets/bad")) as { activeRollout?: unknown };
    expect(fleet.activeRollout).toBeUndefined();
  });
});

describe("after an abort", () => {
  it("keeps recording device outcomes and the aborted wave's counts until its executions finish", async () => {
    // Two devices that start installing and answer only when told: in progress when the abort lands.
    const devs = await Promise.all(
      namesAround("late", 1, 1).map((n) => registerDevice("late", n, "STARTED")),
    );
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["late"],
      waves: [{ percent: 100 }],
    })) as Rollout;
    await vi.waitFor(() => expect(devs.every((d) => d.open.length === 1)).toBe(true), { timeout: 10_000 });
    await vi.waitFor(
      async () => {
        await wiring.tick();
        expect((await getRollout(created.id)).waves[0]?.counts).toMatchObject({ inProgress: 2 });
      },
      { timeout: 10_000, interval: 100 },
    );
    const aborted = (await api.post(`/rollouts/${created.id}/abort`, { reason: "bad build" })) as Rollout;
    expect(aborted.status).toBe("ABORTED");
    // The cancel leaves in-progress executions to finish: the devices fail and roll back afterwards.
    for (const d of devs) d.finishOpen("FAILED");
    const r = await until(
      created.id,
      (x) => x.waves[0]?.counts?.failed === 2 && x.devices.length === 2,
      "the aborted wave's counts to show both failures",
    );
    expect(r.waves[0]?.counts?.inProgress).toBe(0);
    expect(r.settled).toBe(true);
    expect(r.devices.map((d) => [d.status, d.statusDetails?.rolledBack])).toEqual([
      ["FAILED", "true"],
      ["FAILED", "true"],
    ]);
    expect(r.totals).toEqual({ devices: 2, succeeded: 0, failed: 2, rolledBack: 2, other: 0 });
    // Settled: no longer read by the schedule.
    expect((await store.listRollouts("active")).map((x) => x.id)).not.toContain(created.id);
  });
});

describe("a canary device in the percent wave that covers its bucket", () => {
  it("gets that wave's job too, is shown under the canary wave that updated it, and is counted once", async () => {
    const [canary, other] = namesAround("cn", 1, 1) as [string, string];
    const devs = [
      await registerDevice("cn", canary, "SUCCEEDED"),
      await registerDevice("cn", other, "SUCCEEDED"),
    ];
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["cn"],
      waves: [{ canary: [canary] }, { percent: 100 }],
    })) as Rollout;
    await until(created.id, (x) => x.status === "SUCCEEDED", "SUCCEEDED");
    // IoT jobs over bucket groups cannot leave the canary out: it ran both waves' jobs…
    // (The fleet's convergence job, created once the rollout succeeded, is another rollout id.)
    const ofRollout = () => devs[0]?.documents.filter((d) => d.rolloutId === created.id);
    await vi.waitFor(() => expect(ofRollout()).toHaveLength(2), { timeout: 10_000 });
    await vi.waitFor(
      async () => {
        const ex = await cloud.iotClient.send(
          new DescribeJobExecutionCommand({ jobId: `keel-${created.id}-w2`, thingName: canary }),
        );
        expect(ex.execution?.status).toBe("SUCCEEDED");
      },
      { timeout: 10_000 },
    );
    // …and once its wave-2 event has been handled, it is still listed under wave 1, which updated it.
    await wiring.idle();
    const r = await getRollout(created.id);
    expect(r.waves.map((w) => w.counts?.succeeded)).toEqual([1, 2]);
    expect(r.devices.map((d) => [d.thingName, d.wave]).sort()).toEqual(
      [
        [canary, 1],
        [other, 2],
      ].sort(),
    );
    // …and the rollout's totals are per device.
    expect(r.totals).toEqual({ devices: 2, succeeded: 2, failed: 0, rolledBack: 0, other: 0 });
  });
});

describe("pause and resume", () => {
  it("a paused rollout records progress but does not advance until resumed", async () => {
    const names = namesAround("pz", 2, 2);
    for (const n of names) await registerDevice("pz", n, "SUCCEEDED");
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["pz"],
      // The bake keeps wave 1 open (the manual clock does not move) until the pause has landed.
      waves: [{ percent: 50, bakeSeconds: 60 }, { percent: 100 }],
    })) as Rollout;
    const paused = (await api.post(`/rollouts/${created.id}/pause`)) as Rollout;
    expect(paused.status).toBe("PAUSED");
    await until(created.id, (x) => x.waves[0]?.counts?.succeeded === 2, "wave 1 devices to succeed");
    cloud.clock.advance(61_000);
    await wiring.tick();
    let r = await getRollout(created.id);
    expect(r.status).toBe("PAUSED");
    expect(r.current).toBe(0);
    expect(r.waves[1]?.jobCreatedAt).toBeUndefined();
    const again = await api.post(`/rollouts/${created.id}/pause`).catch((e: unknown) => e);
    expect((again as ApiError).status).toBe(409);

    await api.post(`/rollouts/${created.id}/resume`); // the API runs the gate at once: bake is over
    r = await until(created.id, (x) => x.status === "SUCCEEDED", "SUCCEEDED after resume");
    expect(r.timeline.map((t) => t.event)).toEqual(
      expect.arrayContaining(["paused", "resumed", "succeeded"]),
    );
    const audit = await store.listAudit();
    // Entries written in the same (manual-clock) millisecond have no order between them.
    expect(
      audit
        .filter((a) => a.target === created.id)
        .map((a) => a.action)
        .sort(),
    ).toEqual(["rollout.create", "rollout.pause", "rollout.resume"]);
    expect(audit.every((a) => a.who === "arn:aws:iam::000000000000:user/keel-local")).toBe(true);
  });
});

describe("duplicate and concurrent advance invocations", () => {
  it("advance each wave once and create its job once; a concurrent pause is not lost", async () => {
    const names = namesAround("cc", 2, 2);
    for (const n of names) await registerDevice("cc", n, "SUCCEEDED");
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["cc"],
      waves: [
        { percent: 50, bakeSeconds: 60 },
        { percent: 100, bakeSeconds: 600 },
      ],
    })) as Rollout;
    await until(created.id, (x) => x.waves[0]?.thresholdMetAt !== undefined, "wave 1 to bake");
    // Bake over: the next invocation will advance. Eight invocations race for it.
    cloud.clock.advance(61_000);
    const advance = createAdvanceRolloutHandler(
      parseEnv(
        envFor(cloud.info, {
          IOT_ENDPOINT: cloud.info.iot,
          PRESIGN_ROLE_ARN: "arn:aws:iam::000000000000:role/presign",
        }),
      ),
      { now: () => cloud.clock.now() },
    );
    const tick = { source: "aws.events", "detail-type": "Scheduled Event" };
    // Earlier tests' successes start convergence jobs on the ticks after them; once those exist every
    // invocation's convergence pass is a no-op, and only the wave step is left to race for.
    await quietControlPlane();
    const racing = cloud.iot.stats().apiCalls;
    await Promise.all(Array.from({ length: 8 }, () => advance(tick)));
    let r = await until(created.id, (x) => x.waves[1]?.counts?.succeeded === 2, "wave 2 devices to succeed");
    // Only the invocation that claimed the step called IoT for it: one lookup of the fleet's bucket
    // groups, one CreateJob — not one (answered "already exists") per invocation.
    const raced = cloud.iot.stats().apiCalls;
    for (const op of ["CreateJob", "ListThingGroups"]) expect((raced[op] ?? 0) - (racing[op] ?? 0)).toBe(1);
    let events = r.timeline.map((t) => t.event);
    expect(events.filter((e) => e === "wave-started")).toHaveLength(1);
    expect(events.filter((e) => e === "job-created")).toHaveLength(2);
    const jobIds = (await cloud.iotClient.send(new ListJobsCommand({}))).jobs
      ?.map((j) => j.jobId)
      .filter((j) => j?.includes(created.id));
    expect(jobIds?.sort()).toEqual([`keel-${created.id}-w1`, `keel-${created.id}-w2`]);

    // The last wave's bake is over: invocations that would finish the rollout race with a pause. Either
    // may win, but the loser must see the winner's write: pause accepted ⇒ PAUSED and not finished;
    // pause refused (409) ⇒ SUCCEEDED and never paused. A lost update would break one of the two.
    cloud.clock.advance(601_000);
    const results = await Promise.allSettled([
      ...Array.from({ length: 4 }, () => advance(tick)),
      api.post(`/rollouts/${created.id}/pause`),
      ...Array.from({ length: 4 }, () => advance(tick)),
    ]);
    const pauseResult = results[4];
    const others = results.filter((_, i) => i !== 4);
    expect(others.filter((x) => x.status === "rejected")).toEqual([]);
    r = await getRollout(created.id);
    events = r.timeline.map((t) => t.event);
    if (!pauseResult) throw new Error("no result for the pause");
    if (pauseResult.status === "fulfilled") {
      expect(r.status).toBe("PAUSED");
      expect(events.filter((e) => e === "paused")).toHaveLength(1);
      expect(events).not.toContain("succeeded");
    } else {
      expect((pauseResult.reason as ApiError).status).toBe(409);
      expect(r.status).toBe("SUCCEEDED");
      expect(events).not.toContain("paused");
    }

    // A repeat with nothing new to see writes nothing.
    const before = (await getRollout(created.id)).version;
    await advance(tick);
    expect((await getRollout(created.id)).version).toBe(before);
  });

  it("device successes cost no DescribeJob: a wave of 8 devices is read once at start and once at completion", async () => {
    const names = namesAround("many", 4, 4);
    for (const n of names) await registerDevice("many", n, "SUCCEEDED");
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["many"],
      waves: [{ percent: 100, bakeSeconds: 3600 }],
    })) as Rollout;
    await until(
      created.id,
      (x) => x.waves[0]?.counts?.succeeded === 8 && x.devices.length === 8,
      "all 8 to succeed",
    );
    // Counted for this rollout's job only: late events of earlier tests' rollouts must not add to it.
    const calls = cloud.iot.stats().apiCallsByJob[`keel-${created.id}-w1`]?.DescribeJob ?? 0;
    // One when the API started the wave and one on the job's `completed` event; a third when the job's
    // completion races the engine's own read of the last success (seen on a quiet machine). Never one per
    // device event: that would be 8 or more here.
    expect(calls).toBeLessThanOrEqual(3);
  });

  it("a schedule tick costs one DescribeJob per active rollout, whatever the number of devices", async () => {
    // Devices that never answer keep this rollout active.
    for (const n of namesAround("tk", 3, 3)) await registerDevice("tk", n, "SILENT");
    await api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["tk"],
      waves: [{ percent: 50 }, { percent: 100 }],
    });
    const before = cloud.iot.stats().apiCalls;
    await wiring.tick();
    const after = cloud.iot.stats().apiCalls;
    const delta = (op: string) => (after[op] ?? 0) - (before[op] ?? 0);
    const active = (await api.get("/rollouts")) as { rollouts: Rollout[] };
    // Aborted rollouts whose wave still has devices in progress are read too, until they settle.
    const running = active.rollouts.filter(
      (x) => x.status === "RUNNING" || x.status === "PAUSED" || isSettling(x),
    ).length;
    expect(running).toBeGreaterThan(0);
    expect(delta("DescribeJob")).toBe(running);
    expect(
      delta("DescribeJobExecution") + delta("ListJobExecutionsForJob") + delta("ListThingsInThingGroup"),
    ).toBe(0);
  });
});

describe("IoT calls per rollout grow with waves, not devices", () => {
  /**
   * The same three-wave rollout over a fleet of `scale` × 5 devices: per wave, `scale` in 1–10 %,
   * `scale` in 10–50 %, 3 × `scale` in 50–100 % of which a third fail (below the 50 % threshold, so
   * every failure event is one the gate may look at). Returns the IoT control-plane calls made from
   * POST /rollouts until the rollout SUCCEEDED and every device's outcome was recorded.
   */
  async function rolloutCalls(fleet: string, scale: number) {
    const [w1 = [], w2 = [], w3 = []] = namesInBuckets(fleet, [
      [0, 10, scale],
      [10, 50, scale],
      [50, 100, 3 * scale],
    ]);
    const failing = new Set(w3.slice(0, scale));
    const names = [...w1, ...w2, ...w3];
    for (const n of names) await registerDevice(fleet, n, failing.has(n) ? "FAILED" : "SUCCEEDED");
    // Earlier tests' successful rollouts start their fleets' convergence jobs on the next ticks: measure
    // only once the control plane has been quiet for a few ticks, so none of that lands in this window.
    await quietControlPlane();
    const before = cloud.iot.stats().apiCalls;
    const created = (await api.post("/rollouts", {
      release: "1.1.0",
      fleets: [fleet],
      waves: [{ percent: 10 }, { percent: 50 }, { percent: 100 }].map((w) => ({
        ...w,
        failureThresholdPercent: 50,
        successThresholdPercent: 60,
      })),
    })) as Rollout;
    const r = await until(
      created.id,
      (x) => x.status === "SUCCEEDED" && x.devices.length === names.length,
      `${fleet} to succeed`,
    );
    expect(r.devices.filter((d) => d.status === "FAILED")).toHaveLength(scale);
    // This rollout's success starts its fleet's convergence job (docs/fleets.md): a CreateJob per pass
    // that tried it (racing passes are answered "already exists") and the bucket-group lookup before
    // each. They belong to convergence, not to the waves: wait until the job exists and the control plane
    // is quiet, then set them apart.
    const convergence = convergenceJobId(fleet, "1.1.0", 1);
    await vi.waitFor(
      () => expect(cloud.iot.stats().apiCallsByJob[convergence]?.CreateJob ?? 0).toBeGreaterThan(0),
      { timeout: 60_000, interval: 200 },
    );
    await quietControlPlane();
    const after = cloud.iot.stats().apiCalls;
    const convergenceCalls = cloud.iot.stats().apiCallsByJob[convergence]?.CreateJob ?? 0;
    const calls: Record<string, number> = {};
    for (const [op, n] of Object.entries(after)) {
      const own = op === "CreateJob" || op === "ListThingGroups" ? convergenceCalls : 0;
      const d = n - (before[op] ?? 0) - own;
      if (d > 0) calls[op] = d;
    }
    // DescribeJob counted on this rollout's own jobs only: earlier tests' rollouts (aborted ones still
    // settling, late events) read their jobs too, and that must not count here.
    const byJob = cloud.iot.stats().apiCallsByJob;
    const describeJob = [1, 2, 3].reduce(
      (n, w) => n + (byJob[`keel-${created.id}-w${w}`]?.DescribeJob ?? 0),
      0,
    );
    return { calls, describeJob, occupiedBuckets: new Set(names.map(bucketOf)).size };
  }

  it("a fleet 8× larger costs the same IoT calls, bar bucket groups nobody has joined yet", async () => {
    const small = await rolloutCalls("scale-s", 1);
    const large = await rolloutCalls("scale-l", 8);
    for (const { calls } of [small, large]) {
      // One CreateJob and one ListThingGroups (finding the bucket groups registration made) per wave.
      expect(calls.CreateJob).toBe(3);
      expect(calls.ListThingGroups).toBe(3);
    }
    // Only the bucket groups no device joined are created, once each: fewer as the fleet fills up.
    expect(small.calls.CreateThingGroup ?? 0).toBe(100 - small.occupiedBuckets);
    expect(large.calls.CreateThingGroup ?? 0).toBe(100 - large.occupiedBuckets);
    // DescribeJob: once as each wave starts, once on its job's completion, and for failure events only
    // the wave's first while its size is unknown, or the one passing the threshold — not once per failure
    // (8 failing devices in the large fleet against 1). Event timing may add a read or two (a failure
    // landing before the wave's size was read), never one per device (that would be 7 more or above).
    expect(large.describeJob).toBeLessThanOrEqual(small.describeJob + 3);
    const others = (c: Record<string, number>) =>
      Object.entries(c)
        .filter(([op]) => !["CreateThingGroup", "DescribeJob"].includes(op))
        .sort(([a], [b]) => a.localeCompare(b));
    expect(others(large.calls)).toEqual(others(small.calls));
    // Two fleets' rollouts plus quiet periods around each: more than the default minute on a busy machine.
  }, 240_000);
});
