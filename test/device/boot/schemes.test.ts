/**
 * Per-scheme behaviour required by docs/bootloaders.md#what-the-tests-hold-the-code-to, with the real BootControl
 * writing real files and the simulated firmware booting from them:
 * (1) trial → X → healthy → X on every later boot;
 * (2) unhealthy X → next boot O with no agent write, then O forever and X never retried;
 * (4) a power cut during the trial boot counts as a failed try;
 * (5) an agent write cut at every byte leaves the firmware seeing the old or the new state, never neither.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempPathFor } from "../../../device/boot/atomic-file.ts";
import { createBootControl, createSimulatedFirmware } from "../../../device/boot/factory.ts";
import { GrubRaucFirmware } from "../../../device/boot/firmware.ts";
import { decodeGrubState, GrubBootControl } from "../../../device/boot/grub.ts";
import type { BootOp } from "../../../device/boot/ops.ts";
import type { BootControl, SimulatedFirmware, Slot } from "../../../device/boot/types.ts";
import { decodeUbootState, UbootBootControl } from "../../../device/boot/uboot.ts";
import { encodeUbootEnv } from "../../../device/boot/ubootenv.ts";
import { agentAfterBoot, bootLoop, tempDir } from "./helpers.ts";

let root: string;
let cleanup: () => Promise<void>;
let seq = 0;
beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir("keel-schemes-"));
});
afterAll(() => cleanup());

/** A planned agent write that the test can cut after any number of bytes. */
interface PlannedWrite {
  length: number;
  /** Leaves the on-disk state as a power cut after `k` bytes of the write would (`before`: the state file). */
  cutAt(k: number, before: Buffer): Promise<void>;
}

interface Rig {
  control: BootControl;
  firmware: SimulatedFirmware;
  /** The file holding the state (restored between cuts). */
  file: string;
  /** The variables the firmware loads from disk right now. */
  view(): Promise<Record<string, string>>;
  /** The next boot's choice for those variables. */
  next(vars: Record<string, string>): Slot | "rescue" | null;
  plan(op: BootOp): Promise<PlannedWrite>;
  /** A cut write leaves the old or the new state (temp+rename, or the redundant copy). */
  tornSafe: boolean;
}

const UBOOT_SIZE = 0x400;

const RIGS: Record<string, () => Promise<Rig>> = {
  "grub (RAUC vars)": async () => {
    const file = join(root, `grubenv-${++seq}`);
    const config = { type: "grub" as const, envFile: file };
    const control = createBootControl(config) as GrubBootControl;
    await control.forceSlot("A"); // provisioning: slot A committed
    return {
      control,
      firmware: createSimulatedFirmware(config),
      file,
      tornSafe: true,
      view: async () => (await control.env.read()).toRecord(),
      next: (vars) => decodeGrubState(vars).next,
      plan: async (op) => {
        const bytes = await control.env.plan(
          GrubBootControl.changesFor(op, (await control.env.read()).toRecord()),
        );
        return {
          length: bytes.length,
          // Cut before the rename: only part of <file>.new exists.
          cutAt: (k) => writeFile(tempPathFor(file), bytes.subarray(0, k)),
        };
      },
    };
  },
  ...Object.fromEntries(
    ([1, 2] as const).map((n) => [
      `uboot (RAUC vars, ${n === 1 ? "single copy" : "redundant"})`,
      async (): Promise<Rig> => {
        const file = join(root, `ubootenv-${++seq}`);
        const provisioned = encodeUbootEnv(
          [
            ["BOOT_ORDER", "A B"],
            ["BOOT_A_LEFT", "3"],
            ["BOOT_B_LEFT", "0"],
            ["bootcmd", "run keel_boot"],
          ],
          { size: UBOOT_SIZE, redundant: n === 2, flags: 1, pad: 0 },
        );
        await writeFile(file, Buffer.concat([provisioned, Buffer.alloc(UBOOT_SIZE * (n - 1), 0xff)]));
        const config = {
          type: "uboot" as const,
          envFiles: Array.from({ length: n }, (_, i) => ({
            path: file,
            offset: i * UBOOT_SIZE,
            size: UBOOT_SIZE,
          })),
        };
        const control = createBootControl(config) as UbootBootControl;
        return {
          control,
          firmware: createSimulatedFirmware(config),
          file,
          tornSafe: n === 2,
          view: async () => (await control.env.read()).vars,
          next: (vars) => decodeUbootState(vars).next,
          plan: async (op) => {
            const snap = await control.env.read();
            const w = control.env.plan(snap, UbootBootControl.changesFor(op, snap.vars));
            return {
              length: w.bytes.length,
              // Cut mid-copy: the first k bytes are new, the rest of that copy still holds the old bytes.
              cutAt: async (k, before) => {
                const disk = Buffer.from(before);
                w.bytes.copy(disk, w.copy.offset, 0, k);
                await writeFile(file, disk);
              },
            };
          },
        };
      },
    ]),
  ),
};

const apply = (c: BootControl, op: BootOp): Promise<void> =>
  op.kind === "markGoodAndBad" ? c.markGoodAndBad(op.good, op.bad) : c[op.kind](op.slot);

for (const [name, makeRig] of Object.entries(RIGS)) {
  describe(name, () => {
    it("(1) trial → B → healthy → B on every later boot", async () => {
      const rig = await makeRig();
      await rig.control.invalidate("B");
      expect((await rig.control.readState()).slots.B.bootable).toBe(false);
      await rig.control.setTrialBoot("B");
      expect((await rig.control.readState()).next).toBe("B");
      const seen = await bootLoop(rig.control, rig.firmware, "B", 8, () => true);
      expect(seen).toEqual(Array(8).fill("B"));
      expect((await rig.control.readState()).slots.B.good).toBe(true);
    });

    it("(2) unhealthy B → next boot A with no agent write, then A forever and B never retried", async () => {
      const rig = await makeRig();
      await rig.control.invalidate("B");
      await rig.control.setTrialBoot("B");
      expect(await rig.firmware.boot()).toBe("B");
      const afterTrialBoot = await readFile(rig.file);
      // The agent's health checks fail: it writes nothing.
      expect(await agentAfterBoot(rig.control, "B", false, "B")).toBe("B");
      expect((await readFile(rig.file)).equals(afterTrialBoot)).toBe(true);
      const seen = await bootLoop(rig.control, rig.firmware, "B", 10, (slot) => slot !== "B");
      expect(seen).toEqual(Array(10).fill("A"));
      const state = await rig.control.readState();
      expect(state.slots.B.bootable).toBe(false);
      expect(state.slots.A.good).toBe(true);
    });

    it("(4) a power cut during the trial boot counts as the failed try", async () => {
      const rig = await makeRig();
      await rig.control.invalidate("B");
      await rig.control.setTrialBoot("B");
      // The loader consumed the try before the kernel started; the power goes before any agent runs.
      expect(await rig.firmware.boot()).toBe("B");
      expect(await rig.firmware.boot()).toBe("A");
      // The agent on A sees the fallback and records it; A from then on.
      await agentAfterBoot(rig.control, "A", true, "B");
      expect(await bootLoop(rig.control, rig.firmware, null, 4, () => true)).toEqual(Array(4).fill("A"));
    });

    if (name.includes("single"))
      it("(5) a cut single-copy write loses the environment: U-Boot boots its default", async () => {
        const rig = await makeRig();
        const before = await readFile(rig.file);
        const planned = await rig.plan({ kind: "invalidate", slot: "B" });
        await planned.cutAt(20, before); // CRC and the first entries new, the rest old
        // CRC fails: the loader runs with its built-in environment (here empty) and boot.cmd's defaults.
        expect(await rig.view()).toEqual({});
        expect(rig.next({})).toBe("A");
      });

    if (name.includes("grub") || name.includes("redundant"))
      it("(5) every agent write cut at every byte leaves the old or the new state", async () => {
        const rig = await makeRig();
        // Install B and commit it, then a second install of A that falls back, covering every operation.
        const steps: Array<BootOp | "boot"> = [
          { kind: "invalidate", slot: "B" },
          { kind: "setTrialBoot", slot: "B" },
          "boot",
          { kind: "markGood", slot: "B" },
          { kind: "invalidate", slot: "A" },
          { kind: "setTrialBoot", slot: "A" },
          "boot",
          "boot",
          { kind: "markGoodAndBad", good: "B", bad: "A" },
          { kind: "forceSlot", slot: "B" },
          { kind: "markBad", slot: "A" },
        ];
        let cuts = 0;
        for (const step of steps) {
          if (step === "boot") {
            await rig.firmware.boot();
            continue;
          }
          const before = await readFile(rig.file);
          const oldView = await rig.view();
          await apply(rig.control, step);
          const after = await readFile(rig.file);
          const newView = await rig.view();
          const planned = await (async () => {
            await writeFile(rig.file, before);
            return rig.plan(step);
          })();
          // Every state the agent writes is bootable …
          expect(["A", "B"]).toContain(rig.next(newView));
          // … and a cut write leaves exactly the old or the new one.
          for (let k = 0; k < planned.length; k++) {
            await planned.cutAt(k, before);
            const seen = await rig.view();
            expect([oldView, newView]).toContainEqual(seen);
            cuts++;
          }
          await rm(tempPathFor(rig.file), { force: true });
          await writeFile(rig.file, after);
        }
        expect(cuts).toBeGreaterThan(8 * 1000);
      });
  });
}

describe("why the GRUB writer renames instead of writing in place", () => {
  it("an in-place write cut early makes GRUB ignore the block and boot rescue; the rename never does", async () => {
    const file = join(root, "inplace-grubenv");
    const control = new GrubBootControl(file);
    await control.forceSlot("A");
    const bytes = await control.env.plan(GrubBootControl.changesFor({ kind: "markGood", slot: "A" }, {}));
    const results = new Set<string>();
    for (let k = 0; k < bytes.length; k += 7) {
      // grub-editenv `set` style: O_TRUNC the same inode and write; the power goes after k bytes.
      await writeFile(file, bytes.subarray(0, k));
      results.add(await new GrubRaucFirmware(file).boot());
    }
    expect(results).toContain("rescue");
  });
});
