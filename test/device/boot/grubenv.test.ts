/**
 * GRUB environment block interop with the real grub-editenv (docs/bootloaders.md#environment-block-format, docs/bootloaders.md#what-the-tests-hold-the-code-to): byte equality
 * with `create` + `set`/`unset` in the same order, their files read by us, ours read by them, escapes, the
 * 930-byte limit, kept sizes and the errors.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempPathFor } from "../../../device/boot/atomic-file.ts";
import { BootEnvFormatError, BootEnvTooSmallError } from "../../../device/boot/errors.ts";
import {
  applyGrubEnvChanges,
  FAT_SUPER_MAGIC,
  GrubEnvBlock,
  type GrubEnvChange,
  GrubEnvFile,
  resolveGrubEnvWriteMode,
} from "../../../device/boot/grubenv.ts";
import { run, runOk, tempDir } from "./helpers.ts";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());

/** grub-editenv FILE create, then one `set`/`unset` call per step (each call applies its args left to right). */
async function theirs(name: string, steps: ReadonlyArray<readonly GrubEnvChange[]>): Promise<Buffer> {
  const file = join(dir, name);
  await runOk("grub-editenv", [file, "create"]);
  for (const step of steps) {
    const sets = step.filter(([, v]) => v !== null);
    const unsets = step.filter(([, v]) => v === null);
    // One call per kind keeps the order within the step as long as a step does not mix them.
    if (sets.length) await runOk("grub-editenv", [file, "set", ...sets.map(([n, v]) => `${n}=${v}`)]);
    if (unsets.length) await runOk("grub-editenv", [file, "unset", ...unsets.map(([n]) => n)]);
  }
  return readFile(file);
}

function ours(steps: ReadonlyArray<readonly GrubEnvChange[]>, size?: number): Buffer {
  let block = GrubEnvBlock.create(size);
  for (const step of steps) block = applyGrubEnvChanges(block, step);
  return block.bytes();
}

const CASES: Record<string, ReadonlyArray<readonly GrubEnvChange[]>> = {
  "fresh block": [],
  "RAUC variables": [
    [
      ["ORDER", "A B"],
      ["A_OK", "1"],
      ["A_TRY", "0"],
      ["B_OK", "0"],
      ["B_TRY", "0"],
    ],
  ],
  "in-place rewrite, longer then shorter": [
    [
      ["ORDER", "A B"],
      ["A_OK", "1"],
      ["B_OK", "1"],
    ],
    [["ORDER", "B A extra words"]],
    [["ORDER", "B"]],
    [["A_OK", "0"]],
  ],
  "unset in the middle": [
    [
      ["x", "1"],
      ["y", "2"],
      ["z", "3"],
    ],
    [["y", null]],
    [["y", "back"]],
  ],
  "escapes: backslash and newline": [[["k", "a\\b\nc"]], [["k2", "\\\\\n\n"]], [["k", "plain"]]],
  "prefix names": [
    [
      ["A_OK", "1"],
      ["A", "2"],
      ["A_OK_X", "3"],
    ],
    [["A", "22"]],
  ],
};

describe("GRUB environment block vs grub-editenv", () => {
  for (const [name, steps] of Object.entries(CASES)) {
    it(`writes the same bytes as grub-editenv create + set/unset: ${name}`, async () => {
      // Prepare / Act
      const expected = await theirs(name.replace(/\W+/g, "_"), steps);
      // Assess
      expect(ours(steps).equals(expected)).toBe(true);
      expect(GrubEnvBlock.parse(expected).entries()).toEqual(GrubEnvBlock.parse(ours(steps)).entries());
    });
  }

  it("reads what grub-editenv wrote, escapes included", async () => {
    const file = join(dir, "theirs-read");
    await runOk("grub-editenv", [file, "create"]);
    await runOk("grub-editenv", [file, "set", "ORDER=B A", "path=C:\\dir\\", "multi=line1\nline2", "empty="]);
    const block = await new GrubEnvFile(file).read();
    expect(block.entries()).toEqual([
      ["ORDER", "B A"],
      ["path", "C:\\dir\\"],
      ["multi", "line1\nline2"],
      ["empty", ""],
    ]);
  });

  it("writes files grub-editenv lists back with the same values", async () => {
    const file = join(dir, "ours-list");
    const env = new GrubEnvFile(file);
    await env.update([
      ["ORDER", "A B"],
      ["A_OK", "1"],
      ["esc", "x\\y"],
    ]);
    await env.update([["ORDER", "B A"]]);
    const listed = (await runOk("grub-editenv", [file, "list"])).toString("utf8");
    expect(listed).toBe("ORDER=B A\nA_OK=1\nesc=x\\y\n");
  });

  it("fits exactly 930 bytes of lines in a fresh block and fails on the 931st like grub-editenv", async () => {
    // 1-char name + '=' + 927-byte value + LF = 930: fits; 928 bytes of value: "environment block too small".
    const fits = "x".repeat(927);
    const tooBig = "x".repeat(928);
    const file = join(dir, "limit");
    await runOk("grub-editenv", [file, "create"]);
    await runOk("grub-editenv", [file, "set", `a=${fits}`]);
    expect(ours([[["a", fits]]]).equals(await readFile(file))).toBe(true);

    const r = await run("grub-editenv", [join(dir, "limit"), "set", `b=${tooBig}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("environment block too small");
    expect(() => ours([[["b", tooBig]]])).toThrow(BootEnvTooSmallError);
  });

  it("refuses to grow a block and changes nothing on overflow", async () => {
    const file = join(dir, "overflow");
    const env = new GrubEnvFile(file);
    await env.update([["ORDER", "A B"]]);
    const before = await readFile(file);
    await expect(env.update([["big", "y".repeat(2000)]])).rejects.toThrow(/environment block too small/);
    expect((await readFile(file)).equals(before)).toBe(true);
  });

  it("keeps a 4096-byte block's size, as grub-editenv does when editing in place", async () => {
    const file = join(dir, "big");
    await writeFile(file, GrubEnvBlock.create(4096).bytes());
    await runOk("grub-editenv", [file, "set", "A_OK=1", "ORDER=A B"]);
    const theirsBytes = await readFile(file);
    expect(theirsBytes.length).toBe(4096);

    const ourFile = join(dir, "big-ours");
    await writeFile(ourFile, GrubEnvBlock.create(4096).bytes());
    await new GrubEnvFile(ourFile).update([
      ["A_OK", "1"],
      ["ORDER", "A B"],
    ]);
    expect((await readFile(ourFile)).equals(theirsBytes)).toBe(true);
  });

  it("rejects a block without the signature, as GRUB does (invalid environment block)", async () => {
    const file = join(dir, "bad-sig");
    await writeFile(file, `# not grub\n${"#".repeat(1000)}`);
    const r = await run("grub-editenv", [file, "list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid environment block");
    await expect(new GrubEnvFile(file).read()).rejects.toThrow(BootEnvFormatError);
    await expect(new GrubEnvFile(file).update([["A_OK", "1"]])).rejects.toThrow(/invalid environment block/);
  });

  it("creates a missing file as a fresh block, like grub-editenv set", async () => {
    const file = join(dir, "missing");
    await new GrubEnvFile(file).update([["A_OK", "1"]]);
    const theirsFile = join(dir, "missing-theirs");
    await runOk("grub-editenv", [theirsFile, "set", "A_OK=1"]);
    expect((await readFile(file)).equals(await readFile(theirsFile))).toBe(true);
  });

  it("replaces the file through <file>.new and leaves no temp file behind", async () => {
    const file = join(dir, "atomic");
    const env = new GrubEnvFile(file);
    // A stale temp file from an earlier cut write is simply overwritten.
    await writeFile(tempPathFor(file), "partial");
    await env.update([["ORDER", "A B"]]);
    await expect(readFile(tempPathFor(file))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await env.read()).toRecord()).toEqual({ ORDER: "A B" });
  });
});

describe("in-place writes (the FAT ESP, like GRUB's save_env)", () => {
  const keelVars: GrubEnvChange[] = [
    ["A_OK", "1"],
    ["A_TRY", "0"],
    ["B_OK", "1"],
    ["B_TRY", "1"],
    ["ORDER", "B A"],
    ["TRIAL", "B"],
  ];

  it("rewrites the same file (same inode, same size) with the bytes a replacing write would give", async () => {
    const inPlace = join(dir, "inplace-grubenv");
    const replaced = join(dir, "replaced-grubenv");
    await new GrubEnvFile(inPlace, "replace").update([["ORDER", "A B"]]);
    await new GrubEnvFile(replaced, "replace").update([["ORDER", "A B"]]);
    const before = await stat(inPlace);
    await new GrubEnvFile(inPlace, "in-place").update(keelVars);
    await new GrubEnvFile(replaced, "replace").update(keelVars);
    const after = await stat(inPlace);
    expect(after.ino).toBe(before.ino);
    expect(after.size).toBe(before.size);
    expect(await readFile(inPlace)).toEqual(await readFile(replaced));
    expect((await runOk("grub-editenv", [inPlace, "list"])).toString().split("\n")).toContain("TRIAL=B");
    await expect(readFile(tempPathFor(inPlace))).rejects.toThrow(/ENOENT/);
  });

  it("keeps Keel's variables, at their longest, in the first sector, so a torn write leaves old or new", async () => {
    const file = join(dir, "torn-grubenv");
    const env = new GrubEnvFile(file, "in-place");
    await env.update([
      ["ORDER", "A B"],
      ["A_OK", "1"],
      ["A_TRY", "0"],
    ]);
    const old = await readFile(file);
    const next = await env.plan(keelVars);
    // Every variable ends before byte 512; the rest of the block is padding in both versions.
    expect(next.subarray(0, 512).toString("latin1")).toContain("TRIAL=B\n");
    expect(next.subarray(512)).toEqual(old.subarray(512));
    // A cut after each whole sector: sector-by-sector mixes of the two versions.
    for (let sectors = 0; sectors <= next.length / 512; sectors++) {
      const torn = Buffer.concat([next.subarray(0, sectors * 512), old.subarray(sectors * 512)]);
      const seen = GrubEnvBlock.parse(torn, "torn").toRecord();
      expect([
        GrubEnvBlock.parse(old, "old").toRecord(),
        GrubEnvBlock.parse(next, "new").toRecord(),
      ]).toContainEqual(seen);
    }
  });

  it("creates a missing file by replacing (a new file needs new clusters anyway)", async () => {
    const file = join(dir, "fresh-inplace-grubenv");
    await new GrubEnvFile(file, "in-place").update([["ORDER", "A B"]]);
    expect((await runOk("grub-editenv", [file, "list"])).toString().trim()).toBe("ORDER=A B");
  });

  it("auto: in place only on FAT (statfs f_type 0x4d44); this temp dir is not FAT", async () => {
    expect(FAT_SUPER_MAGIC).toBe(0x4d44);
    expect(await resolveGrubEnvWriteMode(join(dir, "grubenv"), "auto")).toBe("replace");
    expect(await resolveGrubEnvWriteMode(join(dir, "grubenv"), "in-place")).toBe("in-place");
    await expect(resolveGrubEnvWriteMode(join(dir, "no-such-dir", "grubenv"), "auto")).rejects.toThrow(
      /cannot tell the file system/,
    );
  });
});
