/**
 * Crash table (docs/style.md#tests): the agent runs as a real child process (`node bin/keel-agent.mjs run`)
 * against the local cloud; for each row it is SIGKILLed in one state (or at a byte offset during the slot
 * write), restarted, rebooted by the simulated firmware when it asks, and must end with the exact same
 * state chain, the node on a good slot and the truth reported to IoT Jobs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateStore } from "../../device/state-store.ts";
import { startTestCluster, type TestCluster } from "../local/k8s/helpers.ts";
import { CLUSTER_HEALTHY_CHAIN, CLUSTER_SICK_CHAIN, HEALTHY_CHAIN, SICK_CHAIN } from "./helpers/chains.ts";
import { startTestCloud, type TestCloud } from "./helpers/cloud.ts";
import { makeNode, NODE_LAYOUT, type TestNode } from "./helpers/node.ts";
import { makeSigners, randomImage, type Signers } from "./helpers/release.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const IMAGE_SIZE = 1024 * 1024 + 4321;

/** Checkpoints every 64 KiB (config below); a kill past 8 of them must resume from a saved offset. */
const CHECKPOINT = 65536;
const randomOffset = () => 8 * CHECKPOINT + Math.floor(Math.random() * (IMAGE_SIZE - 8 * CHECKPOINT));

interface Row {
  pauseAt: string;
  sick?: boolean;
  /** A Kubernetes node (docs/kubernetes.md): the Kubernetes stand-in holds its Node, pods and reboot slots. */
  cluster?: boolean;
}

const ROWS: Row[] = [
  { pauseAt: "Validating" },
  { pauseAt: "Downloading" },
  { pauseAt: `byte:${randomOffset()}` },
  { pauseAt: `byte:${randomOffset()}` },
  { pauseAt: "Verifying" },
  { pauseAt: "Activating" },
  { pauseAt: "Rebooting" },
  { pauseAt: "HealthChecking" },
  { pauseAt: "Committed" },
  { pauseAt: "HealthChecking", sick: true },
  { pauseAt: "RollingBack", sick: true },
  { pauseAt: "RolledBack", sick: true },
  // A Kubernetes node, killed in each of its new states (the uncordon after a commit or a rollback is
  // covered in test/device/kubernetes/agent.test.ts; each row here costs three agent starts).
  { pauseAt: "AcquiringRebootSlot", cluster: true },
  { pauseAt: "Draining", cluster: true },
];

/** One child agent; resolves how it ended. */
function runChild(
  configPath: string,
  env: Record<string, string>,
  onLine: (line: string) => void,
): { child: ChildProcess; exited: Promise<void> } {
  const child = spawn(process.execPath, [join(ROOT, "bin/keel-agent.mjs"), "run", "--config", configPath], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let buf = "";
  child.stderr?.on("data", (d: Buffer) => {
    buf += d.toString("utf8");
    let i = buf.indexOf("\n");
    while (i >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return { child, exited };
}

describe("crash table: SIGKILL in every state, restart, the truth is reported", () => {
  let tmp: string;
  let cloud: TestCloud;
  let k8s: TestCluster;
  let signers: Signers;
  let count = 0;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-crash-"));
    [cloud, k8s] = await Promise.all([startTestCloud(join(tmp, "cloud")), startTestCluster()]);
    signers = makeSigners();
    const image = randomImage(IMAGE_SIZE);
    await cloud.putRelease(signers, { version: "2.0.0", releaseCounter: 5, image });
  });
  afterAll(async () => {
    await Promise.all([cloud?.stop(), k8s?.stop()]);
    await rm(tmp, { recursive: true, force: true });
  });

  async function setup(
    sick: boolean,
    cluster: boolean,
  ): Promise<{ node: TestNode; thing: string; configPath: string }> {
    const thing = `crash-${++count}`;
    const dir = join(tmp, thing);
    const mqtt = await cloud.provision(thing, dir);
    const raw = {
      thingName: thing,
      hardware: "rpi4",
      ...NODE_LAYOUT,
      mqtt,
      health: [
        {
          type: "command",
          command: sick ? `! grep -q keel.slot=B ${join(dir, "cmdline")}` : "true",
          retries: 1,
          intervalSeconds: 0,
        },
        { type: "broker", retries: 100, intervalSeconds: 0.1 },
      ],
      reboot: { command: `touch ${join(dir, "reboot-requested")}` },
      factory: { version: "1.0.0", releaseCounter: 1 },
      download: { initialBackoffMs: 10, maxBackoffMs: 100, checkpointBytes: CHECKPOINT },
      reportBackoff: { initialMs: 50, maxMs: 500 },
      ...(cluster
        ? {
            kubernetes: {
              kubeconfig: k8s.kubeconfig,
              namespace: `crash-${count}`,
              pollIntervalMs: 50,
              maxBackoffMs: 200,
            },
          }
        : {}),
    };
    const node = await makeNode({
      dir,
      signers,
      thingName: thing,
      slotSize: 2 * 1024 * 1024,
      config: { mqtt },
    });
    const configPath = join(dir, "agent.json");
    await writeFile(configPath, JSON.stringify(raw, null, 2));
    if (cluster) {
      // The Node and one pod to drain; each boot shows as a new bootID once the node is back.
      const k = k8s.standin.cluster;
      k.addNode({ name: thing, ready: true, bootID: `${thing}-boot-0` });
      k.addPod({
        metadata: { name: `${thing}-app`, namespace: "default" },
        spec: {
          nodeName: thing,
          terminationGracePeriodSeconds: 0,
          containers: [{ name: "app", image: "app" }],
        },
        status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
      });
      let boots = 0;
      const powerOn = node.powerOn.bind(node);
      node.powerOn = async () => {
        k.setNodeReady(thing, false);
        const r = await powerOn();
        k.setNodeReady(thing, true, { bootID: `${thing}-boot-${++boots}` });
        return r;
      };
    }
    return { node, thing, configPath };
  }

  it.each(ROWS)(
    "killed at $pauseAt (sick: $sick, cluster: $cluster)",
    async ({ pauseAt, sick, cluster }) => {
      // Prepare
      const { node, thing, configPath } = await setup(sick === true, cluster === true);
      const jobId = `${thing}-job`;
      await cloud.createJob(jobId, thing, cloud.jobDocument({ rolloutId: "crash", version: "2.0.0" }));
      const chain: string[] = [];
      const boots: string[] = [];
      const rebootMarker = join(node.dir, "reboot-requested");
      let paused = false;
      let kills = 0;
      const resumedAt: number[] = [];
      const onLine = (line: string) => {
        try {
          const j = JSON.parse(line) as { msg?: string; to?: string; offset?: number };
          if (j.msg === "transition" && j.to) chain.push(j.to);
          if (j.msg === "resuming download" && typeof j.offset === "number") resumedAt.push(j.offset);
          if (j.msg === "test pause") paused = true;
        } catch {
          // not a log line (warnings from node itself)
        }
      };
      // Act: run the agent, kill it once at the row's point, reboot it when it asks, until the job is done
      let finished = false;
      for (let run = 0; run < 8 && !finished; run++) {
        // Every run pauses at the row's point until the one kill there has happened.
        const { child, exited } = runChild(
          configPath,
          kills === 0 ? { KEEL_AGENT_TEST_PAUSE_AT: pauseAt } : {},
          onLine,
        );
        const deadline = Date.now() + 60_000;
        for (;;) {
          await new Promise((r) => setTimeout(r, 25));
          if (paused) {
            paused = false;
            kills++;
            child.kill("SIGKILL");
            break;
          }
          if (existsSync(rebootMarker)) {
            child.kill("SIGKILL");
            await exited;
            await unlink(rebootMarker);
            boots.push(String(await node.powerOn()));
            break;
          }
          const exec = await cloud.execution(thing, jobId);
          const rec = await new StateStore(node.config.stateDir).load().catch(() => null);
          if (!["QUEUED", "IN_PROGRESS"].includes(exec.status) && rec?.state === "Idle") {
            child.kill("SIGTERM");
            finished = true;
            break;
          }
          if (Date.now() > deadline) {
            child.kill("SIGKILL");
            throw new Error(`run ${run} stuck; chain so far ${chain.join(" → ")}`);
          }
        }
        await exited;
      }
      // Assess
      expect(finished).toBe(true);
      expect(kills).toBe(1);
      const byte = /^byte:(\d+)$/.exec(pauseAt);
      if (byte) {
        // Resumed from a checkpoint (an fsynced offset, at most a few blocks behind the kill), not from zero.
        expect(resumedAt).toHaveLength(1);
        expect(resumedAt[0]).toBeGreaterThan(0);
        expect(resumedAt[0]).toBeLessThanOrEqual(Number(byte[1]));
        expect(resumedAt[0]).toBeGreaterThanOrEqual(Number(byte[1]) - 6 * CHECKPOINT);
      }
      if (cluster) {
        expect(chain).toEqual(sick ? CLUSTER_SICK_CHAIN : CLUSTER_HEALTHY_CHAIN);
        // Drained, then given back: uncordoned and the slot free, whatever the kill interrupted.
        const k = k8s.standin.cluster;
        expect(k.podsOn(thing)).toHaveLength(0);
        expect(k.getNode(thing).spec.unschedulable).toBe(false);
        expect((await k8s.client.getLease(`crash-${count}`, "keel-reboot-slot-0"))?.holder).toBeNull();
      } else {
        expect(chain).toEqual(sick ? SICK_CHAIN : HEALTHY_CHAIN);
      }
      const exec = await cloud.execution(thing, jobId);
      const booted = await readFile(node.config.cmdline, "utf8");
      const bootState = await node.boot.readState();
      if (sick) {
        expect(exec.status).toBe("FAILED");
        expect(exec.details).toMatchObject({ rolledBack: "true", fromVersion: "1.0.0", toVersion: "2.0.0" });
        expect(boots).toEqual(["B", "A"]);
        expect(booted).toMatch(/keel\.slot=A/);
        expect(bootState.slots.A.good).toBe(true);
        expect(bootState.slots.B.bootable).toBe(false);
      } else {
        expect(exec).toMatchObject({
          status: "SUCCEEDED",
          details: { version: "2.0.0", fromVersion: "1.0.0" },
        });
        expect(boots).toEqual(["B"]);
        expect(booted).toMatch(/keel\.slot=B/);
        expect(bootState.slots.B.good).toBe(true);
      }
    },
    180_000,
  );
});
