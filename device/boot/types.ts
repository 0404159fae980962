/**
 * The bootloader seam (docs/bootloaders.md#the-interface). One file per backend implements BootControl; the agent
 * never touches bootloader bytes directly. A simulated firmware per scheme applies the loader's documented
 * selection logic to the same on-disk state so tests and the fleet simulator can "boot" without rebooting.
 */
export type Slot = "A" | "B";
export const SLOTS: readonly Slot[] = ["A", "B"];
export const otherSlot = (s: Slot): Slot => (s === "A" ? "B" : "A");

export interface SlotInfo {
  /** The loader would consider booting it (OK flag set / tries left / in the boot order). */
  bootable: boolean;
  /** Committed as good. */
  good: boolean;
  /** Boot attempts left before the loader gives up on it; null where the scheme has no counter. */
  triesLeft: number | null;
}

export interface BootState {
  /** What the loader will pick on the next boot, computed without changing anything. */
  next: Slot | "rescue" | null;
  /** The slot currently on trial (set to be tried, not yet committed), if any. */
  trial: Slot | null;
  slots: Record<Slot, SlotInfo>;
  /** The raw variables, for `keel-agent status` and debugging. */
  raw: Record<string, string>;
}

export interface BootControl {
  readonly type: "grub" | "uboot" | "none";
  /** Pure decode of the on-disk state. */
  readState(): Promise<BootState>;
  /** BEFORE writing an image into `slot`: the loader must never pick a half-written slot. */
  invalidate(slot: Slot): Promise<void>;
  /** After the image is verified: boot `slot` next, once; the other slot stays the fallback. */
  setTrialBoot(slot: Slot): Promise<void>;
  /** Commit `slot` (the running one) as good; idempotent. */
  markGood(slot: Slot): Promise<void>;
  markBad(slot: Slot): Promise<void>;
  /** After a fallback: one write that marks `good` good and `bad` bad. */
  markGoodAndBad(good: Slot, bad: Slot): Promise<void>;
  /** Make an already-good slot primary without a trial (operator rollback to the other slot). */
  forceSlot(slot: Slot): Promise<void>;
}

/** A simulated firmware: mutates the store exactly as the loader does, then "runs" the chosen slot. */
export interface SimulatedFirmware {
  boot(): Promise<Slot | "rescue" | "halt">;
}
