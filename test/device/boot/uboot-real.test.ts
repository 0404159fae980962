/**
 * The shipped boot.cmd under real U-Boot (test/device/boot/uboot-real.ts), against the TypeScript mirror
 * the agent and the simulated firmware use (ubootSelect): the same choice and the same saved counters for
 * every state below, and the power-cut sequences docs/guarantees.md promises: after a failed trial, cuts on
 * every fallback boot never give the failed slot another attempt; after a commit, cuts on every boot of the
 * new slot never move the board back to the older one.
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
  // Committed slots: booted without spending an attempt, whatever their counter says.
  { BOOT_ORDER: "B A", BOOT_A_LEFT: "3", BOOT_B_LEFT: "3" },
  { BOOT_ORDER: "A B", BOOT_A_LEFT: "1", BOOT_B_LEFT: "3", BOOT_TRIAL: "B" },
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
  let committedCuts: UbootBoot[];
  let trialEnv: Record<string, string>;
  let committedEnv: Record<string, string>;

  /** `env` after the agent's write for `op` (UbootBootControl's write). */
  const written = (env: Record<string, string>, op: Parameters<typeof UbootBootControl.changesFor>[0]) => {
    const out = { ...env };
    for (const [k, v] of UbootBootControl.changesFor(op, out)) {
      if (v === null) delete out[k];
      else out[k] = v;
    }
    return out;
  };

  beforeAll(async () => {
    // The environment the agent writes to arm a trial of B from a committed A, and after it commits B.
    trialEnv = written(
      { BOOT_ORDER: "A B", BOOT_A_LEFT: "3", BOOT_B_LEFT: "0" },
      { kind: "setTrialBoot", slot: "B" },
    );
    committedEnv = written({ ...trialEnv, BOOT_B_LEFT: "0" }, { kind: "markGood", slot: "B" });
    // One U-Boot session: every state once; then the trial followed by eight boots that each die before
    // the agent runs (the kernel of B never comes up, then power cuts on A's boots); then the committed B
    // followed by five boots cut before the agent runs.
    const boots = await runUboot([
      ...STATES.map((env) => ({ env })),
      { env: trialEnv },
      ...Array(8).fill({}),
      { env: committedEnv },
      ...Array(5).fill({}),
    ]);
    single = boots.slice(0, STATES.length);
    cuts = boots.slice(STATES.length, STATES.length + 9);
    committedCuts = boots.slice(STATES.length + 9);
  }, 600_000);

  /** The mirror follows the same chain of boots from `env`. */
  const mirrorFollows = (env: Record<string, string>, boots: UbootBoot[]) => {
    let vars = env;
    for (const boot of boots) {
      const next = ubootSelect(vars);
      expect(next.choice).toBe(boot.choice);
      vars = next.vars;
    }
  };

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
    // B's one trial, then committed A on every boot, spending nothing.
    expect(choices).toEqual(["B", "A", "A", "A", "A", "A", "A", "A", "A"]);
    expect(cuts[8]?.saved).toMatchObject({ BOOT_A_LEFT: "3", BOOT_B_LEFT: "0", BOOT_TRIAL: "B" });
    mirrorFollows(trialEnv, cuts);
  });

  it("after B is committed, cuts on every boot of B keep booting B, never the older A", () => {
    expect(committedEnv).toMatchObject({ BOOT_ORDER: "B A", BOOT_A_LEFT: "3", BOOT_B_LEFT: "3" });
    expect(committedEnv.BOOT_TRIAL).toBeUndefined();
    expect(committedCuts.map((b) => b.choice)).toEqual(["B", "B", "B", "B", "B", "B"]);
    expect(committedCuts[5]?.saved).toMatchObject({ BOOT_B_LEFT: "3" });
    mirrorFollows(committedEnv, committedCuts);
  });
});
