/**
 * The install pipeline through the agent's standalone mode (`keel-agent install`): real files, a real
 * HTTP server, the real GRUB BootControl. Every refusal leaves the boot environment byte for byte as it
 * was and the target slot unwritten (or, for a bad hash, never activated).
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateKeyPair } from "../../core/keys.ts";
import { type FileServer, startFileServer } from "./helpers/http-server.ts";
import { expectBackOnA, makeNode, type TestNode, waitFor } from "./helpers/node.ts";
import { makeSigners, randomImage, type Signers, signRelease } from "./helpers/release.ts";

const IMAGE_SIZE = 600 * 1024 + 17;

describe("standalone install pipeline", () => {
  let signers: Signers;
  let image: Uint8Array;
  let server: FileServer;
  let dir: string;
  let node: TestNode;

  beforeAll(async () => {
    signers = makeSigners();
    image = randomImage(IMAGE_SIZE);
    server = await startFileServer();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-install-"));
    node = await makeNode({ dir, signers });
    await writeFile(join(dir, "image.squashfs"), image);
    server.add(`/${dir}/image`, join(dir, "image.squashfs"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function manifest(o: Partial<Parameters<typeof signRelease>[1]> = {}): Promise<string> {
    const path = join(dir, "release.json");
    await writeFile(
      path,
      JSON.stringify(signRelease(signers, { version: "1.1.0", releaseCounter: 2, image, ...o })),
    );
    return path;
  }

  it("install refused while pending never adds up to a boot-loop verdict: B still gets its health check", async () => {
    // Prepare: 1.1.0 pending, then the reproduction: `install` five more times
    const path = await manifest();
    expect((await node.agent().installStandalone(path, join(dir, "image.squashfs"))).state).toBe("Rebooting");
    for (let i = 0; i < 5; i++) {
      await expect(node.agent().installStandalone(path, join(dir, "image.squashfs"))).rejects.toThrow(
        /an update is already in progress/,
      );
    }
    // Act: boot B and start the agent
    expect(await node.powerOn()).toBe("B");
    const chain: string[] = [];
    const agent = node.agent({ connect: false, onTransition: (_f, _e, to) => chain.push(to) });
    await agent.start();
    await waitFor(() => chain.at(-1) === "Idle");
    await agent.stop();
    // Assess: health-checked and committed, not given up; A's version is still known
    expect(chain).toEqual(["HealthChecking", "Committed", "Idle"]);
    expect((await node.boot.readState()).slots.B.good).toBe(true);
    const s = await node.agent().status();
    expect(s.slots.A.version).toBe("1.0.0");
    expect(s.slots.B.version).toBe("1.1.0");
  });

  it("an operator's rollback walks its own transition and is no verdict on the release", async () => {
    // Prepare
    const path = await manifest();
    expect((await node.agent().installStandalone(path, join(dir, "image.squashfs"))).state).toBe("Rebooting");
    const events: string[] = [];
    // Act
    const r = await node.agent({ onTransition: (_f, e) => events.push(e) }).rollback();
    // Assess
    expect(r).toEqual({ slot: "A", cancelled: "1.1.0", reboot: false });
    expect(events).toEqual(["operator-rollback", "booted-old", "reported"]);
    const saved = JSON.parse(await readFile(join(node.config.stateDir, "state.json"), "utf8"));
    expect(saved).toMatchObject({ state: "Idle", rolledBack: [], lastResult: { state: "RolledBack" } });
    await expectBackOnA(node);
  });

  it("streams the image into slot B, verifies it and sets B to be tried once", async () => {
    // Prepare
    const sentBefore = server.bytesSent;
    server.cutAfter(200 * 1024, 1);
    // Act
    const r = await node.agent().installStandalone(await manifest(), server.url(`/${dir}/image`));
    // Assess
    expect(r.state).toBe("Rebooting");
    const slotB = await node.slotBytes("B");
    expect(Buffer.compare(slotB.subarray(0, IMAGE_SIZE), Buffer.from(image))).toBe(0);
    expect(slotB.subarray(IMAGE_SIZE).every((b) => b === 0xbb)).toBe(true);
    const boot = await node.boot.readState();
    expect(boot.next).toBe("B");
    expect(server.bytesSent - sentBefore).toBeLessThanOrEqual(IMAGE_SIZE + 64 * 1024);
    const status = await node.agent().status();
    expect(status).toMatchObject({ booted: "A", state: "Rebooting", slots: { B: { version: "1.1.0" } } });
  });

  it("after the reboot into B, health passes and B is committed (no cloud needed)", async () => {
    // Prepare
    await node.agent().installStandalone(await manifest(), join(dir, "image.squashfs"));
    expect(await node.powerOn()).toBe("B");
    // Act
    const chain: string[] = [];
    const agent2 = node.agent({ onTransition: (_f, _e, t) => chain.push(t) });
    await agent2.start();
    await waitFor(() => agent2.state === "Idle" && chain.length > 0);
    await agent2.stop();
    // Assess
    expect(chain).toEqual(["HealthChecking", "Committed", "Idle"]);
    const boot = await node.boot.readState();
    expect(boot.slots.B.good).toBe(true);
    expect((await agent2.status()).lastResult).toMatchObject({ state: "Committed", version: "1.1.0" });
  });

  const refusals: Array<{ name: string; state: string; reason: RegExp; make: () => Promise<string> }> = [
    {
      name: "a signature by a key the root does not trust",
      state: "Rejected",
      reason: /release role.*0 valid signature/,
      make: () => manifest({ signWith: generateKeyPair() }),
    },
    {
      name: "a downgrade (releaseCounter below the running one)",
      state: "Rejected",
      reason: /releaseCounter 0 is below the installed 1/,
      make: () => manifest({ version: "0.9.0", releaseCounter: 0 }),
    },
    {
      name: "other hardware",
      state: "Rejected",
      reason: /hardware rpi4 is not in the release's compatible list/,
      make: () => manifest({ compatible: ["x86-64"] }),
    },
    {
      name: "an image larger than the slot",
      state: "Rejected",
      reason: /holds only 1048576 bytes/,
      make: () => manifest({ size: 2 * 1024 * 1024 }),
    },
    {
      name: "an image whose bytes do not match the signed hash",
      state: "Failed",
      reason: /sha256 mismatch/,
      make: () => manifest({ sha256: "0".repeat(64) }),
    },
    {
      name: "an image shorter than the signed size",
      state: "Failed",
      reason: /ends at byte|size mismatch/,
      make: () => manifest({ size: IMAGE_SIZE + 10 }),
    },
  ];

  it.each(refusals)("refuses $name and leaves the bootloader untouched", async ({ state, reason, make }) => {
    // Prepare
    const envBefore = await node.envBytes();
    const path = await make();
    // Act
    const r = await node.agent().installStandalone(path, join(dir, "image.squashfs"));
    // Assess
    expect(r.state).toBe(state);
    expect(r.reason).toMatch(reason);
    expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
    const status = await node.agent().status();
    expect(status.state).toBe("Idle");
    expect(status.lastResult).toMatchObject({ state });
  });

  it("fails with a clear reason when the image URL has expired, bootloader untouched", async () => {
    server.expire(`/${dir}/expired`);
    const envBefore = await node.envBytes();
    const r = await node.agent().installStandalone(await manifest(), server.url(`/${dir}/expired`));
    expect(r.state).toBe("Failed");
    expect(r.reason).toMatch(/403: the URL has expired/);
    expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
  });

  it("reports Committed without writing when the release already runs", async () => {
    const envBefore = await node.envBytes();
    const slotB = await node.slotBytes("B");
    const r = await node
      .agent()
      .installStandalone(
        await manifest({ version: "1.0.0", releaseCounter: 1 }),
        join(dir, "image.squashfs"),
      );
    expect(r.state).toBe("Committed");
    expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
    expect(Buffer.compare(await node.slotBytes("B"), slotB)).toBe(0);
  });
});
