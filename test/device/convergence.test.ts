import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateStore } from "../../device/state-store.ts";
import { startTestCloud, type TestCloud } from "./helpers/cloud.ts";
import { makeNode, type TestNode } from "./helpers/node.ts";
import { makeSigners, type Signers, squashfsImage } from "./helpers/release.ts";
import { NodeRunner } from "./helpers/runner.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"]);

describe("keel-agent and convergence jobs", () => {
  let tmp: string;
  let cloud: TestCloud;
  let signers: Signers;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-conv-agent-"));
    cloud = await startTestCloud(join(tmp, "cloud"));
    signers = makeSigners();
    const image = await squashfsImage(tmp, 64 * 1024);
    await cloud.putRelease(signers, { version: "1.1.0", releaseCounter: 2, image });
  });
  afterAll(async () => {
    await cloud?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  async function newNode(thing: string, health: string): Promise<TestNode> {
    const dir = join(tmp, thing);
    const mqtt = await cloud.provision(thing, dir);
    return makeNode({
      dir,
      signers,
      thingName: thing,
      config: {
        mqtt,
        health: [
          { type: "command", command: health, retries: 1, intervalSeconds: 0 },
          { type: "broker", retries: 50, intervalSeconds: 0.1 },
        ],
      },
    });
  }

  async function finalStatus(thing: string, jobId: string) {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const last = await cloud.execution(thing, jobId);
      if (TERMINAL.has(last.status)) return last;
      if (Date.now() > deadline)
        throw new Error(`job ${jobId} on ${thing} never ended: ${JSON.stringify(last)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs the node until job `jobId` with `document` has ended and the agent is idle. */
  async function runJob(node: TestNode, thing: string, jobId: string, document: Record<string, unknown>) {
    const runner = new NodeRunner(node);
    await runner.start();
    await cloud.createJob(`${thing}-${jobId}`, thing, document);
    const r = await finalStatus(thing, `${thing}-${jobId}`);
    await runner.untilIdle();
    await runner.stop();
    return { r, runner };
  }

  const convergenceDoc = (
    extra: Record<string, unknown> = {},
    keys?: { manifestKey: string; imageKey: string },
  ) => ({
    ...cloud.jobDocument({ rolloutId: "converge-g1", version: "1.1.0", ...keys }),
    convergence: true,
    ...extra,
  });

  it("a node already on the target reports SUCCEEDED without fetching anything", async () => {
    const thing = "conv-on-target";
    const node = await newNode(thing, "true");
    expect(
      (await runJob(node, thing, "install", cloud.jobDocument({ rolloutId: "r1", version: "1.1.0" }))).r
        .status,
    ).toBe("SUCCEEDED");
    const slotA = await node.slotBytes("A");
    const env = await node.envBytes();
    // The convergence job's URLs point at nothing: any fetch would fail the job.
    const nothing = { manifestKey: "missing/release.json", imageKey: "missing/image.squashfs" };
    const { r, runner } = await runJob(node, thing, "converge", convergenceDoc({}, nothing));
    expect(r).toMatchObject({
      status: "SUCCEEDED",
      details: {
        version: "1.1.0",
        fromVersion: "1.1.0",
        alreadyRunning: "true",
        bytesFetched: "0",
        slot: "B",
      },
    });
    expect(runner.boots).toEqual([]);
    // keel-agent status shows the no-op as the last result, with the version it found running.
    expect((await new StateStore(node.config.stateDir).load()).lastResult).toMatchObject({
      state: "Committed",
      version: "1.1.0",
    });
    expect((await node.slotBytes("A")).equals(slotA)).toBe(true);
    expect((await node.envBytes()).equals(env)).toBe(true);
  });

  it("never installs a release that rolled back here from a convergence job; an operator retry that includes rolled-back nodes may", async () => {
    const thing = "conv-rolled-back";
    const dir = join(tmp, thing);
    const node = await newNode(thing, `! grep -q keel.slot=B ${join(dir, "cmdline")}`);
    const first = await runJob(node, thing, "wave", cloud.jobDocument({ rolloutId: "r1", version: "1.1.0" }));
    expect(first.r.details).toMatchObject({ rolledBack: "true" });
    const env = await node.envBytes();
    const slotB = await node.slotBytes("B");
    const { r, runner } = await runJob(node, thing, "converge", convergenceDoc());
    expect(r).toMatchObject({
      status: "REJECTED",
      details: { reason: "release 1.1.0 rolled back on this node; convergence never moves a node to it" },
    });
    expect(runner.boots).toEqual([]);
    expect((await node.envBytes()).equals(env)).toBe(true);
    expect((await node.slotBytes("B")).equals(slotB)).toBe(true);

    // The operator fixed the node's health and retries it explicitly: the release is installed.
    node.config.health[0] = {
      type: "command",
      command: "true",
      retries: 1,
      intervalSeconds: 0,
      timeoutSeconds: 5,
    };
    const retry = await runJob(node, thing, "retry", {
      ...cloud.jobDocument({ rolloutId: "r2", version: "1.1.0" }),
      includeRolledBack: true,
    });
    expect(retry.r).toMatchObject({
      status: "SUCCEEDED",
      details: { version: "1.1.0", fromVersion: "1.0.0" },
    });
    expect(retry.runner.boots).toEqual(["B"]);
  });
});
