/**
 * A real KeelOS node under QEMU (TCG): the disk `keel os build` writes boots under BIOS (SeaBIOS) and
 * UEFI (OVMF) through GRUB and the shipped grub.cfg into slot A, systemd arms the i6300esb watchdog, the
 * real keel-agent runs as the shipped unit and commits slot A. Asserted through the serial console and
 * through commands run on the node's own shell (grub-editenv list, keel-agent status, mounts).
 * Every boot is a fresh QEMU process (`-no-reboot`, power-cycle); each boot's time is printed, never asserted.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutSchema, RolloutViewSchema } from "../../functions/rollout-api/contract.ts";
import type { OsBuildResult } from "../../os/build.ts";
import type { Firmware } from "../../os/qemu.ts";
import { type E2E, executionDetails, startE2E, until } from "../e2e/helpers.ts";
import { BOOT_TIMEOUT_MS, buildTestOs, cloudNodeOs, machine, reach, VM_HARDWARE } from "./helpers.ts";

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

function envList(out: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of out.matchAll(/^(A_OK|A_TRY|B_OK|B_TRY|ORDER)=(.*)$/gm))
    vars[m[1] as string] = m[2] as string;
  return vars;
}

describe.sequential("KeelOS boots for real", () => {
  for (const firmware of ["bios", "uefi"] as Firmware[]) {
    it(
      `${firmware}: GRUB boots slot A, the watchdog is armed, the agent commits A, / is read-only, /var/lib/keel and /tmp are mounted`,
      async () => {
        const m = await machine(os.disk, firmware);
        const b = await m.powerOn();
        try {
          const booted = await reach(b, /KEEL-MARK booted .*\n/, `${firmware} boot of slot A`);
          expect(booted).toContain("VERSION=1.0.0");
          expect(booted).toContain("keel.slot=A");
          expect(booted).toContain("root=PARTLABEL=keel-a");
          expect(booted).toContain("watchdog=active");
          await reach(b, /booted slot is healthy; marked good.*"slot":"A"/, `${firmware} agent committed A`);
          await b.waitFor(/root@keelos/, BOOT_TIMEOUT_MS);
          const env = envList(await b.shell("grub-editenv /boot/efi/EFI/keel/grubenv list", BOOT_TIMEOUT_MS));
          expect(env).toMatchObject({ A_OK: "1", A_TRY: "0", ORDER: "A B" });
          const status = await b.shell(
            "keel-agent status --config /etc/keel/agent.json --json | tr -d '\\n'; echo",
            BOOT_TIMEOUT_MS,
          );
          expect(status).toMatch(/"booted":\s*"A"/);
          const mounts = await b.shell(
            "findmnt -rno TARGET,FSTYPE,OPTIONS -M /; findmnt -rno TARGET,FSTYPE -M /var/lib/keel; findmnt -rno TARGET,FSTYPE -M /tmp",
            BOOT_TIMEOUT_MS,
          );
          expect(mounts).toMatch(/^\/ squashfs ro/m);
          expect(mounts).toMatch(/^\/var\/lib\/keel ext4$/m);
          expect(mounts).toMatch(/^\/tmp tmpfs$/m);
        } finally {
          b.kill();
          await b.exited;
        }
      },
      2 * BOOT_TIMEOUT_MS,
    );
  }
});

describe.sequential("scenario 1: a good release through a real rollout, a real reboot, commit", () => {
  let e: E2E;
  let node: OsBuildResult;
  const thing = "vm-node-1";
  const fleet = "vmfleet";
  const version = "2.0.0";

  beforeAll(async () => {
    e = await startE2E("simfleet", 1);
    const tooling = e.env.tooling;
    const creds = await tooling.registerThing(fleet, thing, "1.0.0");
    node = await cloudNodeOs(tmp, {
      thing,
      ...creds,
      caFile: e.env.info.caFile,
      rootFile: e.env.paths.rootFile,
      mqtt: e.env.info.mqtt,
      s3: e.env.info.s3,
    });
    // The release: another build of the same OS at 2.0.0, signed and published like any release.
    const release = await buildTestOs(tmp, { version });
    const manifest = join(tmp, "release-2.0.0.json");
    await tooling.signRelease(release.image, {
      version,
      counter: 10,
      compatible: [VM_HARDWARE],
      key: e.env.paths.releaseKey,
      out: manifest,
    });
    await tooling.publish(release.image, manifest, e.env.paths.rootFile, (l) => console.log(l));
  }, 1_800_000);

  afterAll(async () => {
    await e?.stop();
  });

  it(
    "boots A, takes the job, writes B, reboots into B, commits; job and rollout SUCCEEDED",
    async () => {
      const api = e.env.tooling.api;
      const m = await machine(node.disk, "bios");
      const first = await m.powerOn();
      let rolloutId = "";
      let jobId = "";
      try {
        await reach(first, /booted slot is healthy; marked good.*"slot":"A"/, "slot A committed");
        // Scenario 5's probe: a file on persistence must survive the update, one in /tmp must not.
        await first.waitFor(/root@keelos/, BOOT_TIMEOUT_MS);
        await first.shell(
          "echo kept-across-updates > /var/lib/keel/probe; touch /tmp/probe; sync",
          BOOT_TIMEOUT_MS,
        );
        const created = RolloutSchema.parse(
          await api.post("/rollouts", {
            release: version,
            fleets: [fleet],
            waves: [{ percent: 100, successThresholdPercent: 100 }],
            healthDeadlineSeconds: 600,
          }),
        );
        rolloutId = created.id;
        jobId = created.waves[0]?.jobId ?? "";
        // The agent downloads, writes slot B, activates and reboots: QEMU exits (-no-reboot).
        await reach(first, /"msg":"rebooting"/, "agent rebooting into B");
        await first.exited;
      } finally {
        first.kill();
        await first.exited;
      }
      const second = await m.powerOn();
      try {
        const booted = await reach(second, /KEEL-MARK booted .*\n/, "boot of slot B");
        expect(booted).toContain(`VERSION=${version}`);
        expect(booted).toContain("keel.slot=B");
        // After a trial boot the agent commits through its state machine (HealthChecking → Committed).
        await reach(second, /"from":"HealthChecking","event":"healthy","to":"Committed"/, "slot B committed");
        await until(
          "the rollout to succeed",
          async () => {
            const r = RolloutViewSchema.parse(await api.get(`/rollouts/${rolloutId}`));
            return r.status === "SUCCEEDED" ? r : undefined;
          },
          BOOT_TIMEOUT_MS,
        );
        expect((await executionDetails(e.iot, jobId, thing)).status).toBe("SUCCEEDED");
        await second.waitFor(/root@keelos/, BOOT_TIMEOUT_MS);
        const env = envList(
          await second.shell("grub-editenv /boot/efi/EFI/keel/grubenv list", BOOT_TIMEOUT_MS),
        );
        expect(env).toMatchObject({ B_OK: "1", B_TRY: "0", ORDER: "B A" });
        const probe = await second.shell(
          "cat /var/lib/keel/probe; ls /tmp/probe 2>&1 | grep -c 'No such file'",
          BOOT_TIMEOUT_MS,
        );
        expect(probe).toMatch(/^kept-across-updates$/m);
        expect(probe).toMatch(/^1$/m);
      } finally {
        second.kill();
        await second.exited;
      }
    },
    4 * BOOT_TIMEOUT_MS,
  );
});
