/**
 * Bootloader configuration (the `bootloader` field of the agent config) and the two constructors the agent
 * and the simulators use. The schema is exported so the agent's config schema embeds it unchanged.
 */
import { z } from "zod";
import { parseWith } from "../../core/parse.ts";
import { GrubRaucFirmware, NoneFirmware, UbootRaucFirmware } from "./firmware.ts";
import { GrubBootControl } from "./grub.ts";
import { NoneBootControl } from "./none.ts";
import type { BootControl, SimulatedFirmware } from "./types.ts";
import { UbootBootControl } from "./uboot.ts";
import { UbootEnvFilesSchema } from "./ubootenv.ts";

export const BootloaderConfigSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("grub"),
    envFile: z
      .string()
      .min(1)
      .describe("the grubenv file grub.cfg loads (on the ESP), e.g. /boot/efi/EFI/keel/grubenv"),
    envWrite: z
      .enum(["auto", "replace", "in-place"])
      .optional()
      .describe(
        "rewrite the block in place (FAT, like GRUB's save_env) or replace the file; auto: in place on FAT",
      ),
  }),
  z.strictObject({
    type: z.literal("uboot"),
    envFiles: UbootEnvFilesSchema.describe("one copy (single) or two (redundant), like fw_env.config lines"),
  }),
  z.strictObject({ type: z.literal("none") }),
]);
export type BootloaderConfig = z.output<typeof BootloaderConfigSchema>;

export function parseBootloaderConfig(value: unknown): BootloaderConfig {
  return parseWith(BootloaderConfigSchema, value, "bootloader config");
}

export function createBootControl(config: BootloaderConfig): BootControl {
  switch (config.type) {
    case "grub":
      return new GrubBootControl(config.envFile, config.envWrite ?? "auto");
    case "uboot":
      return new UbootBootControl(config.envFiles);
    case "none":
      return new NoneBootControl();
  }
}

export function createSimulatedFirmware(config: BootloaderConfig): SimulatedFirmware {
  switch (config.type) {
    case "grub":
      return new GrubRaucFirmware(config.envFile);
    case "uboot":
      return new UbootRaucFirmware(config.envFiles);
    case "none":
      return new NoneFirmware();
  }
}
