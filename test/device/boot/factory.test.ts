/**
 * Bootloader config parsing, the none backend, readState decoding, and the U-Boot firmware's edge paths
 * (reset when every counter is spent, halt when nothing can ever boot, default env when both copies are bad).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SchemaError } from "../../../core/errors.ts";
import {
  BootloaderConfigSchema,
  createBootControl,
  createSimulatedFirmware,
  parseBootloaderConfig,
} from "../../../device/boot/factory.ts";
import { UbootRaucFirmware } from "../../../device/boot/firmware.ts";
import { decodeGrubState } from "../../../device/boot/grub.ts";
import { decodeUbootState } from "../../../device/boot/uboot.ts";
import { decodeUbootEnv, encodeUbootEnv, type UbootEntries } from "../../../device/boot/ubootenv.ts";
import { tempDir } from "./helpers.ts";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("keel-bootcfg-"));
});
afterAll(() => cleanup());

describe("bootloader config", () => {
  it("accepts each backend", () => {
    expect(parseBootloaderConfig({ type: "grub", envFile: "/boot/efi/EFI/keel/grubenv" }).type).toBe("grub");
    expect(parseBootloaderConfig({ type: "none" }).type).toBe("none");
    expect(parseBootloaderConfig({ type: "grub", envFile: "/g", envWrite: "in-place" })).toMatchObject({
      envWrite: "in-place",
    });
    const u = parseBootloaderConfig({
      type: "uboot",
      envFiles: [
        { path: "/dev/mmcblk0", offset: 0x3f8000, size: 0x4000 },
        { path: "/dev/mmcblk0", offset: 0x3fc000, size: 0x4000 },
      ],
    });
    expect(u.type === "uboot" && u.envFiles.length).toBe(2);
  });

  it.each([
    [{ type: "lilo" }, "type"],
    [{ type: "grub" }, "envFile"],
    [{ type: "grub", envFile: "/x", extra: 1 }, "extra"],
    [{ type: "grub", envFile: "/x", envWrite: "atomic" }, "envWrite"],
    [{ type: "uboot", envFiles: [] }, "envFiles"],
    [
      {
        type: "uboot",
        envFiles: [
          { path: "/a", size: 0x4000 },
          { path: "/b", size: 0x2000 },
        ],
      },
      "same size",
    ],
    [{ type: "uboot", envFiles: [{ path: "/a", offset: -1, size: 0x4000 }] }, "envFiles[0].offset"],
    [
      {
        type: "uboot",
        envFiles: [
          { path: "/a", size: 0x4000 },
          { path: "/a", offset: 0x2000, size: 0x4000 },
        ],
      },
      "overlap",
    ],
  ])("rejects %j with a specific error", (value, mentions) => {
    expect(() => parseBootloaderConfig(value)).toThrow(SchemaError);
    expect(() => parseBootloaderConfig(value)).toThrow(mentions);
  });

  it("exports the schema for the agent config to embed", () => {
    expect(BootloaderConfigSchema.safeParse({ type: "none" }).success).toBe(true);
  });
});

describe("none backend", () => {
  it("accepts every operation and always boots A", async () => {
    const control = createBootControl({ type: "none" });
    await control.invalidate("B");
    await control.setTrialBoot("B");
    await control.markGoodAndBad("A", "B");
    expect((await control.readState()).next).toBe("A");
    expect(await createSimulatedFirmware({ type: "none" }).boot()).toBe("A");
  });
});

describe("readState decoding", () => {
  it("grub: TRIAL names the trial; a spent trial falls back, a committed slot is booted tried or not", () => {
    const s = decodeGrubState({ ORDER: "B A", A_OK: "1", A_TRY: "0", B_OK: "1", B_TRY: "1", TRIAL: "B" });
    expect(s).toMatchObject({ next: "A", trial: "B", slots: { A: { good: true }, B: { good: false } } });
    // Armed, not yet booted: it boots next, but it is not good until the agent commits it.
    const armed = decodeGrubState({ ORDER: "B A", A_OK: "1", A_TRY: "0", B_OK: "1", B_TRY: "0", TRIAL: "B" });
    expect(armed).toMatchObject({ next: "B", trial: "B", slots: { B: { good: false, triesLeft: 1 } } });
    // No TRIAL: B was committed; a boot that was cut before the agent confirmed it does not leave it.
    const cut = decodeGrubState({ ORDER: "B A", A_OK: "1", A_TRY: "0", B_OK: "1", B_TRY: "1" });
    expect(cut).toMatchObject({ next: "B", trial: null, slots: { B: { good: false, triesLeft: null } } });
    expect(decodeGrubState({}).next).toBe("rescue");
  });

  it("bootable means the loader may still boot the slot without an agent write", () => {
    // GRUB: a spent trial gets no try back, but a committed OK slot in ORDER boots whatever its TRY says;
    // only OK=0 or absence from ORDER is safe.
    const grub = decodeGrubState({ ORDER: "A B", A_OK: "1", A_TRY: "0", B_OK: "1", B_TRY: "1", TRIAL: "B" });
    expect(grub.slots.B).toEqual({ bootable: true, good: false, triesLeft: 0 });
    expect(decodeGrubState({ ORDER: "A B", A_OK: "1", B_OK: "0" }).slots.B.bootable).toBe(false);
    // U-Boot: a spent counter is refilled once all are spent; only leaving BOOT_ORDER is safe.
    const uboot = decodeUbootState({ BOOT_ORDER: "A B", BOOT_A_LEFT: "2", BOOT_B_LEFT: "0" });
    expect(uboot.slots.B).toEqual({ bootable: true, good: false, triesLeft: 0 });
    expect(decodeUbootState({ BOOT_ORDER: "A", BOOT_B_LEFT: "0" }).slots.B.bootable).toBe(false);
  });

  it("uboot: counters, trial and next, defaults for unset variables", () => {
    const s = decodeUbootState({ BOOT_ORDER: "B A", BOOT_A_LEFT: "3", BOOT_B_LEFT: "1", BOOT_TRIAL: "B" });
    expect(s).toMatchObject({
      next: "B",
      trial: "B",
      slots: { A: { good: true, triesLeft: 3 }, B: { triesLeft: 1 } },
    });
    expect(decodeUbootState({}).next).toBe("A");
    expect(decodeUbootState({ BOOT_ORDER: "A", BOOT_A_LEFT: "0", BOOT_B_LEFT: "3" }).next).toBe("A");
  });
});

describe("U-Boot simulated firmware", () => {
  const SIZE = 0x400;
  async function envOf(entries: UbootEntries, name: string, valid = true) {
    const path = join(dir, name);
    const copy = encodeUbootEnv(entries, { size: SIZE, redundant: true, flags: 7, pad: 0 });
    if (!valid) copy.writeUInt8(copy.readUInt8(50) ^ 0xff, 50);
    await writeFile(path, Buffer.concat([copy, Buffer.alloc(SIZE)]));
    return [
      { path, offset: 0, size: SIZE },
      { path, offset: SIZE, size: SIZE },
    ];
  }

  it("with every counter spent, refills them all, resets and boots the first slot in the order", async () => {
    const copies = await envOf(
      [
        ["BOOT_ORDER", "B A"],
        ["BOOT_A_LEFT", "0"],
        ["BOOT_B_LEFT", "0"],
      ],
      "spent",
    );
    expect(await new UbootRaucFirmware(copies).boot()).toBe("B");
    const second = decodeUbootEnv((await readFile(copies[0]?.path as string)).subarray(0, SIZE), true);
    // Two saveenvs: reset pass into copy 2 (flag 8), boot pass back into copy 1 (flag 9).
    expect(second.flags).toBe(9);
    // B is not on trial: booted without spending an attempt.
    expect(Object.fromEntries(second.entries)).toMatchObject({ BOOT_A_LEFT: "3", BOOT_B_LEFT: "3" });
  });

  it("halts when no name in BOOT_ORDER is a slot", async () => {
    const copies = await envOf([["BOOT_ORDER", "C"]], "halt");
    expect(await new UbootRaucFirmware(copies).boot()).toBe("halt");
  });

  it("boots from its default environment when no copy is valid, and saves it", async () => {
    const copies = await envOf([["BOOT_ORDER", "B"]], "corrupt", false);
    expect(await new UbootRaucFirmware(copies, { BOOT_ORDER: "B A" }).boot()).toBe("B");
    const saved = decodeUbootEnv((await readFile(copies[0]?.path as string)).subarray(0, SIZE), true);
    expect(saved.valid).toBe(true);
    expect(Object.fromEntries(saved.entries)).toEqual({
      BOOT_ORDER: "B A",
      BOOT_A_LEFT: "3",
      BOOT_B_LEFT: "3",
    });
  });
});
