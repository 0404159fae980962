/**
 * BootControl for U-Boot with RAUC's variable scheme (docs/bootloaders.md#u-boot-slot-selection,
 * docs/bootloaders.md#what-the-agent-writes):
 * `BOOT_ORDER` (space-separated slot names) and `BOOT_<X>_LEFT` (boot attempts left, hex as `setexpr`
 * writes it). The selection below is the one in the shipped device/boot/boot.cmd; readState and the
 * simulated firmware share it. Every operation is one environment write (the non-current copy).
 */
import { type BootOp, OpBootControl } from "./ops.ts";
import { type BootControl, type BootState, otherSlot, SLOTS, type Slot } from "./types.ts";
import { type UbootEnvChange, type UbootEnvCopy, UbootEnvStore } from "./ubootenv.ts";

/** Attempts a committed slot gets (boot.cmd's default and the mark-good value, RAUC's boot-attempts). */
export const UBOOT_ATTEMPTS = 3;
/** Attempts a slot on trial gets: it boots once, then the loader falls back. */
export const UBOOT_TRIAL_ATTEMPTS = 1;

const isSlot = (s: string): s is Slot => s === "A" || s === "B";
const leftVar = (s: Slot): string => `BOOT_${s}_LEFT`;

/** setexpr parses hex; anything unparsable reads as 0 (not bootable). */
const hex = (v: string | undefined): number => {
  const n = Number.parseInt(v ?? "", 16);
  return Number.isNaN(n) || n < 0 ? 0 : n;
};

/** boot.cmd's `test -n … || setenv …` defaults: only unset (empty) variables get them. */
function withDefaults(env: Readonly<Record<string, string>>): Record<string, string> {
  const v = { ...env };
  if (!v.BOOT_ORDER) v.BOOT_ORDER = "A B";
  for (const s of SLOTS) if (!v[leftVar(s)]) v[leftVar(s)] = String(UBOOT_ATTEMPTS);
  return v;
}

const orderOf = (v: Readonly<Record<string, string>>): string[] =>
  (v.BOOT_ORDER ?? "").split(/\s+/).filter(Boolean);

export interface UbootDecision {
  /** The slot booted, or "reset" when no slot had attempts left (all counters refilled, board resets). */
  choice: Slot | "reset";
  /** The environment `saveenv` writes (all variables, defaults included). */
  vars: Record<string, string>;
}

/** boot.cmd, step for step: the first slot in BOOT_ORDER with attempts left is decremented and booted. */
export function ubootSelect(env: Readonly<Record<string, string>>): UbootDecision {
  const v = withDefaults(env);
  for (const name of orderOf(v)) {
    if (isSlot(name) && hex(v[leftVar(name)]) > 0) {
      v[leftVar(name)] = (hex(v[leftVar(name)]) - 1).toString(16);
      return { choice: name, vars: v };
    }
  }
  for (const s of SLOTS) v[leftVar(s)] = String(UBOOT_ATTEMPTS);
  return { choice: "reset", vars: v };
}

/** What the next boot picks, following resets (a reset refills the counters, so one more pass decides). */
export function ubootNext(env: Readonly<Record<string, string>>): Slot | null {
  const first = ubootSelect(env);
  if (first.choice !== "reset") return first.choice;
  const second = ubootSelect(first.vars);
  return second.choice === "reset" ? null : second.choice;
}

export function decodeUbootState(env: Readonly<Record<string, string>>): BootState {
  const v = withDefaults(env);
  const order = orderOf(v);
  const info = (s: Slot) => {
    const left = hex(v[leftVar(s)]);
    const inOrder = order.includes(s);
    // Any slot in BOOT_ORDER may still be booted without the agent writing: once every counter is spent
    // boot.cmd refills them all, so a slot at 0 is only off the list after invalidate/markBad.
    return { bootable: inOrder, good: inOrder && left >= UBOOT_ATTEMPTS, triesLeft: left };
  };
  // The first slot in the order whose attempts are being counted down and nobody has refilled yet.
  const trial = order.filter(isSlot).find((s) => hex(v[leftVar(s)]) < UBOOT_ATTEMPTS) ?? null;
  return { next: ubootNext(env), trial, slots: { A: info("A"), B: info("B") }, raw: { ...env } };
}

export class UbootBootControl extends OpBootControl implements BootControl {
  readonly type = "uboot" as const;
  readonly env: UbootEnvStore;

  constructor(copies: readonly UbootEnvCopy[]) {
    super();
    this.env = new UbootEnvStore(copies);
  }

  async readState(): Promise<BootState> {
    return decodeUbootState((await this.env.read()).vars);
  }

  /** The write for each operation (docs/bootloaders.md#what-the-agent-writes), given the current variables (markBad edits BOOT_ORDER). */
  static changesFor(op: BootOp, env: Readonly<Record<string, string>>): UbootEnvChange[] {
    const order = orderOf(withDefaults(env));
    const without = (s: Slot) => order.filter((x) => x !== s);
    switch (op.kind) {
      case "invalidate":
        return [
          ["BOOT_ORDER", otherSlot(op.slot)],
          [leftVar(op.slot), "0"],
        ];
      case "setTrialBoot":
        return [
          ["BOOT_ORDER", `${op.slot} ${otherSlot(op.slot)}`],
          [leftVar(op.slot), String(UBOOT_TRIAL_ATTEMPTS)],
          [leftVar(otherSlot(op.slot)), String(UBOOT_ATTEMPTS)],
        ];
      case "markGood":
        return [[leftVar(op.slot), String(UBOOT_ATTEMPTS)]];
      case "markBad":
        return [
          ["BOOT_ORDER", without(op.slot).join(" ")],
          [leftVar(op.slot), "0"],
        ];
      case "markGoodAndBad": {
        const rest = without(op.bad);
        return [
          ["BOOT_ORDER", (rest.includes(op.good) ? rest : [op.good, ...rest]).join(" ")],
          [leftVar(op.good), String(UBOOT_ATTEMPTS)],
          [leftVar(op.bad), "0"],
        ];
      }
      case "forceSlot":
        return [
          ["BOOT_ORDER", `${op.slot} ${otherSlot(op.slot)}`],
          [leftVar(op.slot), String(UBOOT_ATTEMPTS)],
        ];
    }
  }

  protected async apply(op: BootOp): Promise<void> {
    const snap = await this.env.read();
    await UbootEnvStore.commit(this.env.plan(snap, UbootBootControl.changesFor(op, snap.vars)));
  }
}
