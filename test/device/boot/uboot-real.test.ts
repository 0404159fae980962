/**
 * The shipped boot.cmd under real U-Boot (test/device/boot/uboot-real.ts), against the TypeScript mirror
 * the agent and the simulated firmware use (ubootSelect): the same choice and the same saved counters for
 * every state below, and the power-cut sequence docs/guarantees.md promises: after a failed trial, cuts on
 * every fallback boot never give the failed slot another attempt.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { UbootBootControl, ubootSelect } from "../../../device/boot/uboot.ts";
import { runUboot, type UbootBoot } from "./uboot-real.ts";

/** Environments the agent writes, the loader leaves behind, and a few an operator could type. */
const STATES: Record<string, string>[] = [
  {},
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "3", BOOT_B_LEFT: "3" },
  { BOOT_ORDER: "B A", BOOT_A_LEFT: "3", BOOT_B_LEFT: "1", BOOT_TRIAL: "B" },
  { BOOT_ORDER: "B A", BOOT_A_LEFT: "3", BOOT_B_LEFT: "0", BOOT_TRIAL: "B" },
  { BOOT_ORDER: "B A", BOOT_A_LEFT: "0", BOOT_B_LEFT: "0", BOOT_TRIAL: "B" },
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "0", BOOT_B_LEFT: "0", BOOT_TRIAL: "A" },
  { BOOT_ORDER: "B A", BOOT_A_LEFT: "0", BOOT_B_LEFT: "0" },
  { BOOT_ORDER: "B", BOOT_A_LEFT: "0", BOOT_B_LEFT: "0", BOOT_TRIAL: "B" },
  { BOOT_ORDER: "A", BOOT_A_LEFT: "2", BOOT_B_LEFT: "0" },
  { BOOT_ORDER: "B A", BOOT_A_LEFT: "1", BOOT_B_LEFT: "0", BOOT_TRIAL: "A" },
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "0", BOOT_B_LEFT: "2" },
  { BOOT_ORDER: "B A", BOOT_B_LEFT: "0" },
  // Hand-typed counters: `test -gt` and `setexpr` do not read numbers the same way.
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "10", BOOT_B_LEFT: "3" },
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "f", BOOT_B_LEFT: "3" },
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "0x2", BOOT_B_LEFT: "3" },
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "-1", BOOT_B_LEFT: "junk" },
];

/** The BOOT_* variables of a saved environment, defaults included (what saveenv stores). */
const bootVars = (v: Record<string, string>) =>
  Object.fromEntries(Object.entries(v).filter(([k]) => k.startsWith("BOOT_")));

describe("boot.cmd under real U-Boot (qemu_arm64)", () => {
  let single: UbootBoot[];
  let cuts: UbootBoot[];
  let trialEnv: Record<string, string>;

  beforeAll(async () => {
    // The environment the agent writes to arm a trial of B from a committed A (UbootBootControl's write).
    trialEnv = { BOOT_ORDER: "A B", BOOT_A_LEFT: "3", BOOT_B_LEFT: "0" };
    for (const [k, v] of UbootBootControl.changesFor({ kind: "setTrialBoot", slot: "B" }, trialEnv)) {
      if (v === null) delete trialEnv[k];
      else trialEnv[k] = v;
    }
    // One U-Boot session: every state once, then the trial followed by eight boots that each die before
    // the agent runs (the kernel of B never comes up, then power cuts on A's boots).
    const boots = await runUboot([
      ...STATES.map((env) => ({ env })),
      { env: trialEnv },
      ...Array(8).fill({}),
    ]);
    single = boots.slice(0, STATES.length);
    cuts = boots.slice(STATES.length);
  }, 600_000);

  it("makes the mirror's choice and saves the mirror's counters for every state", () => {
    for (const [i, env] of STATES.entries()) {
      const mirror = ubootSelect(env);
      expect({ state: env, choice: single[i]?.choice, saved: single[i]?.saved }).toEqual({
        state: env,
        choice: mirror.choice,
        saved: bootVars(mirror.vars),
      });
    }
  });

  it("after a failed trial of B, cuts on every fallback boot never boot B again", () => {
    expect(trialEnv).toMatchObject({ BOOT_ORDER: "B A", BOOT_B_LEFT: "1", BOOT_TRIAL: "B" });
    const choices = cuts.map((b) => b.choice);
    // B's one trial, A's three attempts, the refill (A only), then A again.
    expect(choices).toEqual(["B", "A", "A", "A", "reset", "A", "A", "A", "reset"]);
    expect(cuts[4]?.saved).toMatchObject({ BOOT_A_LEFT: "3", BOOT_B_LEFT: "0", BOOT_TRIAL: "B" });
    // The mirror follows the same chain.
    let env = trialEnv;
    for (const boot of cuts) {
      const next = ubootSelect(env);
      expect(next.choice).toBe(boot.choice);
      env = next.vars;
    }
  });
});
