import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, type TestCluster, until } from "../../local/k8s/helpers.ts";
import { startTestCloud, type TestCloud } from "../helpers/cloud.ts";
import { expectBackOnA, makeNode, type TestNode } from "../helpers/node.ts";
import { makeSigners, type Signers, squashfsImage } from "../helpers/release.ts";
import { NodeRunner } from "../helpers/runner.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"]);

describe("keel-agent on a Kubernetes node", () => {
  let tmp: string;
  let cloud: TestCloud;
  let k8s: TestCluster;
  let signers: Signers;
  let n = 0;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-k8s-agent-"));
    [cloud, k8s] = await Promise.all([startTestCloud(join(tmp, "cloud")), startTestCluster()]);
    signers = makeSigners();
    await cloud.putRelease(signers, {
      version: "1.1.0",
      releaseCounter: 2,
      image: await squashfsImage(tmp),
    });
  });
  afterAll(async () => {
    await Promise.all([cloud?.stop(), k8s?.stop()]);
    await rm(tmp, { recursive: true, force: true });
  });

  /** A node and a neighbour; each test has its own lease namespace, so tests never see each other's slots. */
  async function newNode(o: { health?: string; kube?: Record<string, unknown>; minAvailable?: number } = {}) {
    const id = ++n;
    const thing = `knode-${id}`;
    const other = `kother-${id}`;
    const cluster = k8s.standin.cluster;
    cluster.addNode({ name: thing, ready: true, bootID: `${thing}-boot-0` });
    cluster.addNode({ name: other, ready: true, bootID: `${other}-boot-0` });
    const dir = join(tmp, thing);
    const mqtt = await cloud.provision(thing, dir);
    const node = await makeNode({
      dir,
      signers,
      thingName: thing,
      config: {
        mqtt,
        health: [
          { type: "command", command: o.health ?? "true", retries: 1, intervalSeconds: 0 },
          { type: "broker", retries: 50, intervalSeconds: 0.1 },
        ],
        kubernetes: {
          kubeconfig: k8s.kubeconfig,
          namespace: `test-${id}`,
          pollIntervalMs: 50,
          maxBackoffMs: 200,
          leaseDurationSeconds: 30,
          ...o.kube,
        },
      },
    });
    // Each reboot shows in the cluster as a new bootID once the node is back.
    let boots = 0;
    const powerOn = node.powerOn.bind(node);
    node.powerOn = async () => {
      cluster.setNodeReady(thing, false);
      const r = await powerOn();
      cluster.setNodeReady(thing, true, { bootID: `${thing}-boot-${++boots}` });
      return r;
    };
    return { node, thing, other, ns: `test-${id}` };
  }

  /** A replicated set across the two nodes with a budget, placed while the rest of the cluster is cordoned. */
  async function workload(thing: string, other: string, minAvailable: number) {
    const cluster = k8s.standin.cluster;
    const others = cluster
      .listNodes()
      .filter((x) => ![thing, other].includes(x.metadata.name) && !x.spec.unschedulable);
    for (const x of others)
      cluster.patchNode(
        x.metadata.name,
        "application/merge-patch+json",
        { spec: { unschedulable: true } },
        null,
      );
    cluster.addReplicaSet("default", `app-${thing}`, { app: thing }, 2);
    cluster.addPdb("default", `app-${thing}`, { minAvailable, selector: { matchLabels: { app: thing } } });
    await until(
      () =>
        cluster
          .listPods()
          .filter((p) => p.metadata.labels?.app === thing && p.status.conditions?.[0]?.status === "True")
          .length === 2,
      "replicas ready",
    );
    for (const x of others)
      cluster.patchNode(
        x.metadata.name,
        "application/merge-patch+json",
        { spec: { unschedulable: null } },
        null,
      );
  }

  async function finalStatus(thing: string, jobId: string) {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const last = await cloud.execution(thing, jobId);
      if (TERMINAL.has(last.status)) return last;
      if (Date.now() > deadline) throw new Error(`job ${jobId} never ended: ${JSON.stringify(last)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const doc = () =>
    cloud.jobDocument({ rolloutId: "r1", version: "1.1.0", imageKey: "releases/1.1.0/image.squashfs" });

  async function start(node: TestNode, thing: string, name: string) {
    const runner = new NodeRunner(node);
    await runner.start();
    await cloud.createJob(`${thing}-${name}`, thing, doc());
    return runner;
  }

  const slotHolder = async (ns: string) =>
    (await k8s.client.getLease(ns, "keel-reboot-slot-0"))?.holder ?? null;

  it("takes a slot, cordons, drains, reboots, waits for Node Ready, then uncordons and releases", async () => {
    const { node, thing, other, ns } = await newNode();
    await workload(thing, other, 1);
    const cluster = k8s.standin.cluster;
    const events: string[] = [];
    const off = cluster.onEvent((e) => {
      if ("node" in e && e.node === thing) events.push(e.type);
    });
    const runner = await start(node, thing, "ok");
    const r = await finalStatus(thing, `${thing}-ok`);
    await runner.untilIdle();
    // The agent's Prometheus metrics after the boot into B.
    const metrics = runner.agent?.metrics.render() ?? "";
    await runner.stop();
    off();
    expect(metrics).toContain('keel_agent_state{state="Idle"} 1');
    expect(metrics).toContain('keel_agent_last_result{result="Committed",version="1.1.0"}');
    expect(metrics).toContain('keel_agent_slot_info{slot="B",version="1.1.0",booted="true"} 1');
    expect(r).toMatchObject({ status: "SUCCEEDED", details: { version: "1.1.0", slot: "B" } });
    expect(runner.states.slice(3, 7)).toEqual(["AcquiringRebootSlot", "Draining", "Activating", "Rebooting"]);
    // Cordoned and drained before the reboot (not-ready), uncordoned only after it was Ready again.
    expect(events).toEqual(["cordoned", "evicted", "not-ready", "ready", "uncordoned"]);
    expect(cluster.podsOn(thing).filter((p) => p.metadata.labels?.app === thing)).toHaveLength(0);
    expect(cluster.getNode(thing).spec.unschedulable).toBe(false);
    expect(await slotHolder(ns)).toBeNull();
    expect(cluster.stats.pdbViolations).toBe(0);
  });

  it("waits at the health gate (IN_PROGRESS, step waiting-for-reboot-slot) while another node is NotReady", async () => {
    const { node, thing, other, ns } = await newNode();
    const cluster = k8s.standin.cluster;
    cluster.setNodeReady(other, false);
    const runner = await start(node, thing, "gate");
    await until(
      async () => (await cloud.execution(thing, `${thing}-gate`)).details.step === "waiting-for-reboot-slot",
      "the gate report",
    );
    expect(cluster.getNode(thing).spec.unschedulable).toBeUndefined();
    // A node the gate refuses gives the slot back after each try (the coordinator test proves it per try).
    await until(async () => (await slotHolder(ns)) === null, "the slot given back");
    expect((await node.boot.readState()).next).not.toBe("B");
    cluster.setNodeReady(other, true);
    expect((await finalStatus(thing, `${thing}-gate`)).status).toBe("SUCCEEDED");
    await runner.untilIdle();
    await runner.stop();
  });

  it("drain timeout: FAILED drain-timeout with the blocking pod, uncordoned, slot released, nothing activated", async () => {
    const { node, thing, other, ns } = await newNode({ kube: { drainTimeoutSeconds: 1 } });
    await workload(thing, other, 2); // the budget never allows an eviction
    const env = await node.envBytes();
    const runner = await start(node, thing, "stuck");
    const r = await finalStatus(thing, `${thing}-stuck`);
    await runner.untilIdle();
    await runner.stop();
    expect(r.status).toBe("FAILED");
    expect(r.details).toMatchObject({ rolledBack: "false", reason: "drain-timeout" });
    expect(r.details.blockingPods).toMatch(new RegExp(`default/app-${thing}-\\w+ \\(PodDisruptionBudget\\)`));
    expect(runner.boots).toEqual([]);
    expect((await node.envBytes()).equals(env)).toBe(true);
    expect(k8s.standin.cluster.getNode(thing).spec.unschedulable).toBe(false);
    expect(await slotHolder(ns)).toBeNull();
  });

  it("rollback path: health fails on the new slot; uncordoned and released once the old slot is back and Ready", async () => {
    const { node, thing, ns } = await newNode({ health: "! grep -q keel.slot=B cmdline" });
    node.config.health[0] = {
      type: "command",
      command: `! grep -q keel.slot=B ${join(node.dir, "cmdline")}`,
      retries: 1,
      intervalSeconds: 0,
      timeoutSeconds: 5,
    };
    const runner = await start(node, thing, "sick");
    const r = await finalStatus(thing, `${thing}-sick`);
    await runner.untilIdle();
    await runner.stop();
    expect(r).toMatchObject({ status: "FAILED", details: { rolledBack: "true", slot: "A" } });
    expect(runner.boots).toEqual(["B", "A"]);
    await expectBackOnA(node);
    expect(k8s.standin.cluster.getNode(thing).spec.unschedulable).toBe(false);
    expect(await slotHolder(ns)).toBeNull();
  });
});
