/**
 * A bootloader that does nothing, for development machines and containers without an A/B disk: every
 * write is accepted and forgotten, and the state always says "A, committed".
 */
import { type BootOp, OpBootControl } from "./ops.ts";
import type { BootControl, BootState } from "./types.ts";

export class NoneBootControl extends OpBootControl implements BootControl {
  readonly type = "none" as const;

  async readState(): Promise<BootState> {
    return {
      next: "A",
      trial: null,
      slots: {
        A: { bootable: true, good: true, triesLeft: null },
        B: { bootable: false, good: false, triesLeft: null },
      },
      raw: {},
    };
  }

  protected async apply(_op: BootOp): Promise<void> {}
}
