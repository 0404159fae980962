/**
 * The agent's maintenance-window gate (docs/fleets.md#maintenance-windows) against the local cloud: a job
 * whose document carries windows is downloaded and rebooted into only inside one, the wait is reported
 * as `step: waiting-for-window`, and survives a restart. Time is a virtual clock the test moves.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type AgentClock, abortReason } from "../../device/clock.ts";
import { startTestCloud, type TestCloud } from "./helpers/cloud.ts";
import { makeNode, type TestNode, waitFor } from "./helpers/node.ts";
import { makeSigners, type Signers } from "./helpers/release.ts";
import { NodeRunner } from "./helpers/runner.ts";

/** Waits shorter than a minute pass at once (virtual time moves on); longer ones wait for advance(). */
function virtualClock(start: number): AgentClock & { advanceTo(t: number): void; sleepers(): number } {
  let t = start;
  const long: Array<{ due: number; resolve: () => void }> = [];
  return {
    now: () => t,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(abortReason(signal));
        if (ms < 60_000) {
          t += Math.max(0, ms);
          setImmediate(resolve);
          return;
        }
        const entry = { due: t + ms, resolve };
        long.push(entry);
        signal?.addEventListener(
          "abort",
          () => {
            long.splice(long.indexOf(entry), 1);
            reject(abortReason(signal));
          },
          { once: true },
        );
      }),
    advanceTo(target) {
      t = Math.max(t, target);
      for (const s of [...long]) {
        if (s.due <= t) {
          long.splice(long.indexOf(s), 1);
          s.resolve();
        }
      }
    },
    sleepers: () => long.length,
  };
}

const at = (s: string) => Date.parse(s);

describe("the agent's maintenance-window gate", () => {
  let tmp: string;
  let cloud: TestCloud;
  let signers: Signers;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-window-"));
    cloud = await startTestCloud(join(tmp, "cloud"));
    signers = makeSigners();
    await cloud.putRelease(signers, {
      version: "1.1.0",
      releaseCounter: 2,
      image: Buffer.alloc(64 * 1024, 5),
    });
  });
  afterAll(async () => {
    await cloud?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it("waits to download and to reboot outside the window, across a restart, and installs inside it", async () => {
    const thing = "win-node";
    const dir = join(tmp, thing);
    const mqtt = await cloud.provision(thing, dir);
    const node: TestNode = await makeNode({ dir, signers, thingName: thing, config: { mqtt } });
    const clock = virtualClock(at("2026-01-05T12:00:00Z"));
    // Entering Verifying, the one-minute window has just closed: the reboot must wait for tomorrow's.
    const agent = node.agent.bind(node);
    node.agent = (o = {}) =>
      agent({
        clock,
        ...o,
        onTransition: (from, event, to) => {
          if (to === "Verifying") clock.advanceTo(at("2026-01-05T14:01:00Z"));
          o.onTransition?.(from, event, to);
        },
      });
    const window = { cron: "0 14 * * *", durationMinutes: 1, timeZone: "UTC" };
    const doc = {
      ...cloud.jobDocument({ rolloutId: "r1", version: "1.1.0", imageKey: "releases/1.1.0/image.squashfs" }),
      maintenanceWindows: [window],
    };

    let runner = new NodeRunner(node);
    await runner.start();
    await cloud.createJob(`${thing}-w`, thing, doc);
    await waitFor(() => runner.states.includes("WaitingToDownload") && clock.sleepers() > 0);
    // The wait's progress report follows the state's own (fire and forget): poll for it.
    await vi.waitFor(
      async () =>
        expect(await cloud.execution(thing, `${thing}-w`)).toMatchObject({
          status: "IN_PROGRESS",
          details: {
            phase: "waitingtodownload",
            step: "waiting-for-window",
            opensAt: "2026-01-05T14:00:00.000Z",
          },
        }),
      { timeout: 10_000, interval: 50 },
    );

    // A restart while waiting waits again (the state was saved before the wait), nothing downloaded.
    await runner.stop();
    const saved = JSON.parse(await readFile(join(node.config.stateDir, "state.json"), "utf8"));
    expect(saved.state).toBe("WaitingToDownload");
    runner = new NodeRunner(node);
    await runner.start();
    await waitFor(() => clock.sleepers() > 0);
    expect(runner.states).toEqual([]);
    expect((await node.slotBytes("B")).every((b) => b === 0xbb)).toBe(true);

    // The window opens: download and verify; it closes before the reboot, which waits for the next.
    clock.advanceTo(at("2026-01-05T14:00:00Z"));
    await waitFor(() => runner.states.includes("WaitingToReboot") && clock.sleepers() > 0);
    expect(runner.states).toEqual(["Downloading", "Verifying", "WaitingToReboot"]);
    expect((await node.boot.readState()).slots.B.bootable).toBe(false);
    expect(node.logs.some((l) => l.includes("2026-01-06T14:00:00.000Z"))).toBe(true);

    clock.advanceTo(at("2026-01-06T14:00:00Z"));
    await waitFor(() => runner.states.includes("Committed"));
    await runner.untilIdle();
    await runner.stop();
    expect(runner.states).toEqual(
      expect.arrayContaining(["Activating", "Rebooting", "HealthChecking", "Committed", "Idle"]),
    );
    expect((await cloud.execution(thing, `${thing}-w`)).status).toBe("SUCCEEDED");
  });
});
