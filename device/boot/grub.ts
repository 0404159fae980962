/**
 * BootControl for GRUB with RAUC's variable scheme (docs/bootloaders.md#grub-slot-selection,
 * docs/bootloaders.md#what-the-agent-writes):
 * `ORDER` (space-separated slot names), `<X>_OK`, `<X>_TRY`, `TRIAL`. The selection logic below is the one
 * in the shipped device/boot/grub.cfg; readState and the simulated firmware both use it, so "what the
 * loader will do" is defined once. Every operation is one grubenv update (one temp file + rename).
 */
import {
  applyGrubEnvChanges,
  type GrubEnvBlock,
  type GrubEnvChange,
  GrubEnvFile,
  type GrubEnvWriteMode,
} from "./grubenv.ts";
import { type BootOp, OpBootControl } from "./ops.ts";
import { type BootControl, type BootState, otherSlot, SLOTS, type Slot } from "./types.ts";

/** Variables grub.cfg saves on every boot, in its `save_env` order (the order decides the bytes). */
export const GRUB_SAVED_VARS = ["A_TRY", "A_OK", "B_TRY", "B_OK", "ORDER"] as const;

/** grub.cfg's defaults, set before `load_env`: with a missing or empty grubenv no slot is OK (rescue). */
const GRUB_DEFAULTS: Record<string, string> = {
  ORDER: "A B",
  A_OK: "0",
  B_OK: "0",
  A_TRY: "0",
  B_TRY: "0",
  TRIAL: "",
};

/**
 * The variable naming the slot on trial: set in the write that arms the trial, unset by the write that
 * marks that slot good or bad. grub.cfg's rescue path never gives that slot its try back.
 */
export const GRUB_TRIAL_VAR = "TRIAL";

/** Menu entries of grub.cfg: 0 rescue, 1 slot A, 2 slot B (docs/bootloaders.md#grub-slot-selection). */
const MENU: Record<number, Slot | "rescue"> = { 0: "rescue", 1: "A", 2: "B" };
const INDEX: Record<Slot, number> = { A: 1, B: 2 };

/** GRUB's `test -eq` reads a number from the start of the string; anything else counts as 0. */
const num = (v: string | undefined): number => {
  const n = Number.parseInt(v ?? "", 10);
  return Number.isNaN(n) ? 0 : n;
};

export interface GrubDecision {
  choice: Slot | "rescue";
  /** The variables after the script ran: what `save_env` writes back. */
  vars: Record<string, string>;
}

/**
 * grub.cfg's selection, step for step: defaults, load_env, then for each slot in ORDER mark it tried and
 * take the first OK one that is untried or committed (not the slot named in TRIAL: only a trial has one
 * try); none → clear TRY on every OK slot but the one named in TRIAL and boot rescue.
 */
export function grubSelect(env: Readonly<Record<string, string>>): GrubDecision {
  const v: Record<string, string> = { ...GRUB_DEFAULTS, ...env };
  let chosen = 0;
  for (const name of (v.ORDER ?? "").split(/\s+/).filter(Boolean)) {
    // OK and TRY start from 0 for every name, as in the script: an unknown name is skipped.
    let ok = "0";
    let tried = "0";
    let index = 0;
    if (name === "A" || name === "B") {
      index = INDEX[name];
      ok = v[`${name}_OK`] ?? "";
      tried = v[`${name}_TRY`] ?? "";
      v[`${name}_TRY`] = "1";
    }
    if (num(ok) === 1 && (num(tried) === 0 || v[GRUB_TRIAL_VAR] !== name)) {
      chosen = index;
      break;
    }
  }
  if (chosen === 0) {
    for (const s of SLOTS) {
      if (num(v[`${s}_OK`]) === 1 && num(v[`${s}_TRY`]) === 1 && v[GRUB_TRIAL_VAR] !== s) v[`${s}_TRY`] = "0";
    }
  }
  return { choice: MENU[chosen] ?? "rescue", vars: v };
}

/** What the loader's boot does to the block: `save_env` of the five variables, each set in order. */
export function grubBootChanges(env: Readonly<Record<string, string>>): {
  choice: Slot | "rescue";
  changes: GrubEnvChange[];
} {
  const { choice, vars } = grubSelect(env);
  return { choice, changes: GRUB_SAVED_VARS.map((n) => [n, vars[n] ?? ""] as const) };
}

export function decodeGrubState(env: Readonly<Record<string, string>>): BootState {
  const v = { ...GRUB_DEFAULTS, ...env };
  const order = (v.ORDER ?? "").split(/\s+/).filter((s): s is Slot => s === "A" || s === "B");
  const named = v[GRUB_TRIAL_VAR];
  const trial = (named === "A" || named === "B") && num(v[`${named}_OK`]) === 1 ? named : null;
  const info = (s: Slot) => {
    // Good: OK, confirmed by the agent since its last boot (TRY=0), and not a trial still to be proven.
    // Bootable: OK and in ORDER, on the safe side: a spent trial counts too, although grub.cfg never boots
    // it again while TRIAL names it, so the agent invalidates it before writing there.
    const ok = num(v[`${s}_OK`]) === 1;
    const untried = num(v[`${s}_TRY`]) === 0;
    return {
      bootable: ok && order.includes(s),
      good: ok && untried && s !== trial,
      // Only the trial's try is counted; a committed slot is booted whatever its TRY says.
      triesLeft: !ok ? 0 : s === trial ? (untried ? 1 : 0) : null,
    };
  };
  return { next: grubSelect(env).choice, trial, slots: { A: info("A"), B: info("B") }, raw: { ...env } };
}

export class GrubBootControl extends OpBootControl implements BootControl {
  readonly type = "grub" as const;
  readonly env: GrubEnvFile;

  constructor(envFile: string, envWrite: GrubEnvWriteMode = "auto") {
    super();
    this.env = new GrubEnvFile(envFile, envWrite);
  }

  async readState(): Promise<BootState> {
    return decodeGrubState((await this.env.read()).toRecord());
  }

  /**
   * The write for each operation (docs/bootloaders.md#what-the-agent-writes), given the current variables
   * (only TRIAL depends on them) (static so tests can plan a write and cut it at every byte).
   */
  static changesFor(op: BootOp, env: Readonly<Record<string, string>>): GrubEnvChange[] {
    // TRIAL goes with the trial it names: unset when that slot is marked good or bad (or rewritten),
    // and by forceSlot, which ends any trial. Left alone otherwise, so re-marking the running slot good
    // while the other slot's trial is pending keeps it.
    const trial = env[GRUB_TRIAL_VAR];
    const endTrial = (...slots: Slot[]): GrubEnvChange[] =>
      trial !== undefined && (slots.length === 0 || slots.some((s) => s === trial))
        ? [[GRUB_TRIAL_VAR, null]]
        : [];
    const good = (s: Slot): GrubEnvChange[] => [
      [`${s}_OK`, "1"],
      [`${s}_TRY`, "0"],
    ];
    const bad = (s: Slot): GrubEnvChange[] => [
      [`${s}_OK`, "0"],
      [`${s}_TRY`, "0"],
    ];
    switch (op.kind) {
      case "invalidate":
      case "markBad":
        return [...bad(op.slot), ...endTrial(op.slot)];
      case "markGood":
        return [...good(op.slot), ...endTrial(op.slot)];
      case "setTrialBoot":
        return [
          ...good(op.slot),
          ...good(otherSlot(op.slot)),
          ["ORDER", `${op.slot} ${otherSlot(op.slot)}`],
          [GRUB_TRIAL_VAR, op.slot],
        ];
      case "forceSlot":
        return [...good(op.slot), ["ORDER", `${op.slot} ${otherSlot(op.slot)}`], ...endTrial()];
      case "markGoodAndBad":
        return [...good(op.good), ...bad(op.bad), ...endTrial(op.good, op.bad)];
    }
  }

  protected async apply(op: BootOp): Promise<void> {
    return this.env.update(GrubBootControl.changesFor(op, (await this.env.read()).toRecord()));
  }
}

/** Applies one loader boot to a block (used by the simulated firmware). */
export function grubBootBlock(block: GrubEnvBlock): { choice: Slot | "rescue"; block: GrubEnvBlock } {
  const { choice, changes } = grubBootChanges(block.toRecord());
  return { choice, block: applyGrubEnvChanges(block, changes) };
}
