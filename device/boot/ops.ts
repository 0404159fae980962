/** The BootControl operations as data, so every backend maps each one to exactly one write (docs/bootloaders.md#what-the-agent-writes). */
import type { BootControl, Slot } from "./types.ts";

export type BootOp =
  | { kind: "invalidate" | "setTrialBoot" | "markGood" | "markBad" | "forceSlot"; slot: Slot }
  | { kind: "markGoodAndBad"; good: Slot; bad: Slot };

/** Implements the BootControl verbs on top of one `apply(op)`; backends extend this. */
export abstract class OpBootControl implements Omit<BootControl, "type" | "readState"> {
  protected abstract apply(op: BootOp): Promise<void>;

  invalidate(slot: Slot): Promise<void> {
    return this.apply({ kind: "invalidate", slot });
  }
  setTrialBoot(slot: Slot): Promise<void> {
    return this.apply({ kind: "setTrialBoot", slot });
  }
  markGood(slot: Slot): Promise<void> {
    return this.apply({ kind: "markGood", slot });
  }
  markBad(slot: Slot): Promise<void> {
    return this.apply({ kind: "markBad", slot });
  }
  markGoodAndBad(good: Slot, bad: Slot): Promise<void> {
    return this.apply({ kind: "markGoodAndBad", good, bad });
  }
  forceSlot(slot: Slot): Promise<void> {
    return this.apply({ kind: "forceSlot", slot });
  }
}
