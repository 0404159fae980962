/**
 * A real KeelOS node under QEMU (TCG): the disk `keel os build` writes boots under BIOS (SeaBIOS) and
 * UEFI (OVMF) through GRUB and the shipped grub.cfg into slot A, systemd arms the i6300esb watchdog, the
 * real keel-agent runs as the shipped unit and commits slot A. Then one node of a local cloud goes through
 * real rollouts, one after another: a good release (scenario 1), one whose kubelet never gets healthy (2),
 * one that panics and one that hangs at boot (3), and power cuts at random moments of updates (4); the
 * persistence partition and /tmp are probed across all of them (5). Asserted through the rollout API, IoT
 * (the job execution) and the node's own view: serial console markers and commands run on its shell
 * (grub-editenv list, keel-agent status, mounts). Every boot is a fresh QEMU process (`-no-reboot`,
 * power-cycle); each boot's time is printed, never asserted. One QEMU at a time: this is the only VM file.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OsBuildResult } from "../../os/build.ts";
import type { Boot, Firmware } from "../../os/qemu.ts";
import { until } from "../e2e/helpers.ts";
import {
  BOOT_TIMEOUT_MS,
  bootedFrom,
  buildTestOs,
  guestView,
  type Machine,
  machine,
  reach,
  startVmCloud,
  type VmCloud,
} from "./helpers.ts";
import { powerCuts } from "./power-cuts.ts";

let tmp: string;
let os: OsBuildResult;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "keel-vm-node-"));
  const shellFlag = join(tmp, "serial-shell");
  await writeFile(shellFlag, "test images only: a root shell on ttyS0\n");
  os = await buildTestOs(tmp, { configFiles: [shellFlag] });
}, 1_800_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/**
 * A factory node's first boot: GRUB booted slot A, systemd armed the watchdog, the agent committed A, and
 * the node's own shell shows the GRUB environment, the agent's status and its mounts.
 */
async function expectFactoryBoot(b: Boot, firmware: Firmware): Promise<void> {
  const booted = await reach(b, /KEEL-MARK booted .*\n/, `${firmware} boot of slot A`);
  expect(booted).toContain("VERSION=1.0.0");
  expect(booted).toContain("keel.slot=A");
  expect(booted).toContain("root=PARTLABEL=keel-a");
  expect(booted).toContain("watchdog=active");
  await reach(b, /booted slot is healthy; marked good.*"slot":"A"/, `${firmware} agent committed A`);
  const { env, status } = await guestView(b);
  expect(env).toMatchObject({ A_OK: "1", A_TRY: "0", ORDER: "A B" });
  expect(status.booted).toBe("A");
  const mounts = await b.shell(
    "findmnt -rno TARGET,FSTYPE,OPTIONS -M /; findmnt -rno TARGET,FSTYPE -M /var/lib/keel; findmnt -rno TARGET,FSTYPE -M /tmp",
    BOOT_TIMEOUT_MS,
  );
  expect(mounts).toMatch(/^\/ squashfs ro/m);
  expect(mounts).toMatch(/^\/var\/lib\/keel ext4$/m);
  expect(mounts).toMatch(/^\/tmp tmpfs$/m);
}

// BIOS is proven by the first boot of scenario 1 (the same checks); UEFI gets a boot of its own.
describe.sequential("KeelOS boots for real", () => {
  it(
    "uefi: GRUB boots slot A, the watchdog is armed, the agent commits A, / is read-only, /var/lib/keel and /tmp are mounted",
    async () => {
      const m = await machine(os.disk, "uefi");
      const b = await m.powerOn();
      try {
        await expectFactoryBoot(b, "uefi");
      } finally {
        b.kill();
        await b.exited;
        await m.dispose();
      }
    },
    2 * BOOT_TIMEOUT_MS,
  );
});

describe.sequential("a real node through real rollouts, one after another", () => {
  let cloud: VmCloud;
  let m: Machine;
  /** The node's current boot: each scenario starts with the node up on its committed slot. */
  let b: Boot | undefined;
  const thing = "vm-node-1";
  const fleet = "vmfleet";

  beforeAll(async () => {
    cloud = await startVmCloud(tmp);
    const node = await cloud.node(fleet, thing);
    m = await machine(node.disk, "bios");
    // The releases: the same OS at 2.0.0, and three broken ones above it, signed and published like any.
    await cloud.release("2.0.0", 10);
    await cloud.release("3.0.0", 11, "unhealthy");
    await cloud.release("3.1.0", 12, "panic");
    await cloud.release("3.2.0", 13, "hang");
  }, 1_800_000);

  afterAll(async () => {
    b?.kill();
    await b?.exited;
    await m?.dispose();
    await cloud?.stop();
  });

  const running = (): Boot => {
    if (!b || b.child.exitCode !== null || b.child.signalCode !== null)
      throw new Error("the node is not up: an earlier scenario failed");
    return b;
  };

  /** Rolls `version` out to the node's fleet; resolves once the agent has armed the new slot and QEMU reset. */
  async function rolloutAndReboot(version: string): Promise<{ rolloutId: string; jobId: string }> {
    const now = running();
    await now.waitFor(/root@keelos/, BOOT_TIMEOUT_MS);
    // Scenario 5: /tmp is a tmpfs, so this file must be gone after the next boot, whatever it boots.
    await now.shell("touch /tmp/probe; sync", BOOT_TIMEOUT_MS);
    const ids = await cloud.rollout(version, fleet);
    await reach(now, /"msg":"rebooting"/, `agent rebooting into the new slot for ${version}`);
    await now.exited;
    return ids;
  }

  /** The node is back on `slot` (version `running`): the job FAILED with rolledBack, the rollout ABORTED. */
  async function expectRolledBack(
    ids: { rolloutId: string; jobId: string },
    failed: string,
    slot: "A" | "B",
    version: string,
    reason?: RegExp,
  ) {
    const now = running();
    const marker = bootedFrom(await reach(now, /KEEL-MARK booted .*\n/, `back on slot ${slot}`));
    expect(marker).toEqual({ slot, version });
    const job = await until("the job to end", () => cloud.terminalJob(ids.jobId, thing), BOOT_TIMEOUT_MS);
    expect(job.status).toBe("FAILED");
    expect(job.details).toMatchObject({ rolledBack: "true", toVersion: failed, slot });
    if (reason) expect(job.details.reason).toMatch(reason);
    expect(await cloud.rolloutEnd(ids.rolloutId)).toBe("ABORTED");
    const { env, status } = await guestView(now);
    expect(env).toMatchObject({ [`${slot}_OK`]: "1", [`${slot}_TRY`]: "0" });
    expect(status.booted).toBe(slot);
    // Once the rollout is ABORTED the fleet's convergence job (its target: the release the node went back
    // to) resumes and may already have been answered at once ("already running"): the last result is then
    // that no-op, not the rollback, which the job above and the slots below show.
    const last = status.lastResult;
    if (last?.state === "Committed") expect(last.version).toBe(version);
    else expect(last).toMatchObject({ state: "RolledBack", version: failed });
    const other = slot === "A" ? "B" : "A";
    expect(status.slots[other].good).toBe(false);
    await expectPersistence(now);
  }

  /** Scenario 5: the persistence partition kept the probe, /tmp is empty. */
  async function expectPersistence(now: Boot) {
    const probe = await now.shell(
      "cat /var/lib/keel/probe; test -e /tmp/probe && echo tmp-kept || echo tmp-fresh",
      BOOT_TIMEOUT_MS,
    );
    expect(probe).toMatch(/^kept-across-updates$/m);
    expect(probe).toMatch(/^tmp-fresh$/m);
  }

  it(
    "scenario 1 (bios): boots A, takes the job, writes B, reboots into B, commits; job and rollout SUCCEEDED",
    async () => {
      b = await m.powerOn();
      await expectFactoryBoot(b, "bios");
      await b.shell("echo kept-across-updates > /var/lib/keel/probe; sync", BOOT_TIMEOUT_MS);
      const { rolloutId, jobId } = await rolloutAndReboot("2.0.0");
      b = await m.powerOn();
      const booted = await reach(b, /KEEL-MARK booted .*\n/, "boot of slot B");
      expect(bootedFrom(booted)).toEqual({ slot: "B", version: "2.0.0" });
      // After a trial boot the agent commits through its state machine (HealthChecking → Committed).
      await reach(b, /"from":"HealthChecking","event":"healthy","to":"Committed"/, "slot B committed");
      expect(await cloud.rolloutEnd(rolloutId)).toBe("SUCCEEDED");
      const job = await until("the job to end", () => cloud.terminalJob(jobId, thing), BOOT_TIMEOUT_MS);
      expect(job.status).toBe("SUCCEEDED");
      expect(job.details).toMatchObject({ phase: "committed", version: "2.0.0", slot: "B" });
      const { env, status } = await guestView(b);
      expect(env).toMatchObject({ B_OK: "1", B_TRY: "0", ORDER: "B A" });
      expect(status.booted).toBe("B");
      expect(status.slots.B.version).toBe("2.0.0");
      await expectPersistence(b);
    },
    4 * BOOT_TIMEOUT_MS,
  );

  it(
    "scenario 2: a release whose kubelet never gets healthy boots, fails its checks, rolls back to B; FAILED rolledBack, rollout ABORTED",
    async () => {
      const ids = await rolloutAndReboot("3.0.0");
      b = await m.powerOn();
      expect(bootedFrom(await reach(b, /KEEL-MARK booted .*\n/, "trial boot of 3.0.0 on A"))).toEqual({
        slot: "A",
        version: "3.0.0",
      });
      await reach(b, /"from":"HealthChecking","event":"unhealthy","to":"RollingBack"/, "3.0.0 unhealthy");
      await reach(b, /"msg":"rebooting"/, "agent rebooting back into B");
      await b.exited;
      b = await m.powerOn();
      await expectRolledBack(ids, "3.0.0", "B", "2.0.0");
    },
    4 * BOOT_TIMEOUT_MS,
  );

  for (const [version, fault, mark] of [
    ["3.1.0", "panics", /KEEL-MARK this release panics at boot/],
    ["3.2.0", "hangs", /KEEL-MARK this release hangs at boot/],
  ] as const) {
    it(
      `scenario 3: a release that ${fault} at boot is reset (${fault === "panics" ? "panic=5" : "i6300esb watchdog"}), GRUB boots B, the agent reports FAILED rolledBack "new slot never came up"`,
      async () => {
        const ids = await rolloutAndReboot(version);
        b = await m.powerOn();
        await reach(b, mark, `${version} ${fault} on A`);
        // Nobody touches QEMU: the kernel's panic=5 or the unfed watchdog resets the machine (-no-reboot: QEMU exits).
        await b.exited;
        console.log(
          `${version}: the machine reset itself ${((Date.now() - b.startedAt) / 1000).toFixed(1)} s after power-on`,
        );
        b = await m.powerOn();
        await expectRolledBack(ids, version, "B", "2.0.0", /^new slot never came up$/);
      },
      4 * BOOT_TIMEOUT_MS,
    );
  }

  // At least 5 cuts per run at seeded random points (docs/guarantees.md#power-cuts-on-a-real-node);
  // `npm run torture:vm -- --cuts N` runs as many as asked.
  it(
    "scenario 4: power cuts (SIGKILL, unflushed writes lost) during download/write, activation and the trial boot; the node always boots a good slot and the job ends with the truth",
    async () => {
      b?.kill();
      await b?.exited;
      const seed = Number(process.env.KEEL_VM_CUT_SEED ?? Math.floor(Math.random() * 2 ** 31));
      console.log(`power cuts: seed ${seed} (KEEL_VM_CUT_SEED=${seed} replays it)`);
      const t = await powerCuts({
        cloud,
        version: "2.0.0",
        cuts: 5,
        seed,
        perRound: { download: 3, activation: 1, trial: 1 },
      });
      console.log(`power cuts: ${JSON.stringify({ ...t, failures: undefined })}`);
      expect(t.failures).toEqual([]);
      expect(t.cuts).toBeGreaterThanOrEqual(5);
      expect(t.bricked + t.wrong).toBe(0);
    },
    40 * BOOT_TIMEOUT_MS,
  );
});
