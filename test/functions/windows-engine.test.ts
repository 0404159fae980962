/** The engine's window gate and retry planning, and the windows a wave's job carries: plain functions. */
import { describe, expect, it } from "vitest";
import type { MaintenanceWindow } from "../../core/maintenance-window.ts";
import {
  applyWindow,
  gate,
  MAX_RETRY_DEVICES,
  nextEffect,
  planRetry,
  planRollout,
  retryTargets,
} from "../../functions/rollout/engine.ts";
import type { DeviceOutcome, Rollout, WaveCounts } from "../../functions/rollout/model.ts";
import { awsMaintenanceWindows, documentWindows } from "../../functions/rollout/windows.ts";
import { CreateRolloutBodySchema } from "../../functions/rollout-api/contract.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const release = { version: "1.2.0", releaseCounter: 5, manifestKey: "m", imageKey: "i" };
const plan = (waves: unknown[]): Rollout =>
  planRollout({
    id: "r1",
    body: CreateRolloutBodySchema.parse({ release: "1.2.0", fleets: ["edge"], waves }),
    release,
    now: T0,
    by: "tester",
  });
const counts = (succeeded: number): WaveCounts => ({
  queued: 0,
  inProgress: 0,
  succeeded,
  failed: 0,
  rejected: 0,
  canceled: 0,
  timedOut: 0,
  removed: 0,
});
const closed = { open: false, opensAt: T0 + 3_600_000 };

describe("applyWindow", () => {
  it("holds the first wave's job outside the window and releases it when one opens", () => {
    const r = plan([{ percent: 100 }]);
    const waiting = applyWindow(r, closed, T0);
    expect(waiting?.waitingForWindow).toEqual({
      since: new Date(T0).toISOString(),
      opensAt: "2026-01-01T01:00:00.000Z",
    });
    expect(waiting?.timeline.at(-1)?.event).toBe("window-closed");
    expect(nextEffect(waiting as Rollout)).toBeNull();
    expect(applyWindow(waiting as Rollout, closed, T0 + 1000)).toBeNull(); // nothing new: no write
    const open = applyWindow(waiting as Rollout, { open: true }, T0 + 3_600_000);
    expect(open?.waitingForWindow).toBeUndefined();
    expect(open?.timeline.at(-1)?.event).toBe("window-opened");
    expect(nextEffect(open as Rollout)).toEqual({ kind: "create-job", waveIndex: 0 });
    expect(applyWindow(open as Rollout, { open: true }, T0)).toBeNull();
  });

  it("keeps a baked wave from advancing while closed, but lets the last wave finish", () => {
    let r = plan([{ percent: 50 }, { percent: 100 }]);
    r = { ...r, waves: r.waves.map((w, i) => (i === 0 ? { ...w, jobCreatedAt: r.createdAt } : w)) };
    const obs = { jobStatus: "IN_PROGRESS", counts: counts(2), processing: false };
    const held = gate(applyWindow(r, closed, T0) as Rollout, obs, T0);
    expect(held?.current).toBe(0);
    expect(held?.waves[0]?.thresholdMetAt).toBeDefined();
    expect(held?.waves[0]?.completedAt).toBeUndefined();
    const advanced = gate(applyWindow(held as Rollout, { open: true }, T0) as Rollout, obs, T0);
    expect(advanced?.current).toBe(1);

    const last = {
      ...(advanced as Rollout),
      waves: (advanced as Rollout).waves.map((w) => ({ ...w, jobCreatedAt: r.createdAt })),
    };
    const done = gate(applyWindow(last, closed, T0) as Rollout, obs, T0);
    expect(done?.status).toBe("SUCCEEDED");
  });

  it("leaves finished and stalled rollouts alone, bar clearing the wait of one aborted while waiting", () => {
    const r = plan([{ percent: 100 }]);
    expect(applyWindow({ ...r, status: "SUCCEEDED" }, closed, T0)).toBeNull();
    const aborted = { ...(applyWindow(r, closed, T0) as Rollout), status: "ABORTED" as const };
    expect(applyWindow(aborted, { open: true }, T0)?.waitingForWindow).toBeUndefined();
    expect(applyWindow({ ...r, status: "STALLED" }, closed, T0)).toBeNull();
  });
});

describe("retry planning", () => {
  const outcome = (thingName: string, status: string, rolledBack = false): DeviceOutcome => ({
    thingName,
    wave: 1,
    status,
    at: 0,
    ...(rolledBack ? { statusDetails: { rolledBack: "true" } } : {}),
  });

  it("targets FAILED, TIMED_OUT and REJECTED devices by their latest outcome; rolled back only if asked", () => {
    const outcomes = [
      outcome("a", "SUCCEEDED"),
      outcome("b", "FAILED", true),
      outcome("c", "TIMED_OUT"),
      outcome("d", "REJECTED"),
      outcome("e", "CANCELED"),
      outcome("f", "FAILED"),
      outcome("f", "SUCCEEDED"), // a later success wins
    ];
    expect(retryTargets(outcomes, false)).toEqual(["c", "d"]);
    expect(retryTargets(outcomes, true)).toEqual(["b", "c", "d"]);
  });

  it("puts at most 100 things in each wave's job, with the original's last gates and its fleets", () => {
    const original = plan([
      { percent: 10 },
      { percent: 100, failureThresholdPercent: 25, successThresholdPercent: 80 },
    ]);
    const things = Array.from({ length: 250 }, (_, i) => `t${String(i).padStart(3, "0")}`);
    const r = planRetry({ id: "r2", original, things, now: T0, by: "op", forced: false });
    expect(r.waves.map((w) => w.things?.length)).toEqual([100, 100, 50]);
    expect(r.waves.flatMap((w) => w.things)).toEqual(things);
    expect(
      r.waves.every(
        (w) => w.kind === "things" && w.failureThresholdPercent === 25 && w.successThresholdPercent === 80,
      ),
    ).toBe(true);
    expect(r.waves.map((w) => w.jobId)).toEqual(["keel-r2-w1", "keel-r2-w2", "keel-r2-w3"]);
    expect(r).toMatchObject({
      retryOf: "r1",
      fleets: ["edge"],
      release: "1.2.0",
      status: "RUNNING",
      current: 0,
    });
    expect(() => planRetry({ id: "r3", original, things: [], now: T0, by: "op", forced: false })).toThrow(
      RangeError,
    );
    const tooMany = Array.from({ length: MAX_RETRY_DEVICES + 1 }, (_, i) => `t${i}`);
    expect(() =>
      planRetry({ id: "r3", original, things: tooMany, now: T0, by: "op", forced: false }),
    ).toThrow(RangeError);
  });
});

describe("the windows a wave's job carries", () => {
  const utc = (cron: string, durationMinutes = 60): MaintenanceWindow => ({
    cron,
    durationMinutes,
    timeZone: "UTC",
  });

  it("puts the fleets' windows in the document only when every fleet has the same ones", () => {
    expect(documentWindows([[utc("0 2 * * *")], [utc("0 2 * * *")]])).toEqual([utc("0 2 * * *")]);
    expect(documentWindows([[utc("0 2 * * *")], [utc("0 3 * * *")]])).toEqual([]);
    expect(documentWindows([[], [utc("0 3 * * *")]])).toEqual([]);
    expect(documentWindows([])).toEqual([]);
  });

  it("writes UTC windows as AWS cron, and passes none AWS cannot express", () => {
    expect(awsMaintenanceWindows([utc("0 2 * * *", 90)])).toEqual([
      { startTime: "cron(0 2 * * ? *)", durationInMinutes: 90 },
    ]);
    expect(awsMaintenanceWindows([utc("*/30 1-3 * JAN,JUL 1-5")])).toEqual([
      { startTime: "cron(0,30 1,2,3 ? 1,7 MON,TUE,WED,THU,FRI *)", durationInMinutes: 60 },
    ]);
    expect(awsMaintenanceWindows([utc("0 2 15 * *")])).toEqual([
      { startTime: "cron(0 2 15 * ? *)", durationInMinutes: 60 },
    ]);
    expect(
      awsMaintenanceWindows([{ cron: "0 2 * * *", durationMinutes: 60, timeZone: "Europe/Berlin" }]),
    ).toBeUndefined();
    expect(awsMaintenanceWindows([utc("0 2 1 * MON")])).toBeUndefined(); // either day field may match
    expect(awsMaintenanceWindows([utc("0-59 0-23 1-31 * *")])).toBeUndefined(); // over AWS's 256 characters
    expect(awsMaintenanceWindows([])).toBeUndefined();
  });
});
