/**
 * The wiring of `keel dev --vm` that can be proven without booting a VM (a boot takes minutes under TCG;
 * one real run is shown in docs/os-image.md): the node's agent.json is one the agent accepts, its files
 * and loopback relay are what the node needs, bad endpoints and labels are refused before anything is
 * written, the demo summary names the real node, and the CLI refuses --vm where it cannot work.
 */
import { spawn } from "node:child_process";
import { access, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage } from "../../cli/commands/release.ts";
import { demoWaves, type LastRun, renderSummary } from "../../local/demo.ts";
import { buildRootImage, checkAgentConfig } from "../../os/build.ts";
import { OsInputError } from "../../os/errors.ts";
import {
  type LabNode,
  labAgentConfig,
  loopbackPort,
  QEMU_HARDWARE,
  writeLabNodeConfig,
} from "../../os/lab-node.ts";
import { key, makeRoot, sign } from "../core/fixtures.ts";

const KEEL = resolve(import.meta.dirname, "../../bin/keel.mjs");
let tmp: string;
let node: LabNode;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "keel-dev-vm-"));
  await writeFile(join(tmp, "ca.pem"), "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
  await writeFile(join(tmp, "root.json"), JSON.stringify(sign(makeRoot({ rootKeys: [key(5)] }), [key(5)])));
  node = {
    thing: "dev-vm-1",
    certificatePem: "-----BEGIN CERTIFICATE-----\nDEVICE\n-----END CERTIFICATE-----\n",
    privateKey: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
    caFile: join(tmp, "ca.pem"),
    rootFile: join(tmp, "root.json"),
    mqtt: "mqtts://127.0.0.1:18883",
    s3: "http://127.0.0.1:19000",
    factory: { version: "1.0.0", releaseCounter: 1 },
  };
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("a lab node's configuration", () => {
  it("is an agent.json the agent accepts, naming the cloud's broker and the files on persistence", () => {
    const config = labAgentConfig(node);
    expect(() => checkAgentConfig(JSON.stringify(config), "lab agent.json")).not.toThrow();
    expect(config).toMatchObject({
      thingName: "dev-vm-1",
      hardware: QEMU_HARDWARE,
      mqtt: { endpoint: "mqtts://127.0.0.1:18883", cert: "/etc/keel/device.pem.crt", ca: "/etc/keel/ca.pem" },
      factory: { version: "1.0.0", releaseCounter: 1 },
    });
  });

  it("writes agent.json, the credentials, the CA, the trust root and the relay of both ports, readable by root only", async () => {
    const dir = join(tmp, "config");
    const r = await writeLabNodeConfig(dir, { ...node, serialShell: true });
    expect(r.agentConfig).toBe(join(dir, "agent.json"));
    expect((await readdir(dir)).sort()).toEqual(
      [
        "agent.json",
        "ca.pem",
        "device.pem.crt",
        "device.pem.key",
        "loopback-forward",
        "root.json",
        "serial-shell",
      ].sort(),
    );
    expect(r.configFiles.map((f) => f.slice(dir.length + 1)).sort()).not.toContain("agent.json");
    expect(JSON.parse(await readFile(join(dir, "loopback-forward"), "utf8"))).toEqual({
      host: "10.0.2.2",
      ports: [18883, 19000],
    });
    expect(await readFile(join(dir, "device.pem.key"), "utf8")).toBe(node.privateKey);
    expect((await stat(join(dir, "device.pem.key"))).mode & 0o777).toBe(0o600);
  });

  it("refuses an endpoint that is not 127.0.0.1 with a port, before writing anything", async () => {
    for (const url of ["mqtts://10.1.2.3:8883", "http://127.0.0.1", "not a url", "mqtts://localhost:1883"])
      expect(() => loopbackPort(url)).toThrow(OsInputError);
    const dir = join(tmp, "refused");
    await expect(writeLabNodeConfig(dir, { ...node, mqtt: "mqtts://192.0.2.1:8883" })).rejects.toThrow(
      /not a 127\.0\.0\.1 endpoint/,
    );
    await expect(access(dir)).rejects.toThrow();
  });
});

describe("the real releases", () => {
  it("refuses a release label that would corrupt /etc/keelos-release, before building anything", async () => {
    const cacheDir = join(tmp, "cache");
    const agent = join(tmp, "keel-agent.mjs");
    await writeFile(agent, "#!/usr/bin/env -S node --max-semi-space-size=1\n// keel-agent\n");
    const bad: Array<Record<string, string>> = [{ KUBELET: "broken\nVERSION=9.9.9" }, { "bad key": "x" }];
    for (const releaseLabels of bad) {
      await expect(
        buildRootImage({
          trustRoot: node.rootFile,
          version: "1.2.0",
          agent,
          cacheDir,
          releaseLabels,
          pack: buildImage,
        }),
      ).rejects.toThrow(OsInputError);
    }
    await expect(access(cacheDir)).rejects.toThrow();
  });
});

describe("the demo summary", () => {
  it("names the real node, its fleet, its serial console and the version it ends on", () => {
    const run: LastRun = {
      devices: 4,
      fleetName: "demo",
      startedAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:05:00.000Z",
      ok: true,
      problems: [],
      rollouts: [],
      fleet: { "1.1.0": 4 },
      realNodes: [
        {
          thing: "demo-vm-1",
          fleet: "demo-vm",
          what: "a KeelOS VM under QEMU (serial console /x/serial.log)",
          version: "1.1.0",
        },
      ],
    };
    const text = renderSummary(run);
    expect(text).toContain("Fleet demo and the real node's (4 devices): 1.1.0 ×4");
    expect(text).toMatch(
      /demo-vm-1 \(fleet demo-vm\) is the real node, a KeelOS VM under QEMU \(serial console \/x\/serial\.log\); it runs 1\.1\.0/,
    );
  });
});

describe("the demo's wave plan", () => {
  it("keeps each job within 100 bucket groups when the VM's fleet joins the simulated one", () => {
    for (const fleets of [1, 2, 3]) {
      const waves = demoWaves("demo-0001", 2, fleets);
      expect(waves[0]).toMatchObject({ canary: ["demo-0001"] });
      const percents = waves.slice(1).map((w) => (w as { percent: number }).percent);
      expect(percents.at(-1)).toBe(100);
      let before = 0;
      for (const p of percents) {
        expect((p - before) * fleets).toBeLessThanOrEqual(100);
        before = p;
      }
    }
    // One fleet: the plan the demo always had.
    expect(demoWaves("c", 2, 1).slice(1)).toEqual([
      { percent: 25, bakeSeconds: 2, successThresholdPercent: 100 },
      { percent: 100, successThresholdPercent: 100 },
    ]);
  });
});

describe("keel dev --vm", () => {
  const keel = async (args: string[]) => {
    const proc = spawn(process.execPath, [KEEL, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((res) => proc.once("exit", (c) => res(c)));
    return { code, stderr };
  };

  it("refuses --services-only (a VM node needs the fleet and the Lambda wiring) and an unknown firmware", async () => {
    const dir = join(tmp, "keel");
    const services = await keel(["dev", "--services-only", "--vm", "--dir", dir]);
    expect(services.code).toBe(1);
    expect(services.stderr).toMatch(/--vm needs the fleet/);
    const firmware = await keel(["dev", "--vm", "--vm-firmware", "coreboot", "--dir", dir]);
    expect(firmware.code).toBe(1);
    expect(firmware.stderr).toMatch(/vmFirmware|vm-firmware/);
    await expect(access(dir)).rejects.toThrow();
  });
});
