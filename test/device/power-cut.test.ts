/**
 * Power cuts around a standalone install, in process: an agent stopped mid-step stands for the cut, the
 * simulated firmware boots the node, and the agent resumes (issue 11 items 6, 7 and 8). What must hold:
 * the running slot is re-marked good on every boot that is not the new slot's trial, a slot that had its
 * one try is never armed again, and a cut install can be resumed or abandoned.
 */
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Agent } from "../../device/agent.ts";
import { CommandFailedError } from "../../device/errors.ts";
import { expectBackOnA, makeNode, type TestNode, waitFor } from "./helpers/node.ts";
import { makeSigners, randomImage, type Signers, signRelease } from "./helpers/release.ts";

const IMAGE_SIZE = 600 * 1024 + 17;

describe("power cuts around a standalone install", () => {
  let signers: Signers;
  let image: Uint8Array;
  let dir: string;
  let node: TestNode;
  let manifest: string;
  let imagePath: string;

  beforeAll(() => {
    signers = makeSigners();
    image = randomImage(IMAGE_SIZE);
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-cut-"));
    node = await makeNode({ dir, signers });
    imagePath = join(dir, "image.squashfs");
    await writeFile(imagePath, image);
    manifest = join(dir, "release.json");
    await writeFile(
      manifest,
      JSON.stringify(signRelease(signers, { version: "1.1.0", releaseCounter: 2, image })),
    );
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** An agent that stops itself (the cut) once `bytes` of the image are in the slot. */
  function cutAt(bytes: number): Agent {
    const agent: Agent = node.agent({
      onBytes: (done) => {
        if (done >= bytes) void agent.stop();
      },
    });
    return agent;
  }

  const statePath = () => join(node.config.stateDir, "state.json");

  it("a resumed install re-marks the running slot good, so a second cut still boots it (item 6)", async () => {
    // Prepare: cut mid-download, power on (the firmware uses A's try)
    expect((await cutAt(200 * 1024).installStandalone(manifest, imagePath)).state).toBe("Downloading");
    expect(await node.powerOn()).toBe("A");
    // Act: resume, cut again mid-download, power on
    expect((await cutAt(400 * 1024).resumeStandalone()).state).toBe("Downloading");
    const second = await node.powerOn();
    // Assess: A again, not rescue; then the install finishes
    expect(second).toBe("A");
    expect((await node.agent().resumeStandalone()).state).toBe("Rebooting");
    expect(await node.powerOn()).toBe("B");
    expect((await node.slotBytes("B")).subarray(0, IMAGE_SIZE).equals(Buffer.from(image))).toBe(true);
  });

  it("the daemon re-marks the running slot good at boot with a cut install saved, and leaves the install alone", async () => {
    // Prepare
    await cutAt(200 * 1024).installStandalone(manifest, imagePath);
    expect(await node.powerOn()).toBe("A");
    const before = await readFile(statePath());
    // Act
    const daemon = node.agent({ connect: false });
    await daemon.start();
    await waitFor(() => node.logs.some((l) => l.includes("install --resume")));
    await daemon.stop();
    // Assess
    expect((await node.boot.readState()).slots.A.good).toBe(true);
    expect((await readFile(statePath())).equals(before)).toBe(true);
    expect(await node.powerOn()).toBe("A");
  });

  it("a cut between arming the trial and saving it never arms the slot again (item 7)", async () => {
    // Prepare: the trial is written; the cut lands before `Rebooting` is saved
    expect((await node.agent().installStandalone(manifest, imagePath)).state).toBe("Rebooting");
    const saved = JSON.parse(await readFile(statePath(), "utf8"));
    await writeFile(statePath(), JSON.stringify({ ...saved, state: "Activating" }));
    // The firmware tries B, which never comes up; the next power-on falls back to A
    expect(await node.powerOn()).toBe("B");
    expect(await node.powerOn()).toBe("A");
    const events: string[] = [];
    // Act
    const r = await node.agent({ onTransition: (_f, e) => events.push(e) }).resumeStandalone();
    // Assess: judged as a failed trial, B disarmed, A boots from now on
    expect(r).toEqual({ state: "RolledBack", reason: "new slot never came up" });
    expect(events).toEqual(["booted-old", "reported"]);
    await expectBackOnA(node);
    expect(await node.powerOn()).toBe("A");
  });

  it("re-arms after a cut in Activating when the trial write never landed (the slot never had its try)", async () => {
    // Prepare: stop right after Activating is saved, before the write
    const agent: Agent = node.agent({
      onTransition: (_f, _e, to) => {
        if (to === "Activating") void agent.stop();
      },
    });
    expect((await agent.installStandalone(manifest, imagePath)).state).toBe("Activating");
    expect(await node.powerOn()).toBe("A");
    // Act
    const r = await node.agent().resumeStandalone();
    // Assess
    expect(r.state).toBe("Rebooting");
    expect(await node.powerOn()).toBe("B");
  });

  it("abandon drops a cut install: B unbootable, A stays, Cancelled recorded (item 8)", async () => {
    // Prepare
    await cutAt(300 * 1024).installStandalone(manifest, imagePath);
    expect(await node.powerOn()).toBe("A");
    // Act
    const r = await node.agent().abandon();
    // Assess
    expect(r).toEqual({ state: "Downloading", target: "B" });
    const s = await node.agent().status();
    expect(s).toMatchObject({
      state: "Idle",
      job: null,
      slots: { B: { version: null, bootable: false } },
      lastResult: { state: "Cancelled", reason: "abandoned by the operator" },
    });
    expect(await node.powerOn()).toBe("A");
    // A new install works afterwards
    expect((await node.agent().installStandalone(manifest, imagePath)).state).toBe("Rebooting");
  });

  it("resume and abandon refuse, changing nothing, when there is no cut standalone install", async () => {
    const env = await node.envBytes();
    await expect(node.agent().resumeStandalone()).rejects.toThrow(CommandFailedError);
    await expect(node.agent().abandon()).rejects.toThrow(/no install to abandon/);
    expect((await node.agent().installStandalone(manifest, imagePath)).state).toBe("Rebooting");
    const state = await readFile(statePath());
    const armed = await node.envBytes();
    await expect(node.agent().resumeStandalone()).rejects.toThrow(
      /no standalone install to resume \(state Rebooting\)/,
    );
    await expect(node.agent().abandon()).rejects.toThrow(/use `keel-agent rollback`/);
    expect((await readFile(statePath())).equals(state)).toBe(true);
    expect((await node.envBytes()).equals(armed)).toBe(true);
    expect(env.equals(armed)).toBe(false);
  });

  it("refuses at write time a target slot that is the booted one's storage; nothing written (item 5)", async () => {
    // Prepare: a config that slipped past the load-time check (parsed without it), B a link to A
    const linked = await makeNode({
      dir: join(dir, "linked"),
      signers,
      config: { slots: { A: "slot-a.img", B: "b-link.img" } },
    });
    await symlink(join(dir, "linked", "slot-a.img"), join(dir, "linked", "b-link.img"));
    const slotA = await linked.slotBytes("A");
    const env = await linked.envBytes();
    // Act
    const r = await linked.agent().installStandalone(manifest, imagePath);
    // Assess
    expect(r.state).toBe("Failed");
    expect(r.reason).toMatch(/slots A \(.*slot-a\.img\) and B \(.*b-link\.img\) are the same file/);
    expect((await linked.slotBytes("A")).equals(slotA)).toBe(true);
    expect((await linked.envBytes()).equals(env)).toBe(true);
  });
});
