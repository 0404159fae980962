/**
 * Simulated firmware (docs/bootloaders.md#simulated-firmware): applies the loader's selection to
 * the same on-disk state the agent writes, mutating it exactly as the loader does before "running" the
 * chosen slot. Tests and the fleet simulator boot with it instead of rebooting; the grub variant is checked
 * against the real GRUB (grub-emu) running the shipped grub.cfg.
 */
import { readFile, writeFile } from "node:fs/promises";
import { describeError } from "../../core/errors.ts";
import { BootEnvFormatError, BootEnvTooSmallError, BootIoError } from "./errors.ts";
import { grubBootBlock, grubSelect } from "./grub.ts";
import { GrubEnvBlock } from "./grubenv.ts";
import type { SimulatedFirmware, Slot } from "./types.ts";
import { ubootSelect } from "./uboot.ts";
import { type UbootEnvCopy, UbootEnvStore } from "./ubootenv.ts";

export type BootResult = Slot | "rescue" | "halt";

/** GRUB running device/boot/grub.cfg: load_env, pick, save_env in place (GRUB rewrites the sectors). */
export class GrubRaucFirmware implements SimulatedFirmware {
  constructor(readonly envFile: string) {}

  async boot(): Promise<BootResult> {
    let block: GrubEnvBlock;
    try {
      block = GrubEnvBlock.parse(await readFile(this.envFile), this.envFile);
    } catch (err) {
      // load_env fails on a missing or invalid block; the script goes on with its defaults and save_env
      // fails the same way, so nothing is written.
      if (err instanceof BootEnvFormatError || (err as NodeJS.ErrnoException).code === "ENOENT") {
        return grubSelect({}).choice;
      }
      throw new BootIoError(`cannot read ${this.envFile}: ${describeError(err)}`, { cause: err });
    }
    try {
      const { choice, block: saved } = grubBootBlock(block);
      await writeFile(this.envFile, saved.bytes());
      return choice;
    } catch (err) {
      // save_env aborts before writing when the block is broken or full; the boot itself goes on.
      if (err instanceof BootEnvTooSmallError || err instanceof BootEnvFormatError) {
        return grubSelect(block.toRecord()).choice;
      }
      throw err;
    }
  }
}

/** U-Boot running device/boot/boot.cmd with the environment in one or two copies. */
export class UbootRaucFirmware implements SimulatedFirmware {
  readonly env: UbootEnvStore;

  /** `defaultEnv`: U-Boot's built-in environment, loaded when no copy has a valid CRC. */
  constructor(
    copies: readonly UbootEnvCopy[],
    readonly defaultEnv: Readonly<Record<string, string>> = {},
  ) {
    this.env = new UbootEnvStore(copies);
  }

  async boot(): Promise<BootResult> {
    // A reset refills every counter, so a second pass either boots or never will (empty BOOT_ORDER).
    for (let pass = 0; pass < 2; pass++) {
      const snap = await this.env.read();
      const loaded = snap.current === null ? { ...this.defaultEnv } : snap.vars;
      const { choice, vars } = ubootSelect(loaded);
      // saveenv writes the whole in-memory environment into the other copy with flag+1.
      await UbootEnvStore.commit(
        this.env.plan({ ...snap, vars: loaded }, Object.entries(vars), snap.current === null),
      );
      if (choice !== "reset") return choice;
    }
    return "halt";
  }
}

/** For the `none` backend: always runs A. */
export class NoneFirmware implements SimulatedFirmware {
  async boot(): Promise<BootResult> {
    return "A";
  }
}
