/**
 * The aborted-rollouts alarm (infra/constructs/alarms.ts) counts log lines through a CloudWatch Logs metric
 * filter. These tests hold the functions to it: the logger's abort line carries `event` at a path the
 * filter reads, in the shape the Lambda runtime gives it under `loggingFormat: JSON`; and every way a
 * rollout becomes ABORTED — failure threshold, IoT canceling the job, the API's abort — logs it exactly once.
 */
import { CancelJobCommand } from "@aws-sdk/client-iot";
import { afterAll, afterEach, beforeAll, describe, expect, it, type MockInstance, vi } from "vitest";
import { consoleSink, createLogger, ROLLOUT_ABORTED_EVENT } from "../../functions/log.ts";
import { logIfAborted } from "../../functions/rollout/advance.ts";
import type { Rollout } from "../../functions/rollout/model.ts";
import { ROLLOUT_ABORTED_PATTERN } from "../../infra/constructs/alarms.ts";
import { namesAround, type RolloutHarness, startRolloutHarness } from "./rollout-harness.ts";

/** The `$.a.b = "v"` terms of the filter, which it ORs together (checked below). */
function filterTerms(pattern: string): Array<{ path: string[]; value: string }> {
  return [...pattern.matchAll(/\(\$\.([\w.]+) = "([^"]*)"\)/g)].map((m) => ({
    path: (m[1] ?? "").split("."),
    value: m[2] ?? "",
  }));
}

/** Whether a log event (as CloudWatch Logs stores it) matches the alarm's metric filter. */
function filterMatches(logEvent: string): boolean {
  let doc: unknown;
  try {
    doc = JSON.parse(logEvent);
  } catch {
    return false; // JSON filters only match JSON log events
  }
  return filterTerms(ROLLOUT_ABORTED_PATTERN.logPatternString).some(({ path, value }) => {
    let v: unknown = doc;
    for (const k of path)
      v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined;
    return v === value;
  });
}

/** What the Node.js Lambda runtime writes for console.error(arg) under JSON log format (LogPatch.js). */
function lambdaJsonEvent(arg: unknown): string {
  return JSON.stringify({
    timestamp: "2026-01-01T00:00:00.000Z",
    level: "WARN",
    requestId: "req-1",
    message: arg,
  });
}

const aborted = { id: "r1", status: "ABORTED", reason: "wave 1: 2 of 5 device(s) failed" } as Rollout;
const running = { id: "r1", status: "RUNNING" } as Rollout;

describe("the abort log line and the alarm's metric filter", () => {
  let spy: MockInstance<typeof console.error>;
  afterEach(() => spy?.mockRestore());

  it("the filter ORs the two paths of `event` that a Lambda JSON log event can have", () => {
    expect(ROLLOUT_ABORTED_PATTERN.logPatternString).toBe(
      `{ ($.event = "${ROLLOUT_ABORTED_EVENT}") || ($.message.event = "${ROLLOUT_ABORTED_EVENT}") }`,
    );
  });

  it("under Lambda's JSON format the line reaches the filter as $.message.event, with rolloutId and reason", () => {
    spy = vi.spyOn(console, "error").mockImplementation(() => {});
    logIfAborted(createLogger("advance-rollout", "info", consoleSink(true)), running, aborted);
    expect(spy).toHaveBeenCalledTimes(1);
    const event = lambdaJsonEvent(spy.mock.calls[0]?.[0]);
    expect(filterMatches(event)).toBe(true);
    expect(JSON.parse(event).message).toMatchObject({
      event: ROLLOUT_ABORTED_EVENT,
      rolloutId: "r1",
      reason: aborted.reason,
    });
  });

  it("printed as a bare JSON line (outside Lambda) it matches $.event", () => {
    spy = vi.spyOn(console, "error").mockImplementation(() => {});
    logIfAborted(createLogger("advance-rollout", "info", consoleSink(false)), running, aborted);
    const line = spy.mock.calls[0]?.[0];
    expect(typeof line).toBe("string");
    expect(filterMatches(line as string)).toBe(true);
  });

  it("a JSON string handed to the Lambda runtime would not match (why the object is passed)", () => {
    const asString = JSON.stringify({ event: ROLLOUT_ABORTED_EVENT, rolloutId: "r1" });
    expect(filterMatches(lambdaJsonEvent(asString))).toBe(false);
  });

  it("logs only the transition into ABORTED, not a state that already was", () => {
    spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const log = createLogger("advance-rollout", "info", consoleSink(false));
    logIfAborted(log, aborted, { ...aborted, cancelDone: true });
    logIfAborted(log, running, { ...running, status: "PAUSED" });
    expect(spy).not.toHaveBeenCalled();
  });
});

describe("every abort is logged once, whichever function and cause", () => {
  let h: RolloutHarness;
  let spy: MockInstance<typeof console.error>;
  beforeAll(async () => {
    // Warnings on: the abort line is a warning (so it survives LOG_LEVEL=warn). The functions run in
    // this process, so their lines pass through this spy.
    spy = vi.spyOn(console, "error").mockImplementation(() => {});
    h = await startRolloutHarness("warn");
  });
  afterAll(async () => {
    await h?.stop();
    spy?.mockRestore();
  });

  const abortLines = (id: string) =>
    spy.mock.calls
      .map((c) => c[0])
      .filter((a): a is string => typeof a === "string" && filterMatches(a))
      .map((a) => JSON.parse(a) as { rolloutId: string; reason: string })
      .filter((l) => l.rolloutId === id);

  it("failure threshold, IoT canceling the job, and the API's abort", async () => {
    const start = async (fleet: string, outcomes: Array<"FAILED" | "SUCCEEDED" | "SILENT">) => {
      const names = namesAround(fleet, outcomes.length, 0);
      for (const [i, n] of names.entries()) await h.registerDevice(fleet, n, outcomes[i] ?? "SILENT");
      const r = (await h.api.post("/rollouts", {
        release: "1.1.0",
        fleets: [fleet],
        waves: [{ percent: 100, failureThresholdPercent: 20 }],
      })) as Rollout;
      return r.id;
    };
    const byThreshold = await start("ab-th", ["FAILED", "FAILED", "SUCCEEDED"]);
    const byIot = await start("ab-iot", ["SILENT", "SILENT"]);
    const byApi = await start("ab-api", ["SILENT"]);

    await h.cloud.iotClient.send(
      new CancelJobCommand({ jobId: `keel-${byIot}-w1`, reasonCode: "OPERATOR", comment: "stopped by hand" }),
    );
    await h.api.post(`/rollouts/${byApi}/abort`, { reason: "bad build" });

    const done = (r: { status: string; locksReleased?: boolean }) =>
      r.status === "ABORTED" && !!r.locksReleased;
    const finals = [
      await h.until(byThreshold, done, "threshold abort"),
      await h.until(byIot, done, "IoT cancel"),
      await h.until(byApi, done, "API abort"),
    ];
    // Later ticks and events see the rollouts already ABORTED and log nothing more.
    await h.wiring.tick();
    for (const r of finals) {
      const lines = abortLines(r.id);
      expect(lines).toHaveLength(1);
      expect(lines[0]?.reason).toBe(r.reason);
    }
    expect(finals[0]?.reason).toMatch(/^wave 1: [12] of 3 device\(s\) failed/);
    expect(finals[1]?.reason).toMatch(/canceled \(OPERATOR: stopped by hand\)/);
    expect(finals[2]?.reason).toBe("aborted by arn:aws:iam::000000000000:user/keel-local: bad build");
  });
});
