/** `keel-agent` as a user runs it: a child process on a simulated node, checking exit codes and output. */
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeNode, NODE_LAYOUT, type TestNode } from "./helpers/node.ts";
import { makeSigners, randomImage, signRelease } from "./helpers/release.ts";

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, "../../bin/keel-agent.mjs");

async function agent(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("keel-agent CLI", () => {
  let dir: string;
  let node: TestNode;
  let config: string;
  const signers = makeSigners();
  const image = randomImage(200 * 1024);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-cli-"));
    node = await makeNode({ dir, signers });
    config = join(dir, "agent.json");
    await writeFile(
      config,
      JSON.stringify({
        thingName: "cli-node",
        hardware: "rpi4",
        ...NODE_LAYOUT,
        factory: { version: "1.0.0", releaseCounter: 1 },
      }),
    );
    await writeFile(join(dir, "image.squashfs"), image);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a release for other hardware with exit 1 and the reason", async () => {
    await writeFile(
      join(dir, "other.json"),
      JSON.stringify(
        signRelease(signers, { version: "1.1.0", releaseCounter: 2, image, compatible: ["x86-64"] }),
      ),
    );
    const r = await agent([
      "install",
      join(dir, "other.json"),
      "--image",
      join(dir, "image.squashfs"),
      "--config",
      config,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /keel-agent: install refused: hardware rpi4 is not in the release's compatible list \[x86-64\]/,
    );
  });

  it("installs from a file next to the manifest and exits 0 once the slot is set to be tried", async () => {
    await writeFile(
      join(dir, "release.json"),
      JSON.stringify(signRelease(signers, { version: "1.1.0", releaseCounter: 2, image })),
    );
    const r = await agent(["install", join(dir, "release.json"), "--config", config]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/slot B holds 1\.1\.0 and will be tried on the next boot/);
    expect((await node.boot.readState()).next).toBe("B");
  });

  it("shows status as text and JSON, with the written slot pending its trial, not good", async () => {
    const text = await agent(["status", "--config", config]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/booted: {2}slot A/);
    expect(text.stdout).toMatch(/slot A: 1\.0\.0 \(counter 1\) \[booted, good\]/);
    expect(text.stdout).toMatch(/slot B: 1\.1\.0 \(counter 2\) \[pending trial\]/);
    expect(text.stdout).toMatch(/state: {3}Rebooting/);
    const json = JSON.parse((await agent(["status", "--json", "--config", config])).stdout);
    expect(json).toMatchObject({
      booted: "A",
      state: "Rebooting",
      bootNext: "B",
      trial: "B",
      slots: { A: { good: true }, B: { version: "1.1.0", good: false } },
    });
  });

  it("a refused install and status change nothing on disk; slot A's version survives booting B", async () => {
    const statePath = join(dir, "state", "state.json");
    const before = await readFile(statePath);
    for (let i = 0; i < 5; i++) {
      const r = await agent(["install", join(dir, "release.json"), "--config", config]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/an update is already in progress \(state Rebooting\)/);
    }
    await agent(["status", "--json", "--config", config]);
    // Byte for byte: no re-entry counted (5 refusals used to push `entries` past maxReentries, so the
    // next start gave the new slot up without a health check).
    expect((await readFile(statePath)).equals(before)).toBe(true);
    expect(JSON.parse(before.toString("utf8"))).toMatchObject({
      entries: 0,
      slots: { A: { version: "1.0.0" } },
    });
    await writeFile(join(dir, "cmdline-b"), "ro keel.slot=B\n");
    const fromB = await agent(["status", "--config", config, "--cmdline", join(dir, "cmdline-b")]);
    expect(fromB.stdout).toMatch(/slot A: 1\.0\.0 \(counter 1\) \[good\]/);
  });

  it("rollback cancels a pending trial and goes back to the good slot; refuses when there is none", async () => {
    const ok = await agent(["rollback", "--config", config]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/pending update to 1\.1\.0 cancelled/);
    expect(ok.stdout).toMatch(/slot A will boot next/);
    const boot = await node.boot.readState();
    expect(boot.next).toBe("A");
    expect(boot.slots.B.bootable).toBe(false);
    const json = JSON.parse((await agent(["status", "--json", "--config", config])).stdout);
    expect(json).toMatchObject({
      state: "Idle",
      trial: null,
      lastResult: { state: "RolledBack", version: "1.1.0", reason: "rolled back by the operator" },
    });
    // Nothing pending now, and B is not good: nowhere to go back to.
    const refused = await agent(["rollback", "--config", config]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/slot B is not marked good/);
    const good = await agent(["mark-good", "--config", config]);
    expect(good.stdout).toMatch(/slot A marked good/);
  });

  it("names the field at fault in a bad config", async () => {
    await writeFile(join(dir, "bad.json"), JSON.stringify({ thingName: "x" }));
    const r = await agent(["status", "--config", join(dir, "bad.json")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/hardware/);
  });
});

describe("keel-agent run without mqtt (air-gapped)", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-airgap-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("stays up once Idle instead of exiting (the unit would restart it every few seconds), and stops on SIGTERM with 0", async () => {
    // Prepare
    await makeNode({ dir, signers: makeSigners() });
    const config = join(dir, "agent.json");
    await writeFile(
      config,
      JSON.stringify({
        thingName: "airgap",
        hardware: "rpi4",
        ...NODE_LAYOUT,
        health: [{ type: "command", command: "true", retries: 0, intervalSeconds: 0 }],
      }),
    );
    // Act
    const child = spawn(process.execPath, [BIN, "run", "--config", config], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
        if (stderr.includes("air-gapped mode")) resolve();
      });
      child.once("exit", () => reject(new Error(`exited before going air-gapped: ${stderr}`)));
    });
    // An agent that exits once Idle does so right after this line; give it the chance.
    await new Promise((r) => setTimeout(r, 500));
    const aliveBeforeSignal = child.exitCode === null;
    child.kill("SIGTERM");
    // Assess
    expect(aliveBeforeSignal).toBe(true);
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/booted slot is healthy; marked good|agent starting/);
  });
});
