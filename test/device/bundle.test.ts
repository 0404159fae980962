/**
 * The shipped artifact (scripts/build-agent.ts): device/cli.ts bundled into one ES module and run by
 * plain `node`, without tsx, from a temp dir with no node_modules beside it (so a dependency left out of
 * the bundle fails the test). It must do a real install over HTTP, report status, roll back and mark
 * good on a simulated node, and as a daemon take an IoT job over MQTT with mutual TLS from the local
 * cloud, reboot into the new slot and commit it (mqtt, the Jobs client and the health checks bundled).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildJobDocument } from "../../core/job-document.ts";
import { AGENT_NODE_FLAGS, buildAgent } from "../../scripts/build-agent.ts";
import { HEALTHY_CHAIN } from "./helpers/chains.ts";
import { startTestCloud, type TestCloud } from "./helpers/cloud.ts";
import { type FileServer, startFileServer } from "./helpers/http-server.ts";
import { makeNode, NODE_LAYOUT, waitFor } from "./helpers/node.ts";
import { makeSigners, randomImage, signRelease } from "./helpers/release.ts";

const execFileP = promisify(execFile);

describe("the bundled keel-agent (dist/keel-agent.mjs)", () => {
  let tmp: string;
  let bundle: string;
  const signers = makeSigners();

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-bundle-"));
    bundle = await buildAgent(join(tmp, "keel-agent.mjs"));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** `node <flags> <bundle> …` from the temp dir, as the unit runs it; exit code and output, never throws. */
  async function agent(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await execFileP(process.execPath, [...AGENT_NODE_FLAGS, bundle, ...args], { cwd: tmp });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  describe("standalone commands", () => {
    let server: FileServer;
    beforeAll(async () => {
      server = await startFileServer();
    });
    afterAll(async () => {
      await server.stop();
    });

    it("installs a release over HTTP, then status, rollback and mark-good work", async () => {
      // Prepare: a node on slot A, a signed 1.1.0 served over HTTP
      const dir = join(tmp, "standalone");
      const node = await makeNode({ dir, signers, slotSize: 512 * 1024 });
      const image = randomImage(300 * 1024 + 7);
      await writeFile(join(dir, "image.squashfs"), image);
      server.add("/image.squashfs", join(dir, "image.squashfs"));
      await writeFile(
        join(dir, "release.json"),
        JSON.stringify(signRelease(signers, { version: "1.1.0", releaseCounter: 2, image })),
      );
      const config = join(dir, "agent.json");
      await writeFile(
        config,
        JSON.stringify({
          thingName: "bundle-node",
          hardware: "rpi4",
          ...NODE_LAYOUT,
          factory: { version: "1.0.0", releaseCounter: 1 },
        }),
      );

      // Act: install
      const install = await agent([
        "install",
        join(dir, "release.json"),
        "--image",
        server.url("/image.squashfs"),
        "--config",
        config,
      ]);

      // Assess: the slot holds the image and is set to be tried
      expect(install.stderr).not.toMatch(/keel-agent:/);
      expect(install.code).toBe(0);
      expect(install.stdout).toMatch(/slot B holds 1\.1\.0 and will be tried on the next boot/);
      expect(server.bytesSent).toBe(image.byteLength);
      expect((await node.slotBytes("B")).subarray(0, image.byteLength).equals(Buffer.from(image))).toBe(true);
      const status = await agent(["status", "--json", "--config", config]);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({
        booted: "A",
        state: "Rebooting",
        bootNext: "B",
        slots: { A: { good: true }, B: { version: "1.1.0", releaseCounter: 2 } },
      });

      // Act + Assess: booted into B, go back to the good A; then commit A
      await node.setBooted("B");
      const back = await agent(["rollback", "--config", config]);
      expect(back.code).toBe(0);
      expect(back.stdout).toMatch(/slot A will boot next/);
      expect((await node.boot.readState()).next).toBe("A");
      await node.setBooted("A");
      const good = await agent(["mark-good", "--config", config]);
      expect(good.code).toBe(0);
      expect(good.stdout).toMatch(/slot A marked good/);
      expect((await node.boot.readState()).slots.A.good).toBe(true);
    });

    it("refuses bad input with the reason and exit 1", async () => {
      const r = await agent(["status", "--config", join(tmp, "missing.json")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/keel-agent: .*missing\.json/);
    });
  });

  describe("run (the daemon)", () => {
    let cloud: TestCloud;
    beforeAll(async () => {
      cloud = await startTestCloud(join(tmp, "cloud"));
    });
    afterAll(async () => {
      await cloud?.stop();
    });

    /** One daemon process; its transitions are collected from the JSON log lines on stderr. */
    function runDaemon(config: string, chain: string[]): { child: ChildProcess; exited: Promise<void> } {
      const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, bundle, "run", "--config", config], {
        cwd: tmp,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let buf = "";
      child.stderr?.on("data", (d: Buffer) => {
        buf += d.toString("utf8");
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          try {
            const j = JSON.parse(line) as { msg?: string; to?: string };
            if (j.msg === "transition" && j.to) chain.push(j.to);
          } catch {
            // not a log line (a warning from node itself)
          }
        }
      });
      return { child, exited: new Promise((r) => child.once("exit", () => r())) };
    }

    it("takes an IoT job over MQTT, installs, reboots into the new slot and commits it", async () => {
      // Prepare: a release in S3, a provisioned thing, a job for it
      const thing = "bundle-daemon";
      const dir = join(tmp, thing);
      const image = randomImage(256 * 1024 + 11);
      await cloud.put("releases/2.0.0/image.squashfs", image);
      await cloud.put(
        "releases/2.0.0/release.json",
        JSON.stringify(signRelease(signers, { version: "2.0.0", releaseCounter: 5, image })),
      );
      const mqtt = await cloud.provision(thing, dir);
      const node = await makeNode({ dir, signers, thingName: thing, config: { mqtt } });
      const marker = join(dir, "reboot-requested");
      const config = join(dir, "agent.json");
      await writeFile(
        config,
        JSON.stringify({
          thingName: thing,
          hardware: "rpi4",
          ...NODE_LAYOUT,
          mqtt,
          health: [
            { type: "command", command: "true", retries: 0, intervalSeconds: 0 },
            { type: "broker", retries: 100, intervalSeconds: 0.1 },
          ],
          reboot: { command: `touch ${marker}` },
          factory: { version: "1.0.0", releaseCounter: 1 },
          reportBackoff: { initialMs: 50, maxMs: 500 },
        }),
      );
      await cloud.createJob(
        "bundle-job",
        thing,
        buildJobDocument({
          rolloutId: "bundle",
          version: "2.0.0",
          region: cloud.cloud.info.region,
          bucket: cloud.cloud.info.bucket,
          manifestKey: "releases/2.0.0/release.json",
          imageKey: "releases/2.0.0/image.squashfs",
          policy: { healthDeadlineSeconds: 60 },
        }),
      );
      const chain: string[] = [];

      // Act: the daemon installs and asks to reboot; the firmware boots B; a fresh daemon commits
      const first = runDaemon(config, chain);
      try {
        await waitFor(() => existsSync(marker), 60_000);
      } finally {
        first.child.kill("SIGKILL");
        await first.exited;
      }
      await unlink(marker);
      const booted = await node.powerOn();
      const second = runDaemon(config, chain);
      try {
        await waitFor(() => chain.at(-1) === "Idle" && chain.includes("Committed"), 60_000);
      } finally {
        second.child.kill("SIGTERM");
        await second.exited;
      }

      // Assess
      expect(booted).toBe("B");
      expect(chain).toEqual(HEALTHY_CHAIN);
      expect(await cloud.execution(thing, "bundle-job")).toMatchObject({
        status: "SUCCEEDED",
        details: { version: "2.0.0", fromVersion: "1.0.0" },
      });
      expect((await node.boot.readState()).slots.B.good).toBe(true);
    });
  });

  it("runs with the same node flags from the systemd unit and as an executable", async () => {
    const unit = await readFile(resolve(import.meta.dirname, "../../device/keel-agent.service"), "utf8");
    expect(unit.split("\n").filter((l) => l.startsWith("ExecStart="))).toEqual([
      `ExecStart=/usr/bin/node ${AGENT_NODE_FLAGS.join(" ")} /usr/lib/keel/keel-agent.mjs run --config /etc/keel/agent.json`,
    ]);
    // Run directly: the shebang must start node with those flags.
    const r = await execFileP(bundle, ["--help"], { cwd: tmp });
    expect(r.stdout).toMatch(/install \[options\] \[release\]/);
    expect(r.stdout).toMatch(/abandon \[options\]/);
    expect((await readFile(bundle, "utf8")).split("\n")[0]).toBe(
      `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(" ")}`,
    );
  });
});
