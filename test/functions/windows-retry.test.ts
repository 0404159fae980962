/**
 * Maintenance windows and retries end to end (docs/fleets.md): the rollout API over signed HTTP, the
 * engine on the manual clock, the IoT stand-in honouring `schedulingConfig.maintenanceWindows`, and
 * simulated devices.
 */
import { CreateJobCommand, DescribeJobCommand, DescribeThingCommand } from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../../cli/api-client.ts";
import type { Rollout } from "../../functions/rollout/model.ts";
import type { FleetWindowsView } from "../../functions/rollout-api/contract.ts";
import { namesAround, type RolloutHarness, startRolloutHarness } from "./rollout-harness.ts";

let h: RolloutHarness;

beforeAll(async () => {
  h = await startRolloutHarness();
});

afterAll(async () => {
  await h?.stop();
});

const MINUTE = 60_000;

/** A daily UTC window opening `inMinutes` from the clock's now (on a whole minute), `duration` long. */
function windowIn(inMinutes: number, duration: number) {
  const opens = Math.ceil(h.cloud.clock.now() / MINUTE) * MINUTE + inMinutes * MINUTE;
  const d = new Date(opens);
  return {
    opens,
    window: {
      cron: `${d.getUTCMinutes()} ${d.getUTCHours()} * * *`,
      durationMinutes: duration,
      timeZone: "UTC",
    },
  };
}

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe("PUT /fleets/{fleet}/windows", () => {
  it.each([
    [{ cron: "0 2 * *", durationMinutes: 60, timeZone: "UTC" }, "windows[0].cron", /has 4 field/],
    [{ cron: "0 25 * * *", durationMinutes: 60, timeZone: "UTC" }, "windows[0].cron", /hour field: 25/],
    [{ cron: "0 2 * * *", durationMinutes: 60, timeZone: "Europe/Nowhere" }, "windows[0].timeZone", /IANA/],
    [{ cron: "0 2 * * *", durationMinutes: 1431, timeZone: "UTC" }, "windows[0].durationMinutes", /1430/],
  ])("refuses %j with a 400 naming %s, and changes nothing", async (window, path, message) => {
    const err = await apiError(h.api.request("PUT", "/fleets/valid/windows", { windows: [window] }));
    expect(err.status).toBe(400);
    const issue = err.issues.find((i) => i.path === path);
    expect(issue?.message).toMatch(message);
    expect(await h.cloud.store.getFleetWindows("valid")).toBeUndefined();
  });

  it("stores windows, answers their state, audits, and clears them", async () => {
    const set = (await h.api.request("PUT", "/fleets/valid/windows", {
      windows: [{ cron: "0 2 * * SAT", durationMinutes: 240, timeZone: "Europe/Berlin" }],
    })) as FleetWindowsView;
    expect(set.windows).toHaveLength(1);
    expect(set.state.open || set.state.opensAt !== undefined).toBe(true);
    const got = (await h.api.get("/fleets/valid/windows")) as FleetWindowsView;
    expect(got.windows).toEqual(set.windows);
    expect(got.updatedBy).toBeDefined();
    const cleared = (await h.api.request("PUT", "/fleets/valid/windows", {
      windows: [],
    })) as FleetWindowsView;
    expect(cleared).toMatchObject({ windows: [], state: { open: true } });
    const actions = (await h.cloud.store.listAudit())
      .filter((a) => a.target === "valid")
      .map((a) => a.action);
    expect(actions.sort()).toEqual(["fleet.clear-windows", "fleet.set-windows"]);
  });
});

describe("a rollout inside maintenance windows", () => {
  it("waits for a window, stops advancing when it closes mid-rollout, and resumes in the next", async () => {
    const names = namesAround("win", 1, 1);
    const devices = [];
    for (const n of names) devices.push(await h.registerDevice("win", n, "SUCCEEDED"));
    const { opens, window } = windowIn(10, 5);
    await h.api.request("PUT", "/fleets/win/windows", { windows: [window] });

    const created = (await h.api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["win"],
      waves: [{ percent: 50, bakeSeconds: 600 }, { percent: 100 }],
    })) as Rollout;
    expect(created.status).toBe("RUNNING");
    expect(created.waitingForWindow?.opensAt).toBe(new Date(opens).toISOString());
    expect(created.waves[0]?.jobCreatedAt).toBeUndefined();
    const waiting = await h.getRollout(created.id);
    expect(waiting.window).toMatchObject({
      restricted: true,
      open: false,
      opensAt: new Date(opens).toISOString(),
    });

    // The window opens: wave 1's job, with the window for IoT and for the agent.
    h.cloud.clock.advance(opens - h.cloud.clock.now() + 1000);
    await h.wiring.tick();
    let r = await h.until(created.id, (x) => x.waves[0]?.thresholdMetAt !== undefined, "wave 1 to bake");
    expect(r.waitingForWindow).toBeUndefined();
    const job = await h.cloud.iotClient.send(new DescribeJobCommand({ jobId: `keel-${created.id}-w1` }));
    const d = new Date(opens);
    expect(job.job?.schedulingConfig?.maintenanceWindows).toEqual([
      { startTime: `cron(${d.getUTCMinutes()} ${d.getUTCHours()} * * ? *)`, durationInMinutes: 5 },
    ]);
    const doc = devices.flatMap((x) => x.documents)[0];
    expect(doc?.maintenanceWindows).toEqual([window]);

    // The bake ends after the 5-minute window closed: wave 2 waits for tomorrow's window.
    h.cloud.clock.advance(601_000);
    await h.wiring.tick();
    r = await h.getRollout(created.id);
    expect(r.status).toBe("RUNNING");
    expect(r.current).toBe(0);
    expect(r.waves[0]?.completedAt).toBeUndefined();
    expect(r.waitingForWindow?.opensAt).toBe(new Date(opens + 24 * 60 * MINUTE).toISOString());

    h.cloud.clock.advance(opens + 24 * 60 * MINUTE - h.cloud.clock.now() + 1000);
    await h.wiring.tick();
    r = await h.until(created.id, (x) => x.status === "SUCCEEDED", "SUCCEEDED in the next window");
    expect(r.waves.map((w) => w.counts?.succeeded)).toEqual([1, 1]);
    expect(r.timeline.map((t) => t.event)).toEqual(
      expect.arrayContaining(["window-closed", "window-opened", "wave-started", "succeeded"]),
    );
  });
});

describe("the IoT stand-in's schedulingConfig.maintenanceWindows", () => {
  it("rolls a job out only inside its window", async () => {
    await h.api.post("/fleets/sched/things", { thingName: "sched-1" });
    const thing = await h.cloud.iotClient.send(new DescribeThingCommand({ thingName: "sched-1" }));
    const { opens, window } = windowIn(30, 10);
    const startTime = `cron(${window.cron.split(" ").slice(0, 2).join(" ")} * * ? *)`;
    await h.cloud.iotClient.send(
      new CreateJobCommand({
        jobId: "sched-job",
        targets: [thing.thingArn ?? ""],
        document: "{}",
        schedulingConfig: { maintenanceWindows: [{ startTime, durationInMinutes: 10 }] },
      }),
    );
    const describe = async () =>
      (await h.cloud.iotClient.send(new DescribeJobCommand({ jobId: "sched-job" }))).job?.jobProcessDetails;
    expect((await describe())?.numberOfQueuedThings ?? 0).toBe(0);
    expect((await describe())?.processingTargets?.length).toBe(1);
    h.cloud.clock.advance(opens - h.cloud.clock.now());
    expect((await describe())?.numberOfQueuedThings).toBe(1);
  });

  it.each([
    ["cron(0 2 * * * *)", /exactly one of day-of-month and day-of-week must be \?/],
    ["0 2 * * ?", /is not cron\(/],
    ["cron(0 2 ? * MON 2027)", /only \* for the year/],
    ["cron(61 2 ? * MON *)", /minute field: 61/],
  ])("refuses startTime %s with InvalidRequestException", async (startTime, message) => {
    const err = await h.cloud.iotClient
      .send(
        new CreateJobCommand({
          jobId: "sched-bad",
          targets: ["arn:aws:iot:us-east-1:000000000000:thing/sched-1"],
          document: "{}",
          schedulingConfig: { maintenanceWindows: [{ startTime, durationInMinutes: 10 }] },
        }),
      )
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe("InvalidRequestException");
    expect((err as Error).message).toMatch(message);
  });
});

describe("POST /rollouts/{id}/retry", () => {
  it("retries only the devices that failed (not rolled back ones unless asked), then refuses when none are left", async () => {
    const names = namesAround("rt", 2, 2);
    const outcomes = ["SUCCEEDED", "REJECTED", "FAILED", "SUCCEEDED"] as const;
    const devices = [];
    for (const [i, n] of names.entries())
      devices.push(await h.registerDevice("rt", n, outcomes[i] ?? "SUCCEEDED"));
    const first = (await h.api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["rt"],
      waves: [{ percent: 100, failureThresholdPercent: 60, successThresholdPercent: 50 }],
    })) as Rollout;
    await h.until(first.id, (x) => x.status === "SUCCEEDED" && x.devices.length === 4, "first rollout");
    for (const d of devices) d.outcome = "SUCCEEDED";

    const retry = (await h.api.post(`/rollouts/${first.id}/retry`, {})) as Rollout;
    expect(retry.retryOf).toBe(first.id);
    expect(retry.waves.map((w) => [w.kind, w.things])).toEqual([["things", [names[1]]]]);
    const done = await h.until(retry.id, (x) => x.status === "SUCCEEDED" && x.devices.length === 1, "retry");
    expect(done.devices.map((x) => x.thingName)).toEqual([names[1]]);
    // Only the rejected device got a second rollout job; the rolled-back one was left alone. (The fleet's
    // convergence job, which the first rollout's success started, reaches every device besides.)
    const rolloutDocs = (d: { documents: Record<string, unknown>[] }) =>
      d.documents.filter((doc) => doc.convergence !== true);
    expect(devices.map((d) => rolloutDocs(d).length)).toEqual([1, 2, 1, 1]);

    const withRolledBack = (await h.api.post(`/rollouts/${first.id}/retry`, {
      includeRolledBack: true,
    })) as Rollout;
    expect(withRolledBack.waves.flatMap((w) => w.things)).toEqual([names[1], names[2]].sort());
    await h.until(withRolledBack.id, (x) => x.status === "SUCCEEDED", "retry with rolled back");
    // Only a retry that names rolled-back devices tells their agents they may install the release again.
    const [, rejected, rolledBack] = devices.map(rolloutDocs);
    expect(rejected?.[1]).not.toHaveProperty("includeRolledBack");
    expect(rolledBack?.at(-1)).toMatchObject({ includeRolledBack: true });

    const none = await apiError(h.api.post(`/rollouts/${retry.id}/retry`, {}));
    expect(none.status).toBe(409);
    expect(none.message).toMatch(/nothing to retry/);
    const bad = await apiError(h.api.post(`/rollouts/${first.id}/retry`, { includeRolledBack: "yes" }));
    expect(bad.status).toBe(400);
    expect(bad.issues.map((i) => i.path)).toEqual(["includeRolledBack"]);
    const audit = (await h.cloud.store.listAudit()).filter((a) => a.action === "rollout.retry");
    expect(audit.map((a) => a.detail?.retryOf)).toEqual([first.id, first.id]);
  });

  it("refuses a retry while the fleet's lock is held by a running rollout", async () => {
    const [name] = namesAround("lk", 1, 0);
    const d = await h.registerDevice("lk", name as string, "REJECTED");
    const first = (await h.api.post("/rollouts", {
      release: "1.1.0",
      fleets: ["lk"],
      waves: [{ percent: 100 }],
    })) as Rollout;
    await h.until(first.id, (x) => x.status === "ABORTED" && x.devices.length === 1, "first to abort");
    d.outcome = "SILENT";
    const blocker = (await h.api.post(`/rollouts/${first.id}/retry`, {})) as Rollout;
    expect(blocker.status).toBe("RUNNING");
    const err = await apiError(h.api.post(`/rollouts/${first.id}/retry`, {}));
    expect(err.status).toBe(409);
    expect(err.message).toMatch(new RegExp(`already has rollout ${blocker.id}`));
  });
});
