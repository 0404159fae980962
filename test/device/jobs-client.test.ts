/**
 * The jobs client and the agent against a real broker (aedes over mutual TLS) with a small fake IoT Jobs
 * responder (docs/style.md#tests). The full cloud (stand-in + s3rver) is exercised in lifecycle.test.ts.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { JOB_OPERATION, JobDocumentSchema } from "../../core/job-document.ts";
import { parseJsonText } from "../../core/parse.ts";
import { systemClock } from "../../device/clock.ts";
import {
  type JobExecution,
  JobExecutionSchema,
  JobsClient,
  trimStatusDetails,
} from "../../device/jobs-client.ts";
import { silentLogger } from "../../device/logger.ts";
import { type Certs, type FakeJobs, makeCerts, startFakeJobs } from "./helpers/broker.ts";
import { HEALTHY_CHAIN } from "./helpers/chains.ts";
import { type FileServer, startFileServer } from "./helpers/http-server.ts";
import { expectBackOnA, makeNode, type TestNode, waitFor } from "./helpers/node.ts";
import { makeSigners, randomImage, type Signers, signRelease } from "./helpers/release.ts";
import { NodeRunner } from "./helpers/runner.ts";

const THING = "node-1";

describe("the execution schema", () => {
  it("hands a job document's __proto__ member on, so the document's strict schema refuses it", () => {
    const text = `{"jobId":"j1","status":"QUEUED","jobDocument":{"operation":"${JOB_OPERATION}","__proto__":{"polluted":true}}}`;
    const execution = JobExecutionSchema.parse(parseJsonText(Buffer.from(text), "execution"));
    expect(Object.keys(execution.jobDocument ?? {})).toContain("__proto__");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const doc = JobDocumentSchema.safeParse(execution.jobDocument);
    expect(doc.success).toBe(false);
    expect(JSON.stringify(doc.error?.issues)).toContain("__proto__");
  });

  it("refuses a job document that is not an object", () => {
    for (const doc of ["[]", "null", '"x"', "1"])
      expect(
        JobExecutionSchema.safeParse(JSON.parse(`{"jobId":"j1","status":"QUEUED","jobDocument":${doc}}`))
          .success,
      ).toBe(false);
  });
});

describe("trimStatusDetails", () => {
  it("keeps at most 10 valid pairs, drops bad keys and control characters, cuts values to 1024", () => {
    const input: Record<string, string> = {
      "bad key": "x",
      empty: "\n\t",
      reason: `a\u0000b${"z".repeat(2000)}`,
    };
    for (let i = 0; i < 12; i++) input[`k${i}`] = String(i);
    const out = trimStatusDetails(input);
    expect(Object.keys(out)).toHaveLength(10);
    expect(out).not.toHaveProperty(["bad key"]);
    expect(out).not.toHaveProperty("empty");
    expect(out.reason).toMatch(/^a b/);
    expect(out.reason?.length).toBe(1024);
  });
});

describe("against aedes with a fake IoT Jobs responder", () => {
  let tmp: string;
  let certs: Certs;
  let jobs: FakeJobs;
  let files: FileServer;
  let signers: Signers;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-jobs-"));
    certs = makeCerts(tmp, THING);
    files = await startFileServer();
    signers = makeSigners();
  });
  afterAll(async () => {
    await files.stop();
    await rm(tmp, { recursive: true, force: true });
  });
  beforeEach(async () => {
    jobs = await startFakeJobs(certs, THING);
  });
  afterEach(async () => {
    await jobs.stop();
  });

  function client(onExecution: (e: JobExecution) => void = () => {}) {
    return new JobsClient({
      thingName: THING,
      mqtt: { endpoint: jobs.url, ...certs.files },
      clock: systemClock(),
      logger: silentLogger,
      requestTimeoutMs: 300,
      reportBackoff: { initialMs: 5, maxMs: 20 },
      onExecution,
      onNextChanged: () => {},
    });
  }

  it("subscribes and asks for the next job on connect, over mutual TLS", async () => {
    // Prepare
    jobs.queue("job-1", { hello: "world" });
    const seen: JobExecution[] = [];
    const c = client((e) => seen.push(e));
    // Act
    await c.start();
    await waitFor(() => seen.length > 0);
    // Assess
    expect(seen[0]).toMatchObject({ jobId: "job-1", status: "IN_PROGRESS", jobDocument: { hello: "world" } });
    expect(await c.update("job-1", 1, "IN_PROGRESS", { phase: "validating" })).toBe("accepted");
    await c.stop();
  });

  it("retries a terminal report until it is accepted, and says gone once the job is cancelled", async () => {
    jobs.queue("job-1", {});
    const c = client();
    await c.start();
    await waitFor(() => c.connected && jobs.executions.get("job-1")?.status === "IN_PROGRESS");
    jobs.dropTerminalUpdates = 2;
    expect(await c.reportUntilAccepted("job-1", 1, "SUCCEEDED", { phase: "committed" })).toBe("accepted");
    expect(jobs.updates.filter((u) => u.status === "SUCCEEDED")).toHaveLength(1);
    jobs.queue("job-2", {});
    jobs.cancel("job-2");
    expect(await c.reportUntilAccepted("job-2", 1, "FAILED", { reason: "x" })).toBe("gone");
    await c.stop();
  });

  describe("the agent", () => {
    let dir: string;
    let node: TestNode;
    const image = randomImage(300 * 1024);

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), "keel-agent-"));
      node = await makeNode({
        dir,
        signers,
        config: {
          mqtt: { endpoint: jobs.url, cert: certs.files.cert, key: certs.files.key, ca: certs.files.ca },
          // Healthy everywhere but on a slot named in ./unhealthy
          health: [
            {
              type: "command",
              command: `! grep -qf ${dir}/unhealthy ${dir}/cmdline`,
              retries: 1,
              intervalSeconds: 0,
            },
            { type: "broker", retries: 20, intervalSeconds: 0.05 },
          ],
        },
      });
      await writeFile(join(dir, "unhealthy"), "keel.slot=none\n");
      await writeFile(join(dir, "image"), image);
      await writeFile(
        join(dir, "release.json"),
        JSON.stringify(signRelease(signers, { version: "1.1.0", releaseCounter: 2, image })),
      );
      files.add(`${dir}/image`, join(dir, "image"));
      files.add(`${dir}/release.json`, join(dir, "release.json"));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    const doc = (over: Record<string, unknown> = {}) => ({
      operation: JOB_OPERATION,
      schemaVersion: 1,
      rolloutId: "r1",
      version: "1.1.0",
      manifestUrl: files.url(`${dir}/release.json`),
      imageUrl: files.url(`${dir}/image`),
      policy: { healthDeadlineSeconds: 30, readBack: true },
      ...over,
    });

    it("carries a job to SUCCEEDED across the reboot, ignoring duplicate notifications", async () => {
      // Prepare
      jobs.queue("job-1", doc());
      const runner = new NodeRunner(node);
      // Act
      await runner.start();
      await waitFor(() => jobs.updates.some((u) => u.status !== "IN_PROGRESS"));
      jobs.notifyNext();
      jobs.notifyNext();
      await runner.untilIdle();
      await runner.stop();
      // Assess
      expect(runner.states).toEqual(HEALTHY_CHAIN);
      const terminal = jobs.updates.filter((u) => u.status !== "IN_PROGRESS");
      expect(terminal).toEqual([
        {
          jobId: "job-1",
          status: "SUCCEEDED",
          statusDetails: expect.objectContaining({ version: "1.1.0", fromVersion: "1.0.0" }),
        },
      ]);
      expect(jobs.updates.map((u) => u.statusDetails.phase)).toContain("rebooting");
      expect(runner.boots).toEqual(["B"]);
      expect((await node.boot.readState()).slots.B.good).toBe(true);
    });

    it("rolls back when health fails on the new slot and reports FAILED with rolledBack", async () => {
      await writeFile(join(dir, "unhealthy"), "keel.slot=B\n");
      jobs.queue("job-1", doc());
      const runner = new NodeRunner(node);
      await runner.start();
      await waitFor(() => jobs.updates.some((u) => u.status !== "IN_PROGRESS"));
      await runner.untilIdle();
      await runner.stop();
      expect(runner.boots).toEqual(["B", "A"]);
      expect(runner.states).toContain("RollingBack");
      const terminal = jobs.updates.filter((u) => u.status !== "IN_PROGRESS");
      expect(terminal).toHaveLength(1);
      expect(terminal[0]?.status).toBe("FAILED");
      expect(terminal[0]?.statusDetails).toMatchObject({
        rolledBack: "true",
        fromVersion: "1.0.0",
        toVersion: "1.1.0",
      });
      expect(terminal[0]?.statusDetails.reason).toMatch(/health check command/);
      await expectBackOnA(node);
    });

    it("REJECTS a document it cannot accept with the reason, touching nothing", async () => {
      const envBefore = await node.envBytes();
      jobs.queue("job-1", doc({ version: "not-a-version", extra: 1 }));
      const runner = new NodeRunner(node);
      await runner.start();
      await waitFor(() => jobs.updates.some((u) => u.status !== "IN_PROGRESS"));
      await runner.untilIdle();
      await runner.stop();
      const terminal = jobs.updates.filter((u) => u.status !== "IN_PROGRESS");
      expect(terminal[0]?.status).toBe("REJECTED");
      expect(terminal[0]?.statusDetails.reason).toMatch(/invalid job document: .*version/);
      expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
    });

    it("after activation a cancel changes nothing: the boot decision is finished and the node runs a good slot", async () => {
      // Prepare: the pre-reboot hook holds the agent in Rebooting until the test has cancelled the job
      node.config.hooks.preReboot = [`while [ ! -e ${dir}/go ]; do sleep 0.02; done`];
      jobs.queue("job-1", doc());
      const runner = new NodeRunner(node);
      await runner.start();
      await waitFor(() => runner.states.includes("Rebooting"));
      // Act
      jobs.cancel("job-1");
      await waitFor(() => node.logs.some((l) => l.includes("job cancelled after activation")));
      await writeFile(join(dir, "go"), "");
      await runner.untilIdle();
      await runner.stop();
      // Assess
      expect(runner.states).toEqual(HEALTHY_CHAIN);
      expect(runner.boots).toEqual(["B"]);
      expect((await node.boot.readState()).slots.B.good).toBe(true);
      // The SUCCEEDED report was refused (the execution is CANCELED); nothing else was sent
      expect(jobs.executions.get("job-1")?.status).toBe("CANCELED");
      expect(jobs.updates.filter((u) => u.status !== "IN_PROGRESS")).toEqual([]);
    });

    it("abandons the install when the job is cancelled during the download", async () => {
      // Prepare: a download that stalls mid-way until the test cancels
      const envBefore = await node.envBytes();
      files.holdAfter(64 * 1024);
      jobs.queue("job-1", doc());
      const runner = new NodeRunner(node);
      await runner.start();
      await waitFor(() => runner.states.includes("Downloading"));
      // Act
      jobs.cancel("job-1");
      await runner.untilIdle();
      files.release();
      await runner.stop();
      // Assess
      expect(runner.states).toEqual(["Validating", "Downloading", "Cancelled", "Idle"]);
      expect(jobs.updates.filter((u) => u.status !== "IN_PROGRESS")).toEqual([]);
      expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
    });
  });
});
