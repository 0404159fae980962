/**
 * Agent resilience against the local cloud (IoT Jobs stand-in + aedes over mutual TLS + s3rver): service
 * faults injected in the stand-in (docs/iot-jobs.md §1.4, §6.5) and garbage MQTT payloads
 * published on the agent's own topics by the privileged service identity, which may publish anywhere.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentClock, systemClock } from "../../device/clock.ts";
import type { FaultRule } from "../../local/contracts.ts";
import { startTestCloud, type TestCloud } from "./helpers/cloud.ts";
import { makeNode, type TestNode, waitFor } from "./helpers/node.ts";
import { makeSigners, randomImage, type Signers } from "./helpers/release.ts";
import { NodeRunner } from "./helpers/runner.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"]);

/**
 * The system clock (health checks need real waits for the broker connection), recording each wait with
 * the bytes of the GRUB env at that moment and how many log lines came before it. Backoff stays fast
 * through the `reportBackoff` config.
 */
function snapshottingClock(envFile: string) {
  const sleeps: Array<{ ms: number; env: Buffer; logs: number }> = [];
  return {
    sleeps,
    make(logs: string[]): AgentClock {
      const real = systemClock();
      return {
        now: () => real.now(),
        sleep: (ms, signal) => {
          sleeps.push({ ms, env: readFileSync(envFile), logs: logs.length });
          return real.sleep(ms, signal);
        },
      };
    },
  };
}

/** Every file under a directory (recursively), by relative path, as bytes. */
async function dirBytes(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    out[relative(dir, path)] = await readFile(path);
  }
  return Object.fromEntries(Object.entries(out).sort(([x], [y]) => x.localeCompare(y)));
}

const logged = (node: TestNode, msg: string) =>
  node.logs.filter((l) => (JSON.parse(l) as { msg?: string }).msg === msg);

describe("keel-agent under service faults and garbage MQTT payloads", () => {
  let tmp: string;
  let cloud: TestCloud;
  let signers: Signers;
  let nodeCount = 0;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-faults-"));
    cloud = await startTestCloud(join(tmp, "cloud"));
    signers = makeSigners();
    await cloud.putRelease(signers, { version: "1.1.0", releaseCounter: 2, image: randomImage(200 * 1024) });
  });
  afterAll(async () => {
    await cloud?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const injectFaults = (rule: FaultRule) => {
    const inject = cloud.cloud.iot.injectFaults;
    if (!inject) throw new Error("the local IoT stand-in has no fault injection");
    inject.call(cloud.cloud.iot, rule);
  };

  /** A provisioned node whose agents use a clock that records each wait with the env bytes of that moment. */
  async function newNode() {
    const thing = `fault-${++nodeCount}`;
    const dir = join(tmp, thing);
    const mqttConfig = await cloud.provision(thing, dir);
    const node = await makeNode({
      dir,
      signers,
      thingName: thing,
      config: {
        mqtt: mqttConfig,
        health: [{ type: "broker", retries: 50, intervalSeconds: 0.1 }],
        reportBackoff: { initialMs: 10, maxMs: 200 },
      },
    });
    const clock = snapshottingClock(join(dir, "grubenv"));
    const agent = node.agent;
    node.agent = (o) => agent({ clock: clock.make(node.logs), ...o });
    return { node, thing, sleeps: clock.sleeps };
  }

  async function finalStatus(thing: string, jobId: string) {
    let last = { status: "", details: {} as Record<string, string> };
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      last = await cloud.execution(thing, jobId);
      if (TERMINAL.has(last.status)) return last;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`job ${jobId} on ${thing} never ended: ${JSON.stringify(last)}`);
  }

  const doc = () => cloud.jobDocument({ rolloutId: "faults", version: "1.1.0" });

  it("retries a terminal SUCCEEDED refused twice (InternalError, RequestThrottled) with backoff; boot state untouched", async () => {
    // Prepare
    const { node, thing, sleeps } = await newNode();
    injectFaults({ thing, operation: "update", status: "SUCCEEDED", code: "InternalError", count: 1 });
    injectFaults({ thing, operation: "update", status: "SUCCEEDED", code: "RequestThrottled", count: 1 });
    const runner = new NodeRunner(node);
    await runner.start();
    // Act
    await cloud.createJob(`${thing}-j`, thing, doc());
    const r = await finalStatus(thing, `${thing}-j`);
    await runner.untilIdle();
    await runner.stop();
    // Assess
    expect(r.status, JSON.stringify(r.details)).toBe("SUCCEEDED");
    expect(runner.boots).toEqual(["B"]);
    const retries = logged(node, "terminal report not accepted yet; retrying");
    expect(retries).toHaveLength(2);
    expect(retries[0]).toContain("InternalError");
    expect(retries[1]).toContain("RequestThrottled");
    // The waits that followed each refusal: capped exponential backoff from reportBackoff.
    const retryWaits = sleeps.filter((s) =>
      node.logs[s.logs - 1]?.includes("terminal report not accepted yet"),
    );
    expect(retryWaits.map((s) => s.ms)).toEqual([10, 20]);
    // The bootloader was already committed to B before the report and no retry touched it.
    const env = await node.envBytes();
    for (const s of retryWaits) expect(Buffer.compare(s.env, env)).toBe(0);
    const boot = await node.boot.readState();
    expect(boot.slots.B.good).toBe(true);
  });

  it("retries start-next answered InternalError on connect and still picks up the queued job", async () => {
    const { node, thing } = await newNode();
    // Queued before the agent connects: no notify-next will ever announce it, only start-next.
    await cloud.createJob(`${thing}-j`, thing, doc());
    injectFaults({ thing, operation: "start-next", code: "InternalError", count: 2 });
    const runner = new NodeRunner(node);
    await runner.start();
    const r = await finalStatus(thing, `${thing}-j`);
    await runner.untilIdle();
    await runner.stop();
    expect(r.status, JSON.stringify(r.details)).toBe("SUCCEEDED");
    const retries = logged(node, "start-next not accepted yet; retrying");
    expect(retries).toHaveLength(2);
    for (const l of retries) expect(l).toContain("InternalError");
  });

  describe("garbage on the agent's own topics", () => {
    let service: MqttClient;
    beforeAll(async () => {
      const sc = cloud.cloud.broker.serviceClient;
      service = await mqtt.connectAsync(cloud.cloud.broker.url, {
        cert: sc.cert,
        key: sc.key,
        ca: sc.ca,
        rejectUnauthorized: true,
        clientId: "keel-test-garbage",
        reconnectPeriod: 0,
      });
    });
    afterAll(async () => {
      await service?.endAsync();
    });

    it("refuses an answer to its own start-next whose execution has wrong types, retries, and takes only the real job", async () => {
      // Prepare: the service client answers the agent's first start-next itself with a malformed execution;
      // the stand-in answers the same request RequestThrottled, so whichever answer arrives first fails it.
      const { node, thing } = await newNode();
      const base = `$aws/things/${thing}/jobs`;
      await cloud.createJob(`${thing}-j`, thing, doc());
      injectFaults({ thing, operation: "start-next", code: "RequestThrottled", count: 1 });
      let forged = false;
      await service.subscribeAsync(`${base}/start-next`, { qos: 1 });
      service.on("message", (topic, payload) => {
        if (topic !== `${base}/start-next` || forged) return;
        forged = true;
        const { clientToken } = JSON.parse(payload.toString()) as { clientToken: string };
        const execution = {
          jobId: "forged",
          status: "IN_PROGRESS",
          executionNumber: 1,
          jobDocument: "install now",
        };
        void service.publishAsync(`${base}/start-next/accepted`, JSON.stringify({ clientToken, execution }), {
          qos: 1,
        });
      });
      const runner = new NodeRunner(node);
      // Act
      await runner.start();
      const r = await finalStatus(thing, `${thing}-j`);
      await runner.untilIdle();
      await runner.stop();
      // Assess
      expect(forged).toBe(true);
      expect(r.status, JSON.stringify(r.details)).toBe("SUCCEEDED");
      expect(
        logged(node, "ignoring a malformed jobs message").some((l) => /execution\.jobDocument/.test(l)),
      ).toBe(true);
      const retries = logged(node, "start-next not accepted yet; retrying");
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries[0]).toMatch(/MalformedResponse|RequestThrottled/);
      expect(node.logs.some((l) => l.includes('"transition"') && l.includes("forged"))).toBe(false);
      for (const bytes of Object.values(await dirBytes(node.config.stateDir))) {
        expect(bytes.toString("utf8")).not.toContain("forged");
      }
    });

    it("is logged as a specific error and ignored: no crash, no state change; a real job still completes", async () => {
      // Prepare: an idle agent that has subscribed (its first start-next was answered)
      const { node, thing } = await newNode();
      const base = `$aws/things/${thing}/jobs`;
      let answered = false;
      await service.subscribeAsync(`${base}/start-next/accepted`, { qos: 1 });
      service.on("message", (topic) => {
        if (topic === `${base}/start-next/accepted`) answered = true;
      });
      const runner = new NodeRunner(node);
      await runner.start();
      await waitFor(() => answered);
      const stateBefore = await dirBytes(node.config.stateDir);
      const envBefore = await node.envBytes();
      const validExecution = { jobId: "evil", status: "QUEUED", executionNumber: 1, jobDocument: doc() };
      const garbage: Array<[string, string | Buffer, string, RegExp]> = [
        [
          "notify-next",
          "this is not json",
          "ignoring a jobs message that is not UTF-8 JSON",
          /not valid UTF-8 JSON/,
        ],
        [
          "notify-next",
          Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
          "ignoring a jobs message that is not UTF-8 JSON",
          /not valid UTF-8 JSON/,
        ],
        ["notify-next", "[1,2,3]", "ignoring a malformed jobs message", /notify-next/],
        [
          "notify-next",
          JSON.stringify({ execution: { jobId: 42, status: "QUEUED" } }),
          "ignoring a malformed jobs message",
          /execution\.jobId/,
        ],
        [
          "start-next/accepted",
          JSON.stringify({
            execution: { ...validExecution, jobDocument: "install now", executionNumber: "1" },
          }),
          "ignoring a malformed jobs message",
          /execution\.(jobDocument|executionNumber)/,
        ],
        [
          "start-next/accepted",
          JSON.stringify({ clientToken: "someone-else", execution: validExecution }),
          "ignoring a response to no pending request",
          /someone-else/,
        ],
        ["evil/update/rejected", JSON.stringify({ code: 5 }), "ignoring a malformed jobs message", /code/],
      ];
      // Act
      for (const [suffix, payload] of garbage)
        await service.publishAsync(`${base}/${suffix}`, payload, { qos: 1 });
      // The last one is logged once all before it were handled (one connection, QoS 1, in order).
      await waitFor(() => logged(node, "ignoring a malformed jobs message").length === 4);
      // Assess
      for (const [suffix, , msg, detail] of garbage) {
        expect(
          logged(node, msg).some((l) => detail.test(l)),
          `${suffix}: ${msg} ${detail}`,
        ).toBe(true);
      }
      expect(logged(node, "ignoring a jobs message that is not UTF-8 JSON")).toHaveLength(2);
      expect(runner.states).toEqual([]);
      expect(await dirBytes(node.config.stateDir)).toEqual(stateBefore);
      expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
      // The agent still works: a real job ends SUCCEEDED.
      await cloud.createJob(`${thing}-j`, thing, doc());
      const r = await finalStatus(thing, `${thing}-j`);
      await runner.untilIdle();
      await runner.stop();
      expect(r.status, JSON.stringify(r.details)).toBe("SUCCEEDED");
      expect(runner.boots).toEqual(["B"]);
    });
  });
});
