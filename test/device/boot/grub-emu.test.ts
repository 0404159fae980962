/**
 * The real GRUB (grub-emu 2.06) running our shipped grub.cfg is the oracle for the simulated firmware
 * (docs/bootloaders.md#what-the-tests-hold-the-code-to): before every boot the same grubenv bytes go to both; they must choose the same
 * menu entry and leave byte-identical grubenv files. Between boots our GrubBootControl plays the agent.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrubRaucFirmware } from "../../../device/boot/firmware.ts";
import { GrubBootControl } from "../../../device/boot/grub.ts";
import { GrubEnvBlock } from "../../../device/boot/grubenv.ts";
import { grubEmuBoot, tempDir } from "./helpers.ts";

const MENU = ["rescue", "A", "B"] as const;

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("keel-grub-emu-"));
});
afterAll(() => cleanup());

/** One boot by both loaders from the current bytes of `envFile`; asserts they agree and returns the choice. */
async function bootBoth(envFile: string, work: string): Promise<string> {
  const before = await readFile(envFile);
  const real = await grubEmuBoot(work, before);
  const simulated = await new GrubRaucFirmware(envFile).boot();
  expect(simulated).toBe(MENU[real.selected]);
  expect((await readFile(envFile)).toString("latin1")).toBe(real.grubenv.toString("latin1"));
  return simulated;
}

async function committedA(
  name: string,
): Promise<{ envFile: string; control: GrubBootControl; work: string }> {
  const envFile = join(dir, `${name}.grubenv`);
  await writeFile(envFile, GrubEnvBlock.create().bytes());
  const control = new GrubBootControl(envFile);
  await control.forceSlot("A");
  return { envFile, control, work: join(dir, `${name}.work`) };
}

describe("simulated GRUB firmware vs grub-emu running device/boot/grub.cfg", () => {
  it("trial → B, then committed B stays B", async () => {
    const { envFile, control, work } = await committedA("commit");
    expect(await bootBoth(envFile, work)).toBe("A");
    await control.markGood("A");
    await control.invalidate("B");
    await control.setTrialBoot("B");
    expect(await bootBoth(envFile, work)).toBe("B");
    await control.markGood("B");
    for (let i = 0; i < 2; i++) {
      expect(await bootBoth(envFile, work)).toBe("B");
      await control.markGood("B");
    }
  });

  it("no mark-good after the trial: the next boot falls back to A, and A stays once marked", async () => {
    const { envFile, control, work } = await committedA("fallback");
    await control.invalidate("B");
    await control.setTrialBoot("B");
    expect(await bootBoth(envFile, work)).toBe("B");
    // B unhealthy or power cut: nobody writes.
    expect(await bootBoth(envFile, work)).toBe("A");
    await control.markGoodAndBad("A", "B");
    expect(await bootBoth(envFile, work)).toBe("A");
    await control.markGood("A");
    expect(await bootBoth(envFile, work)).toBe("A");
  });

  it("a failed trial, then cuts on every fallback boot: A each time, never B again, never rescue", async () => {
    const { envFile, control, work } = await committedA("trial-cut");
    const trialVar = async () => (await control.env.read()).toRecord().TRIAL;
    await control.invalidate("B");
    await control.setTrialBoot("B");
    expect(await trialVar()).toBe("B");
    // Re-marking the running slot good while B's trial is pending keeps the trial named.
    await control.markGood("A");
    expect(await trialVar()).toBe("B");
    // B hangs on its trial; then every boot of A is cut before the agent writes anything.
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await bootBoth(envFile, work));
    expect(seen).toEqual(["B", "A", "A", "A", "A", "A"]);
    // The agent finally runs on A: fallback seen, one write marks A good and B bad and ends the trial.
    await control.markGoodAndBad("A", "B");
    expect(await trialVar()).toBeUndefined();
    expect(await bootBoth(envFile, work)).toBe("A");
    await control.markGood("A");
    expect(await bootBoth(envFile, work)).toBe("A");
  });

  it("a committed trial ends TRIAL: cuts on every later boot of B keep booting B (no fallback to the older A)", async () => {
    const { envFile, control, work } = await committedA("trial-ok");
    await control.invalidate("B");
    await control.setTrialBoot("B");
    expect(await bootBoth(envFile, work)).toBe("B");
    await control.markGood("B");
    expect((await control.env.read()).toRecord().TRIAL).toBeUndefined();
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(await bootBoth(envFile, work));
    expect(seen).toEqual(["B", "B", "B", "B"]);
  });

  it("cuts while a slot is being written: the committed slot boots every time, never rescue", async () => {
    const { envFile, control, work } = await committedA("writing");
    await control.invalidate("B");
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push(await bootBoth(envFile, work));
    expect(seen).toEqual(["A", "A", "A", "A", "A"]);
  });

  /** An environment block holding exactly `vars`. */
  async function envWith(name: string, vars: Record<string, string>): Promise<string> {
    const envFile = join(dir, `${name}.grubenv`);
    const block = GrubEnvBlock.create();
    for (const [n, v] of Object.entries(vars)) block.set(n, v);
    await writeFile(envFile, block.bytes());
    return envFile;
  }

  it.each([
    // docs/bootloaders.md#grub-slot-selection: both OK, nobody marks, no trial: B is committed and stays.
    [
      "both committed, nobody marks",
      { ORDER: "B A", A_OK: "1", B_OK: "1", A_TRY: "0", B_TRY: "0" },
      ["B", "B", "B"],
    ],
    // The same with B on trial: its one try, then A for good.
    [
      "B on trial, nobody marks",
      { ORDER: "B A", A_OK: "1", B_OK: "1", A_TRY: "0", B_TRY: "0", TRIAL: "B" },
      ["B", "A", "A"],
    ],
    // A name that is no slot must not inherit the spent trial's flags and boot it a second time.
    [
      "a stray name after a spent trial",
      { ORDER: "B X A", A_OK: "1", B_OK: "1", A_TRY: "1", B_TRY: "1", TRIAL: "B" },
      ["A", "A"],
    ],
    // Nothing OK but a spent trial: rescue, and the trial never gets its try back.
    [
      "only a spent trial",
      { ORDER: "B A", A_OK: "0", B_OK: "1", B_TRY: "1", TRIAL: "B" },
      ["rescue", "rescue"],
    ],
  ] as const)("traces with grub-emu: %s", async (name, vars, expected) => {
    const envFile = await envWith(`trace-${name.replace(/\W+/g, "-")}`, vars);
    const seen: string[] = [];
    for (let i = 0; i < expected.length; i++)
      seen.push(await bootBoth(envFile, join(dir, `trace-${name.replace(/\W+/g, "-")}.work`)));
    expect(seen).toEqual(expected);
  });

  it("a fresh, empty environment boots rescue in both (provision it with forceSlot A)", async () => {
    const envFile = join(dir, "empty.grubenv");
    await writeFile(envFile, GrubEnvBlock.create().bytes());
    expect(await bootBoth(envFile, join(dir, "empty.work"))).toBe("rescue");
  });

  it.each([
    ["zeros", Buffer.alloc(1024)],
    ["not an environment block", Buffer.from("hello world")],
    ["an empty file", Buffer.alloc(0)],
  ])("an unreadable environment (%s) boots rescue in both and is left as it was", async (name, bytes) => {
    // grub.cfg's defaults leave no slot OK, so load_env failing means rescue, never slot A.
    const envFile = join(dir, `bad-${name.replace(/\W+/g, "-")}.grubenv`);
    await writeFile(envFile, bytes);
    expect(await bootBoth(envFile, join(dir, `bad-${name.replace(/\W+/g, "-")}.work`))).toBe("rescue");
    expect((await readFile(envFile)).equals(bytes)).toBe(true);
  });
});
