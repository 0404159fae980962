import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JOB_OPERATION } from "../../core/job-document.ts";
import { generateKeyPair } from "../../core/keys.ts";
import type { Slot } from "../../device/boot/types.ts";
import { startTestCloud, type TestCloud } from "./helpers/cloud.ts";
import { expectBackOnA, makeNode, type TestNode } from "./helpers/node.ts";
import { makeSigners, type Signers, signRelease, squashfsImage } from "./helpers/release.ts";
import { NodeRunner } from "./helpers/runner.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"]);

describe("keel-agent against the local cloud", () => {
  let tmp: string;
  let cloud: TestCloud;
  let signers: Signers;
  let image: Buffer;
  let nodeCount = 0;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-life-"));
    cloud = await startTestCloud(join(tmp, "cloud"));
    signers = makeSigners();
    image = await squashfsImage(tmp, 200 * 1024);
    await cloud.putRelease(signers, { version: "1.1.0", releaseCounter: 2, image });
  });
  afterAll(async () => {
    await cloud?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  async function newNode(health?: string): Promise<{ node: TestNode; thing: string; dir: string }> {
    const thing = `node-${++nodeCount}`;
    const dir = join(tmp, thing);
    const mqtt = await cloud.provision(thing, dir);
    const node = await makeNode({
      dir,
      signers,
      thingName: thing,
      config: {
        mqtt,
        health: [
          { type: "command", command: health ?? "true", retries: 1, intervalSeconds: 0 },
          { type: "broker", retries: 50, intervalSeconds: 0.1 },
        ],
      },
    });
    return { node, thing, dir };
  }

  /** The job for release 1.1.0, or for another manifest (and the version the job asks for). */
  const doc = (manifestKey?: string, version = "1.1.0") =>
    cloud.jobDocument({ rolloutId: "r1", version, manifestKey, imageKey: "releases/1.1.0/image.squashfs" });

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

  /** Runs the node until the job `<thing>-<name>` (the 1.1.0 release) has ended and the agent is idle. */
  async function runJob(node: TestNode, thing: string, name: string, options?: { broken?: Slot }) {
    const runner = new NodeRunner(node, options);
    await runner.start();
    await cloud.createJob(`${thing}-${name}`, thing, doc());
    const r = await finalStatus(thing, `${thing}-${name}`);
    await runner.untilIdle();
    await runner.stop();
    return { r, runner };
  }

  it("installs, reboots into B, passes health and reports SUCCEEDED", async () => {
    // Prepare
    const { node, thing, dir } = await newNode();
    // The post-commit hook leaves its marker only if B is already committed (B_TRY=0 after the trial).
    const marker = join(dir, "post-commit-ran");
    node.config.hooks.postCommit = [
      `grub-editenv ${join(dir, "grubenv")} list | grep -qx B_TRY=0 && touch ${marker}`,
    ];
    // Act
    const { r, runner } = await runJob(node, thing, "ok");
    // Assess
    expect(r).toMatchObject({
      status: "SUCCEEDED",
      details: { version: "1.1.0", fromVersion: "1.0.0", slot: "B" },
    });
    expect(runner.boots).toEqual(["B"]);
    expect((await node.slotBytes("B")).subarray(0, image.length).equals(image)).toBe(true);
    expect((await node.boot.readState()).slots.B.good).toBe(true);
    await expect(stat(marker)).resolves.toBeTruthy();
  });

  /**
   * The document as the agent saved it when the job reached it long ago: every presigned URL signed two
   * hours back with the shortest expiry AWS allows, so s3rver refuses each one with 403.
   */
  async function staleDocument(d: Record<string, unknown>): Promise<Record<string, unknown>> {
    const text = JSON.stringify(d);
    const placeholder =
      /\$\{aws:iot:s3-presigned-url:https:\/\/s3\.[a-z0-9-]+\.amazonaws\.com\/([^/}]+)\/([^}]+)\}/g;
    const urls = await Promise.all(
      [...text.matchAll(placeholder)].map((m) =>
        getSignedUrl(cloud.s3, new GetObjectCommand({ Bucket: m[1], Key: m[2] }), {
          expiresIn: 60,
          signingDate: new Date(Date.now() - 2 * 3600 * 1000),
        }),
      ),
    );
    let i = 0;
    return JSON.parse(text.replace(placeholder, () => JSON.stringify(urls[i++]).slice(1, -1)));
  }

  it.each(["Validating", "Downloading"] as const)(
    "a job whose saved URLs expired while it waited (resumed in %s) gets a fresh document from IoT Jobs and installs",
    async (state) => {
      // Prepare: the job exists; the agent's record carries it with a document whose URLs expired
      const { node, thing } = await newNode();
      const jobId = `${thing}-stale`;
      await cloud.createJob(jobId, thing, doc());
      const stale = await staleDocument(doc());
      const key = { jobId, executionNumber: 1 };
      const release = signRelease(signers, { version: "1.1.0", releaseCounter: 2, image }).signed;
      await writeFile(
        join(node.config.stateDir, "state.json"),
        JSON.stringify({
          schemaVersion: 1,
          state,
          entries: 0,
          job: {
            key,
            document: stale,
            parsed: state === "Downloading" ? stale : null,
            standalone: null,
            release: state === "Downloading" ? release : null,
            from: "A",
            target: "B",
            fromVersion: "1.0.0",
            offset: 0,
            reason: null,
            armed: false,
          },
          slots: { A: { version: "1.0.0", releaseCounter: 1 }, B: null },
          handled: [key],
          lastResult: null,
          rolledBack: [],
        }),
      );
      // Act
      const runner = new NodeRunner(node);
      await runner.start();
      const r = await finalStatus(thing, jobId);
      await runner.untilIdle();
      await runner.stop();
      // Assess
      expect(r).toMatchObject({ status: "SUCCEEDED", details: { version: "1.1.0" } });
      expect(node.logs.some((l) => l.includes("asking IoT Jobs for a fresh job document"))).toBe(true);
      expect((await node.slotBytes("B")).subarray(0, image.length).equals(image)).toBe(true);
    },
  );

  it("rolls back when health fails on the new slot: FAILED with rolledBack and both versions", async () => {
    const { node, thing, dir } = await newNode();
    node.config.health[0] = {
      ...node.config.health[0],
      type: "command",
      command: `! grep -q keel.slot=B ${join(dir, "cmdline")}`,
      retries: 1,
      intervalSeconds: 0,
      timeoutSeconds: 5,
    };
    const { r, runner } = await runJob(node, thing, "sick");
    expect(r.status).toBe("FAILED");
    expect(r.details).toMatchObject({
      rolledBack: "true",
      fromVersion: "1.0.0",
      toVersion: "1.1.0",
      slot: "A",
    });
    expect(r.details.reason).toMatch(/health check command/);
    expect(runner.boots).toEqual(["B", "A"]);
    await expectBackOnA(node);

    // A later wave offers the same bad release again: REJECTED, no slot or bootloader write.
    const env = await node.envBytes();
    const slotA = await node.slotBytes("A");
    const slotB = await node.slotBytes("B");
    const again = await runJob(node, thing, "again");
    expect(again.r).toMatchObject({
      status: "REJECTED",
      details: { reason: "release 1.1.0 rolled back on this node" },
    });
    expect(again.runner.boots).toEqual([]);
    expect((await node.envBytes()).equals(env)).toBe(true);
    expect((await node.slotBytes("A")).equals(slotA)).toBe(true);
    expect((await node.slotBytes("B")).equals(slotB)).toBe(true);
  });

  it("gives the new slot up when a pre-reboot hook fails: FAILED, never booted, still on A", async () => {
    const { node, thing } = await newNode();
    node.config.hooks.preReboot = ["echo 'disk busy' >&2; exit 3"];
    const { r, runner } = await runJob(node, thing, "hook");
    expect(r.status).toBe("FAILED");
    expect(r.details).toMatchObject({
      rolledBack: "true",
      fromVersion: "1.0.0",
      toVersion: "1.1.0",
      slot: "A",
    });
    expect(r.details.reason).toMatch(/pre-reboot hook failed: .*exit 3: disk busy/);
    expect(runner.boots).toEqual([]);
    await expectBackOnA(node);
    expect((await node.boot.readState()).next).toBe("A");
  });

  it("reports the firmware's fallback when the new slot never comes up", async () => {
    const { node, thing } = await newNode();
    const { r, runner } = await runJob(node, thing, "dead", { broken: "B" });
    expect(r.status).toBe("FAILED");
    expect(r.details).toMatchObject({
      rolledBack: "true",
      reason: "new slot never came up",
      fromVersion: "1.0.0",
      toVersion: "1.1.0",
    });
    expect(runner.boots).toEqual(["B", "A"]);
    await expectBackOnA(node);
  });

  it("REJECTS each kind of bad job document with the reason", async () => {
    const { node, thing } = await newNode();
    const envBefore = await node.envBytes();
    const runner = new NodeRunner(node);
    await runner.start();
    const good = doc();
    const bad: Record<string, [Record<string, unknown>, RegExp]> = {
      operation: [
        { ...good, operation: "reboot" },
        /not a Keel job \(operation "reboot", expected "keel\.update"\)/,
      ],
      foreign: [{ action: "reboot-device" }, /not a Keel job \(operation missing/],
      schema: [{ ...good, schemaVersion: 2 }, /schemaVersion/],
      missing: [{ ...good, imageUrl: undefined }, /imageUrl/],
      version: [{ ...good, version: "latest" }, /version: must be a semantic version/],
      url: [{ ...good, manifestUrl: "ftp://example.com/x" }, /manifestUrl/],
      unknown: [{ ...good, install: "now" }, /install/],
      policy: [{ ...good, policy: { healthDeadlineSeconds: 1 } }, /healthDeadlineSeconds/],
    };
    for (const [name, [d]] of Object.entries(bad)) await cloud.createJob(`${thing}-${name}`, thing, d);
    for (const [name, [, reason]] of Object.entries(bad)) {
      const r = await finalStatus(thing, `${thing}-${name}`);
      expect(r.status, name).toBe("REJECTED");
      if (name !== "operation" && name !== "foreign")
        expect(r.details.reason, name).toMatch(/invalid job document/);
      expect(r.details.reason, name).toMatch(reason);
    }
    await runner.stop();
    expect(JOB_OPERATION).toBe("keel.update");
    expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
  });

  it("refuses bad signature, downgrade, wrong hardware, version mismatch, hash mismatch, size over the slot; bootloader untouched", async () => {
    // Prepare: one manifest per refusal, each under its own key
    const cases: Record<string, { manifest: object; version?: string; status: string; reason: RegExp }> = {
      signature: {
        manifest: signRelease(signers, {
          version: "1.1.0",
          releaseCounter: 2,
          image,
          signWith: generateKeyPair(),
        }),
        status: "REJECTED",
        reason: /release role.*0 valid signature/,
      },
      downgrade: {
        manifest: signRelease(signers, { version: "0.9.0", releaseCounter: 0, image }),
        version: "0.9.0",
        status: "REJECTED",
        reason: /below the installed/,
      },
      hardware: {
        manifest: signRelease(signers, {
          version: "1.1.0",
          releaseCounter: 2,
          image,
          compatible: ["x86-64"],
        }),
        status: "REJECTED",
        reason: /not in the release's compatible list/,
      },
      mismatch: {
        manifest: signRelease(signers, { version: "1.2.0", releaseCounter: 3, image }),
        status: "REJECTED",
        reason: /job asks for version 1.1.0 but the signed manifest is for 1.2.0/,
      },
      hash: {
        manifest: signRelease(signers, {
          version: "1.1.0",
          releaseCounter: 2,
          image,
          sha256: "f".repeat(64),
        }),
        status: "FAILED",
        reason: /sha256 mismatch/,
      },
      size: {
        manifest: signRelease(signers, { version: "1.1.0", releaseCounter: 2, image, size: 4 * 1024 * 1024 }),
        status: "REJECTED",
        reason: /holds only/,
      },
    };
    const { node, thing } = await newNode();
    const envBefore = await node.envBytes();
    const runner = new NodeRunner(node);
    await runner.start();
    // Act
    for (const [name, c] of Object.entries(cases)) {
      await cloud.put(`refusals/${name}/release.json`, JSON.stringify(c.manifest));
      await cloud.createJob(`${thing}-${name}`, thing, doc(`refusals/${name}/release.json`, c.version));
    }
    // Assess
    for (const [name, c] of Object.entries(cases)) {
      const r = await finalStatus(thing, `${thing}-${name}`);
      expect(r.status, name).toBe(c.status);
      expect(r.details.reason, name).toMatch(c.reason);
      expect(Buffer.compare(await node.envBytes(), envBefore), name).toBe(0);
    }
    await runner.stop();
    expect(runner.boots).toEqual([]);
  });
});
