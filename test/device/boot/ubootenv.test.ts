/**
 * U-Boot environment interop (docs/bootloaders.md#environment-format, docs/bootloaders.md#what-the-tests-hold-the-code-to): byte equality with mkenvimage, file-backed
 * single and redundant fw_env.config round trips through fw_printenv / fw_setenv, and the copy-selection
 * table checked against libubootenv's own choice.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NoValidEnvError } from "../../../device/boot/errors.ts";
import { UbootBootControl } from "../../../device/boot/uboot.ts";
import {
  crc32,
  decodeUbootEnv,
  encodeUbootEnv,
  selectCopy,
  type UbootEntries,
  type UbootEnvCopy,
  UbootEnvStore,
} from "../../../device/boot/ubootenv.ts";
import { fwEnvConfig, parsePrintenv, run, runOk, tempDir } from "./helpers.ts";

const SIZE = 0x2000;
let dir: string;
let cleanup: () => Promise<void>;
let seq = 0;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("keel-uboot-"));
});
afterAll(() => cleanup());

const ENTRIES: UbootEntries = [
  ["bootcmd", "run keel_boot; reset"],
  ["BOOT_ORDER", "A B"],
  ["BOOT_A_LEFT", "3"],
  ["expr", "a=b c=d"],
  ["BOOT_B_LEFT", "0"],
];

async function mkenvimage(entries: UbootEntries, args: string[]): Promise<Buffer> {
  const n = ++seq;
  const input = join(dir, `in-${n}.txt`);
  const out = join(dir, `out-${n}.bin`);
  await writeFile(input, entries.map(([k, v]) => `${k}=${v}\n`).join(""));
  await runOk("mkenvimage", [...args, "-o", out, input]);
  return readFile(out);
}

/** A file holding one or two copies back to back, provisioned with `bytes` per copy; returns its config. */
async function envFile(copiesBytes: Buffer[], size = SIZE): Promise<{ copies: UbootEnvCopy[]; cfg: string }> {
  const n = ++seq;
  const path = join(dir, `env-${n}.bin`);
  await writeFile(path, Buffer.concat(copiesBytes));
  const copies = copiesBytes.map((_, i) => ({ path, offset: i * size, size }));
  const cfg = join(dir, `fw_env-${n}.config`);
  await writeFile(cfg, fwEnvConfig(copies));
  return { copies, cfg };
}

const copyBytes = async (c: UbootEnvCopy): Promise<Buffer> =>
  (await readFile(c.path)).subarray(c.offset, c.offset + c.size);

describe("U-Boot environment codec vs mkenvimage", () => {
  const modes: Array<{ name: string; args: string[]; redundant: boolean; pad: number }> = [
    { name: "single, 0xFF fill", args: ["-s", String(SIZE)], redundant: false, pad: 0xff },
    { name: "single, -p 0", args: ["-s", String(SIZE), "-p", "0"], redundant: false, pad: 0 },
    { name: "redundant (-r)", args: ["-r", "-s", String(SIZE)], redundant: true, pad: 0xff },
    { name: "redundant, -p 0", args: ["-r", "-s", "1024", "-p", "0"], redundant: true, pad: 0 },
  ];
  for (const m of modes) {
    it(`writes the same bytes as mkenvimage ${m.args.join(" ")} (${m.name})`, async () => {
      const size = Number(m.args[m.args.indexOf("-s") + 1]);
      const expected = await mkenvimage(ENTRIES, m.args);
      const ours = encodeUbootEnv(ENTRIES, { size, redundant: m.redundant, flags: 1, pad: m.pad });
      expect(ours.equals(expected)).toBe(true);
      expect(decodeUbootEnv(expected, m.redundant)).toEqual({
        valid: true,
        flags: m.redundant ? 1 : 0,
        entries: ENTRIES,
      });
    });
  }

  it("writes an empty environment as mkenvimage does", async () => {
    const expected = await mkenvimage([], ["-s", "1024"]);
    expect(encodeUbootEnv([], { size: 1024, redundant: false, pad: 0xff }).equals(expected)).toBe(true);
    expect(decodeUbootEnv(expected, false).entries).toEqual([]);
  });

  it("computes zlib's CRC-32 (check value of '123456789')", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
  });
});

describe("file-backed fw_env.config round trips", () => {
  it("single copy: our writes read by fw_printenv, fw_setenv's read by us", async () => {
    const { copies, cfg } = await envFile([await mkenvimage(ENTRIES, ["-s", String(SIZE)])]);
    const control = new UbootBootControl(copies);
    await control.setTrialBoot("B");
    const printed = parsePrintenv(await runOk("fw_printenv", ["-c", cfg]));
    expect(printed).toEqual((await control.env.read()).vars);
    expect(printed).toMatchObject({ BOOT_ORDER: "B A", BOOT_B_LEFT: "1", BOOT_A_LEFT: "3" });

    const script = join(dir, `script-${++seq}`);
    // What the agent's markGood of B writes, by hand: the counter refilled and the trial ended.
    await writeFile(script, "BOOT_B_LEFT=3\nBOOT_TRIAL=\nexpr=\nnew=v a l\n");
    await runOk("fw_setenv", ["-c", cfg, "-s", script]);
    const vars = (await control.env.read()).vars;
    expect(vars.BOOT_B_LEFT).toBe("3");
    expect(vars.BOOT_TRIAL).toBeUndefined();
    expect(vars.expr).toBeUndefined();
    expect(vars.new).toBe("v a l");
    expect((await control.readState()).slots.B.good).toBe(true);
  });

  it("redundant: fw_setenv writes the other copy with flag+1 and a valid CRC, sorted; we do the same", async () => {
    const image = await mkenvimage(ENTRIES, ["-r", "-s", String(SIZE)]);
    const { copies, cfg } = await envFile([image, image]);
    const [c1, c2] = copies as [UbootEnvCopy, UbootEnvCopy];
    // Both copies flag 1: copy 1 is current, so the writer must write copy 2 with flag 2.
    const script = join(dir, `script-${++seq}`);
    await writeFile(script, "BOOT_A_LEFT=2\n");
    await runOk("fw_setenv", ["-c", cfg, "-s", script]);
    const theirs2 = decodeUbootEnv(await copyBytes(c2), true);
    expect(theirs2.valid).toBe(true);
    expect(theirs2.flags).toBe(2);
    expect(theirs2.entries.map(([k]) => k)).toEqual([...theirs2.entries.map(([k]) => k)].sort());
    expect((await copyBytes(c1)).equals(image)).toBe(true);

    // Our write goes to copy 1 now, with flag 3, same variables as theirs plus the change.
    const control = new UbootBootControl(copies);
    await control.markGood("A");
    const ours1 = decodeUbootEnv(await copyBytes(c1), true);
    expect(ours1).toMatchObject({ valid: true, flags: 3 });
    expect(ours1.entries).toEqual(theirs2.entries.map(([k, v]) => [k, k === "BOOT_A_LEFT" ? "3" : v]));
    // Compared up to the terminator: fw_setenv leaves its padding uninitialised.
    const end = (b: Buffer) => b.subarray(5, b.indexOf("\0\0", 5) + 2);
    const theirsData = end(await copyBytes(c2))
      .toString("latin1")
      .replace("BOOT_A_LEFT=2", "BOOT_A_LEFT=3");
    expect(end(await copyBytes(c1)).toString("latin1")).toBe(theirsData);

    // And fw_printenv follows our flag.
    expect(parsePrintenv(await runOk("fw_printenv", ["-c", cfg])).BOOT_A_LEFT).toBe("3");
  });

  it("a write of ours cut at any offset leaves fw_printenv reading the previous environment", async () => {
    const image = await mkenvimage(ENTRIES, ["-r", "-s", "1024", "-p", "0"]);
    const { copies, cfg } = await envFile([image, image], 1024);
    const path = copies[0]?.path as string;
    const before = await readFile(path);
    const store = new UbootEnvStore(copies);
    const w = store.plan(await store.read(), [["BOOT_B_LEFT", "3"]]);
    const expected = parsePrintenv(await runOk("fw_printenv", ["-c", cfg]));
    // Every header byte, then a stride through the data (one fw_printenv per cut keeps this quick).
    const offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    for (let k = 9; k < w.bytes.length; k += 31) offsets.push(k);
    offsets.push(w.bytes.length - 1);
    // Past the last byte that differs from what the copy held, the cut copy is the complete new one.
    const old = before.subarray(w.copy.offset, w.copy.offset + w.copy.size);
    let lastDiff = w.bytes.length - 1;
    while (lastDiff > 0 && w.bytes[lastDiff] === old[lastDiff]) lastDiff--;
    let sawNew = false;
    for (const k of offsets) {
      const torn = Buffer.from(before);
      w.bytes.copy(torn, w.copy.offset, 0, k);
      await writeFile(path, torn);
      const printed = parsePrintenv(await runOk("fw_printenv", ["-c", cfg]));
      if (k <= lastDiff) expect(printed).toEqual(expected);
      else {
        expect(printed).toEqual({ ...expected, BOOT_B_LEFT: "3" });
        sawNew = true;
      }
    }
    expect(sawNew).toBe(true);
    // The complete write is what fw_printenv reads next.
    await UbootEnvStore.commit(w);
    expect(parsePrintenv(await runOk("fw_printenv", ["-c", cfg])).BOOT_B_LEFT).toBe("3");
  });

  it("refuses to write when no copy is valid, like fw_setenv, and changes nothing", async () => {
    const junk = Buffer.alloc(SIZE, 0xab);
    const { copies, cfg } = await envFile([junk, junk]);
    const before = await readFile(copies[0]?.path as string);
    await expect(new UbootBootControl(copies).markGood("A")).rejects.toThrow(NoValidEnvError);
    expect((await readFile(copies[0]?.path as string)).equals(before)).toBe(true);
    const script = join(dir, `script-${++seq}`);
    await writeFile(script, "a=1\n");
    expect((await run("fw_setenv", ["-c", cfg, "-s", script])).code).not.toBe(0);
  });
});

describe("copy selection", () => {
  const valid = (flags: number, marker: string) =>
    encodeUbootEnv([["which", marker]], { size: SIZE, redundant: true, flags, pad: 0 });
  const corrupt = (flags: number, marker: string) => {
    const b = valid(flags, marker);
    b[100] = 0x55; // in the padding: the CRC no longer matches
    return b;
  };
  const table: Array<{ name: string; copies: [Buffer, Buffer]; expected: number | null }> = [
    { name: "equal flags → copy 1", copies: [valid(4, "one"), valid(4, "two")], expected: 0 },
    { name: "5/3 → copy 1", copies: [valid(5, "one"), valid(3, "two")], expected: 0 },
    { name: "3/5 → copy 2", copies: [valid(3, "one"), valid(5, "two")], expected: 1 },
    { name: "255/0 → copy 2 (wrap)", copies: [valid(255, "one"), valid(0, "two")], expected: 1 },
    { name: "0/255 → copy 1 (wrap)", copies: [valid(0, "one"), valid(255, "two")], expected: 0 },
    { name: "copy 1 corrupt → copy 2", copies: [corrupt(9, "one"), valid(1, "two")], expected: 1 },
    { name: "copy 2 corrupt → copy 1", copies: [valid(1, "one"), corrupt(9, "two")], expected: 0 },
    { name: "both corrupt → default env", copies: [corrupt(1, "one"), corrupt(2, "two")], expected: null },
  ];
  for (const row of table) {
    it(`${row.name}, as fw_printenv chooses`, async () => {
      const { copies, cfg } = await envFile(row.copies);
      const snap = await new UbootEnvStore(copies).read();
      expect(selectCopy(snap.copies)).toBe(row.expected);
      expect(snap.current).toBe(row.expected);
      const r = await run("fw_printenv", ["-c", cfg]);
      if (row.expected === null) {
        expect(r.code).not.toBe(0);
        expect(snap.vars).toEqual({});
      } else {
        expect(r.code).toBe(0);
        const which = row.expected === 0 ? "one" : "two";
        expect(parsePrintenv(r.stdout)).toEqual({ which });
        expect(snap.vars).toEqual({ which });
      }
    });
  }

  it("after fw_setenv at flag 255 the wrapped copy (flag 0) wins for both of us", async () => {
    const { copies, cfg } = await envFile([valid(255, "one"), valid(254, "two")]);
    const script = join(dir, `script-${++seq}`);
    await writeFile(script, "which=three\n");
    await runOk("fw_setenv", ["-c", cfg, "-s", script]);
    const snap = await new UbootEnvStore(copies).read();
    expect(snap).toMatchObject({ current: 1, flags: 0, vars: { which: "three" } });
  });
});
