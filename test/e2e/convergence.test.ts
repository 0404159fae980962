/**
 * Convergence end to end with real agents on the local cloud (docs/fleets.md#target-release-and-convergence):
 * a rollout of 1.1.0 succeeds while one node is offline; the fleet's target becomes 1.1.0 and its
 * CONTINUOUS job reaches the nodes already on it (SUCCEEDED, nothing fetched), a node that joins later
 * and the offline node when it comes back. A rollout of the bad 1.2.0 pauses convergence and it resumes
 * after; a node where 1.2.0 rolled back is never moved to it by convergence.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "../../cli/api-client.ts";
import { FleetStatusSchema, type FleetTarget, RolloutSchema } from "../../functions/rollout-api/contract.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { publishDemoReleases } from "../../local/fleet/environment.ts";
import type { SimulatedFleet } from "../../local/fleet/fleet.ts";
import { startMoreNodes } from "../../local/fleet/join.ts";
import { keel } from "../cli/helpers.ts";
import { discard, type E2E, executionDetails, onDisk, startE2E, until } from "./helpers.ts";

const FLEET = "e2econv";

describe("a fleet converges on its target release", () => {
  let e: E2E;
  let api: ApiClient;
  const extra: SimulatedFleet[] = [];
  let things: string[];
  let target: FleetTarget;

  const fleetTarget = async () => FleetStatusSchema.parse(await api.get(`/fleets/${FLEET}`)).target;

  /** The fleet's target once its convergence job for `release` exists. */
  const convergingTo = (release: string, generation: number) =>
    until(`convergence to ${release} (generation ${generation})`, async () => {
      const t = await fleetTarget();
      const c = t?.convergence;
      return t?.release === release && c?.phase === "running" && c.generation === generation ? t : undefined;
    });

  const finished = (thing: string, jobId: string) =>
    until(
      `${thing}'s execution of ${jobId}`,
      async () => {
        const d = await executionDetails(e.iot, jobId, thing).catch(() => undefined);
        return d && !["QUEUED", "IN_PROGRESS", ""].includes(d.status) ? d : undefined;
      },
      120_000,
    );

  async function rollout(body: Record<string, unknown>, status: string) {
    const created = RolloutSchema.parse(await api.post("/rollouts", { fleets: [FLEET], ...body }));
    return until(
      `rollout ${created.id} ${status}`,
      async () => {
        const r = RolloutSchema.parse(await api.get(`/rollouts/${created.id}`));
        return r.status === status && r.locksReleased ? r : undefined;
      },
      180_000,
    );
  }

  beforeAll(async () => {
    e = await startE2E(FLEET, 2, { kubernetes: false });
    api = new ApiClient({
      apiUrl: e.env.info.api,
      region: e.env.info.region,
      credentials: LOCAL_CREDENTIALS,
    });
    await publishDemoReleases(e.env, () => discard());
    things = e.env.fleet.thingNames();
    // `keel … --local` reads .keel/local.json under its working directory.
    await mkdir(join(e.tmp, ".keel"), { recursive: true });
    await copyFile(join(e.env.paths.dir, "local.json"), join(e.tmp, ".keel", "local.json"));
    // A third node that goes offline before the rollout.
    const off = await startMoreNodes(e.env, { thingPrefix: "off", devices: 1 });
    await off.waitSettled(60_000);
    await off.stop();
  }, 180_000);

  afterAll(async () => {
    for (const f of extra) await f.stop();
    await e?.stop();
  });

  it("a rollout that succeeds without the offline node sets the target; nodes on it report SUCCEEDED having fetched nothing", async () => {
    const r = await rollout(
      { release: "1.1.0", waves: [{ percent: 100, successThresholdPercent: 60 }], healthDeadlineSeconds: 30 },
      "SUCCEEDED",
    );
    target = await convergingTo("1.1.0", 1);
    expect(target.rolloutId).toBe(r.id);
    const jobId = target.convergence.jobId ?? "";
    for (const thing of things) {
      const d = await finished(thing, jobId);
      expect(d).toMatchObject({
        status: "SUCCEEDED",
        details: { alreadyRunning: "true", bytesFetched: "0", version: "1.1.0" },
      });
    }
  });

  it("a node that joins later and the offline node that comes back converge with no operator action", async () => {
    const jobId = target.convergence.jobId ?? "";
    extra.push(await startMoreNodes(e.env, { thingPrefix: "late", devices: 1 }));
    extra.push(await startMoreNodes(e.env, { thingPrefix: "off", devices: 1, reuse: true }));
    for (const thing of ["late-0001", "off-0001"]) {
      expect(await finished(thing, jobId)).toMatchObject({
        status: "SUCCEEDED",
        details: { version: "1.1.0" },
      });
      await until(`${thing} committed on 1.1.0`, async () => {
        const disk = await onDisk(e.env, thing);
        return disk.versions[disk.booted] === "1.1.0" && disk.boot.slots[disk.booted].good ? true : undefined;
      });
    }
  });

  it("a rollout pauses convergence and it resumes after; convergence never moves a node to a release that rolled back on it", async () => {
    const canary = things[0] ?? "";
    const aborted = await rollout(
      { release: "1.2.0", waves: [{ canary: [canary] }, { percent: 100 }], healthDeadlineSeconds: 5 },
      "ABORTED",
    );
    expect(aborted.reason).toMatch(/wave 1/);
    // The target is still 1.1.0; the paused job was canceled and a new generation carries it on.
    const resumed = await convergingTo("1.1.0", 2);
    expect(resumed.convergence.jobId).not.toBe(target.convergence.jobId);
    expect(await finished(canary, resumed.convergence.jobId ?? "")).toMatchObject({ status: "SUCCEEDED" });

    // Only the canary is up; the operator makes 1.2.0 the target anyway.
    for (const f of [...extra, e.env.fleet]) for (const n of f.nodes) if (n.thing !== canary) await n.stop();
    // Through the CLI, as an operator would: a release never published is refused; 1.2.0 is set, audited
    // and shown.
    const cli = (...args: string[]) => keel(e.tmp, ...args, "--local");
    const refused = await cli("fleet", "set-target", FLEET, "1.0.0", "--reason", "back");
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/404 release 1\.0\.0 is not registered/);
    const set = await cli(
      "fleet",
      "set-target",
      FLEET,
      "1.2.0",
      "--reason",
      "e2e: a node that rolled back it",
    );
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/target 1\.2\.0, set .* e2e: a node that rolled back it/);
    const bad = await convergingTo("1.2.0", 3);
    expect((await cli("fleet", "status", FLEET)).stdout).toMatch(
      /target 1\.2\.0[\s\S]*converging with job keel-conv-/,
    );
    expect((await cli("audit", "--fleet", FLEET)).stdout).toMatch(/fleet\.set-target\s+e2econv/);
    const d = await finished(canary, bad.convergence.jobId ?? "");
    expect(d).toMatchObject({
      status: "REJECTED",
      details: { reason: "release 1.2.0 rolled back on this node; convergence never moves a node to it" },
    });
    const disk = await onDisk(e.env, canary);
    expect(disk.versions[disk.booted]).toBe("1.1.0");
    expect(disk.boot.slots[disk.booted].good).toBe(true);
  }, 240_000); // four CLI processes beside the agents
});
