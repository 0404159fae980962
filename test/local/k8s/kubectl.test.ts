/**
 * The real kubectl v1.35 against the stand-in: get, cordon, uncordon, and drain with the flags users type,
 * including a drain that a PodDisruptionBudget blocks until the budget frees.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, type TestCluster, until } from "./helpers.ts";

let c: TestCluster;
beforeAll(async () => {
  c = await startTestCluster({ nodes: ["n1", "n2", "n3"] });
  c.standin.cluster.addDaemonSet("kube-system", "cni", { app: "cni" });
  c.standin.cluster.addReplicaSet("default", "web", { app: "web" }, 3);
  c.standin.cluster.addPdb("default", "web", { minAvailable: 2, selector: { matchLabels: { app: "web" } } });
  await until(
    () => c.standin.cluster.listPods().every((p) => p.status.conditions?.[0]?.status === "True"),
    "pods ready",
  );
});
afterAll(() => c.stop());

describe("real kubectl against the stand-in", () => {
  it("get nodes lists every node with its status and version", async () => {
    const r = await c.kubectl("get", "nodes");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION/);
    for (const n of ["n1", "n2", "n3"])
      expect(r.stdout).toMatch(new RegExp(`^${n}\\s+Ready\\s+<none>\\s+\\S+\\s+v1\\.35\\.0$`, "m"));
  });

  it("cordon and uncordon flip spec.unschedulable, and get shows SchedulingDisabled", async () => {
    expect((await c.kubectl("cordon", "n3")).stdout).toContain("node/n3 cordoned");
    expect(c.standin.cluster.getNode("n3").spec.unschedulable).toBe(true);
    expect((await c.kubectl("get", "node", "n3")).stdout).toContain("Ready,SchedulingDisabled");
    expect((await c.kubectl("uncordon", "n3")).stdout).toContain("node/n3 uncordoned");
    // kubectl uncordon removes the field (strategic merge patch with null), as against a real server.
    expect(c.standin.cluster.getNode("n3").spec.unschedulable).toBeUndefined();
  });

  it("drain refuses DaemonSet pods without --ignore-daemonsets and changes no pod", async () => {
    const before = c.standin.cluster.listPods().length;
    const r = await c.kubectl("drain", "n2");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/DaemonSet-managed Pods/);
    expect(c.standin.cluster.listPods().filter((p) => p.metadata.deletionTimestamp)).toHaveLength(0);
    expect(c.standin.cluster.listPods()).toHaveLength(before);
    await c.kubectl("uncordon", "n2");
  });

  it("drain waits while the PodDisruptionBudget forbids the eviction and finishes once it frees", async () => {
    const cluster = c.standin.cluster;
    // Take n3 down: its web replica is not Ready, so the budget (2 of 3) has no disruption left.
    cluster.setNodeReady("n3", false);
    const drained = c.kubectl(
      "drain",
      "n1",
      "--ignore-daemonsets",
      "--delete-emptydir-data",
      "--timeout=60s",
    );
    await until(() => cluster.stats.evictionsBlocked > 0, "a refused eviction");
    cluster.setNodeReady("n3", true);
    const r = await drained;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/disruption budget/);
    expect(r.stdout).toContain("node/n1 drained");
    const left = cluster.podsOn("n1").filter((p) => p.metadata.ownerReferences?.[0]?.kind !== "DaemonSet");
    expect(left).toHaveLength(0);
    expect(cluster.getNode("n1").spec.unschedulable).toBe(true);
    expect(cluster.stats.pdbViolations).toBe(0);
    expect(cluster.stats.drains).toBe(1);
    expect((await c.kubectl("uncordon", "n1")).code).toBe(0);
  });
});
