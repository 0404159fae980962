/**
 * Cordon, drain, health gate, Node Ready and metrics against the stand-in, through the agent's real client.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../../device/clock.ts";
import { KubernetesConfigSchema } from "../../../device/kubernetes/config.ts";
import { KubernetesCoordinator, waitJitterMs } from "../../../device/kubernetes/coordinator.ts";
import { CORDONED_BY_ANNOTATION } from "../../../device/kubernetes/drain.ts";
import { DrainTimeoutError, RebootPreconditionError } from "../../../device/kubernetes/errors.ts";
import { healthGate } from "../../../device/kubernetes/gate.ts";
import { AgentMetrics, serveMetrics } from "../../../device/kubernetes/metrics.ts";
import { createLogger } from "../../../device/logger.ts";
import { startTestCluster, type TestCluster, until } from "../../local/k8s/helpers.ts";

let c: TestCluster;
const logger = createLogger({ level: "error" });
const nodes = ["n1", "n2", "n3", "n4"];

beforeAll(async () => {
  c = await startTestCluster({ nodes });
  const k = c.standin.cluster;
  k.addDaemonSet("kube-system", "cni", { app: "cni" });
  k.addReplicaSet("default", "web", { app: "web" }, 4);
  k.addPdb("default", "web", { minAvailable: 3, selector: { matchLabels: { app: "web" } } });
  k.addPod({
    metadata: {
      name: "kube-proxy-n1",
      namespace: "kube-system",
      annotations: { "kubernetes.io/config.mirror": "x" },
    },
    spec: { nodeName: "n1", containers: [{ name: "p", image: "proxy" }] },
    status: { phase: "Running" },
  });
  await until(
    () =>
      k
        .listPods()
        .every(
          (p) => p.status.conditions?.[0]?.status === "True" || p.metadata.name.startsWith("kube-proxy"),
        ),
    "pods ready",
  );
});
afterAll(() => c.stop());

function coordinator(node: string, o: Record<string, unknown> = {}, metrics?: AgentMetrics) {
  const config = KubernetesConfigSchema.parse({
    nodeName: node,
    pollIntervalMs: 20,
    maxBackoffMs: 100,
    leaseDurationSeconds: 30,
    ...o,
  });
  return new KubernetesCoordinator({
    config,
    thingName: node,
    client: c.client,
    clock: systemClock(),
    logger,
    metrics,
  });
}

const slotHoldersNow = () =>
  c.standin.cluster
    .listLeases("keel-system")
    .flatMap((l) => (l.spec.holderIdentity ? [l.spec.holderIdentity] : []));

const webOn = (node: string) =>
  c.standin.cluster
    .podsOn(node)
    .filter((p) => p.metadata.labels?.app === "web" && !p.metadata.deletionTimestamp);

describe("health gate (pure)", () => {
  const n = (name: string, ready = true, unschedulable = false) => ({
    name,
    ready,
    unschedulable,
    bootID: null,
    annotations: {},
  });
  it("counts NotReady, cordoned and slot-holding nodes other than me, each once", () => {
    expect(healthGate([n("a"), n("b", false), n("c", true, true)], "a", ["b"], 2)).toEqual({
      ok: false,
      busy: ["b", "c"],
    });
    expect(healthGate([n("a", false), n("b")], "a", ["a"], 1)).toEqual({ ok: true, busy: [] });
    expect(healthGate([n("a"), n("b")], "a", [], 1).ok).toBe(true);
  });
});

describe("wait jitter (pure)", () => {
  it("spreads the nodes of one wave over [0.5, 1.5) of the poll interval instead of one instant", () => {
    const waits = Array.from({ length: 100 }, (_, i) => waitJitterMs(`node-${i}`, 0, 1000));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...waits)).toBeLessThan(1500);
    expect(new Set(waits).size).toBeGreaterThan(80);
    expect(Math.max(...waits) - Math.min(...waits)).toBeGreaterThan(800);
    expect(waitJitterMs("node-1", 3, 1000)).toBe(waitJitterMs("node-1", 3, 1000));
    expect(waitJitterMs("node-1", 3, 1000)).not.toBe(waitJitterMs("node-1", 4, 1000));
  });
});

describe("coordinator", () => {
  it("waits at the health gate while another node is NotReady, then takes the slot", async () => {
    const k = c.standin.cluster;
    k.setNodeReady("n4", false);
    const waits: string[] = [];
    const heldWhileWaiting: string[] = [];
    const ctl = new AbortController();
    const taking = coordinator("n1").waitForSlot(ctl.signal, (why) => {
      waits.push(why);
      // Read the stand-in's own objects at the moment the node decides to wait: the slot is already back.
      heldWhileWaiting.push(...slotHoldersNow());
    });
    await until(() => waits.length >= 3, "the gate to make it wait");
    expect(waits[0]).toMatch(/cluster health gate: unavailable n4/);
    expect(heldWhileWaiting).toEqual([]);
    k.setNodeReady("n4", true);
    await taking;
    expect((await c.client.getLease("keel-system", "keel-reboot-slot-0"))?.holder).toBe("n1");
  });

  it("drains past a PDB refusal (skipping DaemonSet and mirror pods), then the re-check before reboot passes", async () => {
    const metrics = new AgentMetrics();
    const co = coordinator("n1", {}, metrics);
    const k = c.standin.cluster;
    k.setNodeReady("n3", false); // n3's web replica is down: the budget (3 of 4) has no disruption left
    // The test's own outage of n3 is not the drain's doing: count only what the drain adds.
    const violationsBefore = k.stats.pdbViolations;
    const draining = co.cordonAndDrain(new AbortController().signal);
    await until(() => k.stats.evictionsBlocked > 0, "a refused eviction");
    k.setNodeReady("n3", true);
    const r = await draining;
    expect(r.refusals).toBeGreaterThan(0);
    expect(webOn("n1")).toHaveLength(0);
    expect(
      k
        .podsOn("n1")
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual([expect.stringMatching(/^cni-/), "kube-proxy-n1"]);
    expect(k.getNode("n1").spec.unschedulable).toBe(true);
    expect(k.stats.pdbViolations - violationsBefore).toBe(0);
    await co.beforeReboot();
    // The reboot: a new bootID; the Node Ready check passes only with it.
    expect(await co.nodeReady(100, new AbortController().signal)).toMatchObject({
      ok: false,
      reason: /bootID from before/,
    });
    k.setNodeReady("n1", true, { bootID: "n1-boot-2" });
    expect(await co.nodeReady(5000, new AbortController().signal)).toEqual({ ok: true });
    await co.finish();
    expect(k.getNode("n1").spec.unschedulable).toBe(false);
    expect((await c.client.getLease("keel-system", "keel-reboot-slot-0"))?.holder).toBeNull();
    expect(metrics.render()).toMatch(/keel_agent_drains_total\{result="drained"\} 1/);
  });

  it("drain timeout names the blocking pods; finish uncordons and releases; an operator's cordon stays", async () => {
    const k = c.standin.cluster;
    const co = coordinator("n2", { drainTimeoutSeconds: 1 });
    await co.waitForSlot(new AbortController().signal, () => {});
    k.setNodeReady("n3", false);
    const err = await co.cordonAndDrain(new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DrainTimeoutError);
    expect((err as DrainTimeoutError).blocking[0]).toMatchObject({
      pod: expect.stringMatching(/^default\/web-/),
      reason: "PodDisruptionBudget",
    });
    await co.finish();
    expect(k.getNode("n2").spec.unschedulable).toBe(false);
    expect(k.getNode("n2").metadata.annotations?.[CORDONED_BY_ANNOTATION]).toBeUndefined();
    expect((await c.client.getLease("keel-system", "keel-reboot-slot-0"))?.holder).toBeNull();
    k.setNodeReady("n3", true);
    // An operator's cordon is not ours to lift.
    await c.client.patchNode("n4", { unschedulable: true });
    await coordinator("n4").finish();
    expect(k.getNode("n4").spec.unschedulable).toBe(true);
    await c.client.patchNode("n4", { unschedulable: false });
  });

  it("refuses to reboot when the node was uncordoned or the slot lapsed", async () => {
    const co = coordinator("n2");
    await co.waitForSlot(new AbortController().signal, () => {});
    await c.client.patchNode("n2", { unschedulable: false });
    await expect(co.beforeReboot()).rejects.toThrow(RebootPreconditionError);
    await co.finish();
    await expect(coordinator("n2").beforeReboot()).rejects.toThrow(/no longer cordoned/);
  });

  it("waiting nodes do not list Nodes while every slot is held; the freed slot goes to one of them", async () => {
    const holder = coordinator("n3");
    await holder.waitForSlot(new AbortController().signal, () => {});
    const waits = new Map<string, number>();
    const ctl = new AbortController();
    const from = c.requests.length;
    const waiting = ["n1", "n2"].map((n) => {
      const co = coordinator(n);
      return co
        .waitForSlot(ctl.signal, () => waits.set(n, (waits.get(n) ?? 0) + 1))
        .then(() => co)
        .catch(() => null);
    });
    await until(() => (waits.get("n1") ?? 0) >= 3 && (waits.get("n2") ?? 0) >= 3, "both to wait three times");
    const asked = c.requests.slice(from);
    expect(asked.filter((r) => r.path === "/api/v1/nodes")).toEqual([]);
    expect(asked.filter((r) => r.path.includes("/leases/")).length).toBeGreaterThanOrEqual(6);
    await holder.finish();
    const winner = await Promise.race(waiting);
    ctl.abort();
    const rest = await Promise.all(waiting);
    expect(slotHoldersNow()).toEqual([winner?.node]);
    expect(rest.filter((co) => co !== null)).toEqual([winner]);
    await winner?.finish();
    expect(slotHoldersNow()).toEqual([]);
  });
});

describe("metrics", () => {
  it("serves the Prometheus text format with escaped labels", async () => {
    const m = new AgentMetrics();
    m.setState("Draining");
    m.setState("Idle");
    m.setSlot("A", '1.0.0"x', true, true);
    m.addDownloadedBytes(10);
    m.addDownloadedBytes(5);
    m.observeSlotWait(2.5);
    const s = await serveMetrics(m, { host: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(s.url);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      expect(text).toContain('keel_agent_state{state="Idle"} 1');
      expect(text).not.toContain("Draining");
      expect(text).toContain('keel_agent_slot_info{slot="A",version="1.0.0\\"x",booted="true"} 1');
      expect(text).toContain(
        "# TYPE keel_agent_downloaded_bytes_total counter\nkeel_agent_downloaded_bytes_total 15",
      );
      expect(text).toContain("keel_agent_reboot_slot_wait_seconds 2.5");
      expect((await fetch(s.url.replace("/metrics", "/other"))).status).toBe(404);
    } finally {
      await s.stop();
    }
  });
});
