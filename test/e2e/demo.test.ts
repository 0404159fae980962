/**
 * The demo scenario end to end on six simulated nodes (real agents, local cloud, Lambda wiring): 1.1.0 in
 * three waves reaches every node; 1.2.0 (kubelet never healthy) fails on the canary, which rolls back, and
 * the rollout aborts before any other node receives it. The outcome is asserted through the rollout API,
 * the IoT control plane and the nodes' disks — never through what the demo prints or reports.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { bucketGroupName, bucketOf } from "../../core/waves.ts";
import { type RolloutView, RolloutViewSchema } from "../../functions/rollout-api/contract.ts";
import { BAD_RELEASE, GOOD_RELEASE, type LastRun, runDemo } from "../../local/demo.ts";
import {
  discard,
  type E2E,
  executionDetails,
  executions,
  groupMembers,
  jobExists,
  onDisk,
  startE2E,
} from "./helpers.ts";

const DEVICES = 6;
const FLEET = "e2edemo";

describe("npm start's scenario on a six-node fleet", () => {
  let e: E2E;
  let good: RolloutView;
  let bad: RolloutView;
  let things: string[];
  let run: LastRun;

  beforeAll(async () => {
    // Prepare + Act: the demo's own scenario, its output discarded.
    e = await startE2E(FLEET, DEVICES);
    things = e.env.fleet.thingNames();
    run = await runDemo({ env: e.env, out: discard() });
    const list = z
      .object({ rollouts: z.array(z.object({ id: z.string(), release: z.string() })) })
      .parse(await e.env.tooling.api.get("/rollouts"));
    const view = async (release: string) => {
      const id = list.rollouts.find((r) => r.release === release)?.id ?? "";
      return RolloutViewSchema.parse(await e.env.tooling.api.get(`/rollouts/${id}`));
    };
    good = await view(GOOD_RELEASE);
    bad = await view(BAD_RELEASE);
  }, 240_000); // the cluster coordination (slot, drain, Node Ready) adds to every node's update

  afterAll(async () => {
    await e?.stop();
  });

  it("the API reports 1.1.0 SUCCEEDED on every device, and the fleet all on 1.1.0", async () => {
    expect(good.status).toBe("SUCCEEDED");
    expect(good.waves.every((w) => w.completedAt)).toBe(true);
    expect(good.devices.map((d) => d.thingName).sort()).toEqual(things);
    expect(good.devices.every((d) => d.status === "SUCCEEDED")).toBe(true);
    const fleet = z
      .object({ versions: z.record(z.string(), z.number()) })
      .parse(await e.env.tooling.api.get(`/fleets/${FLEET}`));
    expect(fleet.versions).toEqual({ [GOOD_RELEASE]: DEVICES });
  });

  it("IoT Jobs: each 1.1.0 wave job's executions all SUCCEEDED, and together they cover the fleet", async () => {
    const covered = new Set<string>();
    for (const w of good.waves) {
      const ex = await executions(e.iot, w.jobId);
      for (const [thing, status] of ex) {
        expect(status, `${w.jobId} ${thing}`).toBe("SUCCEEDED");
        covered.add(thing);
      }
    }
    expect([...covered].sort()).toEqual(things);
    // The canary wave targeted the canary alone.
    expect([...(await executions(e.iot, good.waves[0]?.jobId ?? "")).keys()]).toEqual([things[0]]);
  });

  it("IoT Jobs: 1.2.0 reached the canary only; it FAILED with rolledBack; later waves' jobs never existed", async () => {
    const canary = things[0] ?? "";
    expect(bad.status).toBe("ABORTED");
    const first = bad.waves[0]?.jobId ?? "";
    expect([...(await executions(e.iot, first)).entries()]).toEqual([[canary, "FAILED"]]);
    const d = await executionDetails(e.iot, first, canary);
    expect(d.details).toMatchObject({
      rolledBack: "true",
      fromVersion: GOOD_RELEASE,
      toVersion: BAD_RELEASE,
    });
    expect(d.details.reason).toMatch(/health check http .*healthz/);
    for (const w of bad.waves.slice(1)) {
      expect(w.jobCreatedAt).toBeUndefined();
      expect(await jobExists(e.iot, w.jobId)).toBe(false);
    }
    expect(bad.devices.map((x) => x.thingName)).toEqual([canary]);
  });

  it("bucket groups: every node is a member of exactly its hash bucket's group", async () => {
    for (const thing of things) {
      const own = bucketGroupName(FLEET, bucketOf(thing));
      expect(await groupMembers(e.iot, own), thing).toContain(thing);
    }
    const groups = new Set(things.map((t) => bucketGroupName(FLEET, bucketOf(t))));
    let memberships = 0;
    for (const g of groups) memberships += (await groupMembers(e.iot, g)).length;
    expect(memberships).toBe(DEVICES);
  });

  it("cluster: never more than maxUnavailable nodes down at once, no PDB violation, every node back in service", async () => {
    const kube = e.env.cloud.kube;
    if (!kube) throw new Error("the dev environment has no Kubernetes stand-in");
    // Watched on the stand-in's objects while the rollouts ran, not taken from the agents.
    const budget = e.env.fleet.nodes[0]?.config.kubernetes?.maxUnavailable ?? 0;
    const stats = kube.cluster.stats;
    expect(budget).toBeGreaterThanOrEqual(1);
    expect(stats.maxUnavailableObserved).toBeGreaterThanOrEqual(1);
    expect(stats.maxUnavailableObserved).toBeLessThanOrEqual(budget);
    expect(stats.pdbViolations).toBe(0);
    expect(stats.drains).toBeGreaterThanOrEqual(1);
    expect(run.kubernetes).toEqual({
      maxUnavailable: budget,
      maxUnavailableObserved: stats.maxUnavailableObserved,
      pdbViolations: 0,
      drains: stats.drains,
    });
    const nodes = kube.cluster.listNodes();
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(things.map((t) => t.toLowerCase()).sort());
    expect(kube.cluster.unavailableNodes()).toEqual([]);
    expect(kube.cluster.listLeases().every((l) => !l.spec.holderIdentity)).toBe(true);
  });

  it("disk: every node boots a committed slot holding 1.1.0; the canary's 1.2.0 slot is marked bad", async () => {
    const canary = things[0] ?? "";
    for (const thing of things) {
      const disk = await onDisk(e.env, thing);
      expect(disk.versions[disk.booted], thing).toBe(GOOD_RELEASE);
      expect(disk.boot.slots[disk.booted].good, thing).toBe(true);
      expect(disk.boot.next, thing).toBe(disk.booted);
      if (thing !== canary) expect(Object.values(disk.versions), thing).not.toContain(BAD_RELEASE);
    }
    const disk = await onDisk(e.env, canary);
    const other = disk.booted === "A" ? "B" : "A";
    expect(disk.versions[other]).toBe(BAD_RELEASE);
    expect(disk.boot.slots[other].bootable).toBe(false);
  });
});
