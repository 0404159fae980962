/**
 * BootControl for U-Boot with RAUC's variable scheme (docs/bootloaders.md#u-boot-slot-selection,
 * docs/bootloaders.md#what-the-agent-writes):
 * `BOOT_ORDER` (space-separated slot names), `BOOT_<X>_LEFT` (boot attempts left, hex as `setexpr`
 * writes it; only the trial spends them) and `BOOT_TRIAL`. The selection below is the one in the shipped
 * device/boot/boot.cmd; readState and the simulated firmware share it. Every operation is one environment write (the non-current copy).
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
/** The slot on trial, named by the agent when it arms the trial and unset when it marks that slot (boot.cmd). */
export const UBOOT_TRIAL_VAR = "BOOT_TRIAL";

/** setexpr reads its operands as hex (U-Boot's hextoul): the leading hex digits, 0 without any. */
const hex = (v: string | undefined): number => {
  const digits = /^(?:0x)?([0-9a-f]*)/i.exec(v ?? "")?.[1] ?? "";
  return digits === "" ? 0 : Number.parseInt(digits, 16);
};

/**
 * `test X -gt 0` reads X as simple_strtol(X, NULL, 0) does: an optional sign, then 0x for hex, a leading 0
 * for octal, decimal otherwise, up to the first digit that does not fit. So a hand-typed "f" is 0 there
 * although setexpr would read it as 15 (checked against real U-Boot in test/device/boot/uboot-real.test.ts).
 */
const testNumber = (v: string | undefined): number => {
  const m = /^([+-]?)(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)?/i.exec(v ?? "");
  const body = m?.[2] ?? "";
  const n = body.toLowerCase().startsWith("0x")
    ? Number.parseInt(body.slice(2) || "0", 16)
    : body.startsWith("0")
      ? Number.parseInt(body, 8)
      : Number.parseInt(body || "0", 10);
  return m?.[1] === "-" ? -n : n;
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

/**
 * boot.cmd, step for step: the first slot in BOOT_ORDER with attempts left is booted, and decremented only
 * if it is the slot on trial (BOOT_TRIAL); with none, the counters are refilled (but the failed trial's)
 * and the board resets. Checked against real U-Boot running boot.cmd in test/device/boot/uboot-real.test.ts.
 */
export function ubootSelect(env: Readonly<Record<string, string>>): UbootDecision {
  const v = withDefaults(env);
  for (const name of orderOf(v)) {
    if (isSlot(name) && testNumber(v[leftVar(name)]) > 0) {
      // A committed slot spends nothing: power cuts while it boots never move the board off it.
      if (v[UBOOT_TRIAL_VAR] === name) v[leftVar(name)] = (hex(v[leftVar(name)]) - 1).toString(16);
      return { choice: name, vars: v };
    }
  }
  // The refill skips the slot on trial while another slot is in the order: cuts during the fallback
  // boots of a failed trial must not hand it new attempts.
  const trial = v[UBOOT_TRIAL_VAR];
  const other = orderOf(v).some((s) => isSlot(s) && s !== trial);
  for (const s of SLOTS) if (s !== trial || !other) v[leftVar(s)] = String(UBOOT_ATTEMPTS);
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
  const named = v[UBOOT_TRIAL_VAR] ?? "";
  // The slot the agent armed for its one trial and has not marked good or bad since.
  const trial = isSlot(named) && order.includes(named) ? named : null;
  const info = (s: Slot) => {
    const left = Math.max(0, testNumber(v[leftVar(s)]));
    const inOrder = order.includes(s);
    // Any slot in BOOT_ORDER may still be booted without the agent writing: once every counter is spent
    // boot.cmd refills them all, so a slot at 0 is only off the list after invalidate/markBad.
    return { bootable: inOrder, good: inOrder && left >= UBOOT_ATTEMPTS && s !== trial, triesLeft: left };
  };
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
    // BOOT_TRIAL goes with the trial it names, as GRUB's TRIAL does: unset when that slot is marked good
    // or bad (or rewritten), and by forceSlot, which ends any trial.
    const trial = env[UBOOT_TRIAL_VAR];
    const endTrial = (...slots: Slot[]): UbootEnvChange[] =>
      trial !== undefined && (slots.length === 0 || slots.some((s) => s === trial))
        ? [[UBOOT_TRIAL_VAR, null]]
        : [];
    switch (op.kind) {
      case "invalidate":
        return [["BOOT_ORDER", otherSlot(op.slot)], [leftVar(op.slot), "0"], ...endTrial(op.slot)];
      case "setTrialBoot":
        return [
          ["BOOT_ORDER", `${op.slot} ${otherSlot(op.slot)}`],
          [leftVar(op.slot), String(UBOOT_TRIAL_ATTEMPTS)],
          [leftVar(otherSlot(op.slot)), String(UBOOT_ATTEMPTS)],
          [UBOOT_TRIAL_VAR, op.slot],
        ];
      case "markGood":
        return [[leftVar(op.slot), String(UBOOT_ATTEMPTS)], ...endTrial(op.slot)];
      case "markBad":
        return [["BOOT_ORDER", without(op.slot).join(" ")], [leftVar(op.slot), "0"], ...endTrial(op.slot)];
      case "markGoodAndBad": {
        const rest = without(op.bad);
        return [
          ["BOOT_ORDER", (rest.includes(op.good) ? rest : [op.good, ...rest]).join(" ")],
          [leftVar(op.good), String(UBOOT_ATTEMPTS)],
          [leftVar(op.bad), "0"],
          ...endTrial(op.good, op.bad),
        ];
      }
      case "forceSlot":
        return [
          ["BOOT_ORDER", `${op.slot} ${otherSlot(op.slot)}`],
          [leftVar(op.slot), String(UBOOT_ATTEMPTS)],
          ...endTrial(),
        ];
    }
  }

  protected async apply(op: BootOp): Promise<void> {
    const snap = await this.env.read();
    await UbootEnvStore.commit(this.env.plan(snap, UbootBootControl.changesFor(op, snap.vars)));
  }
}
