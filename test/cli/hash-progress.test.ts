import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, truncate, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { CliFileError } from "../../cli/errors.ts";
import { hashFile } from "../../cli/hash.ts";
import { progressBar } from "../../cli/progress.ts";
import { keel, tempDir, writeKey } from "./helpers.ts";

let dir: string;
beforeAll(async () => {
  dir = await tempDir("hash");
});

describe("hashFile", () => {
  it("reads a multi-chunk file once for its size and SHA-256, reporting progress up to the total", async () => {
    const data = randomBytes(3.5 * 1024 * 1024);
    await writeFile(join(dir, "img"), data);
    const seen: Array<[number, number]> = [];
    const d = await hashFile(join(dir, "img"), (done, total) => seen.push([done, total]));
    expect(d).toEqual({ size: data.length, sha256: createHash("sha256").update(data).digest("hex") });
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(seen.at(-1)).toEqual([data.length, data.length]);
    expect(seen.every(([done], i) => i === 0 || done > (seen[i - 1]?.[0] ?? 0))).toBe(true);
  });

  it("hashes an empty file", async () => {
    await writeFile(join(dir, "empty"), "");
    expect(await hashFile(join(dir, "empty"))).toEqual({
      size: 0,
      sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    });
  });

  it("names the file when it is missing or not a regular file", async () => {
    await mkdir(join(dir, "adir"));
    await expect(hashFile(join(dir, "adir"))).rejects.toThrow(CliFileError);
    await expect(hashFile(join(dir, "adir"))).rejects.toThrow(/adir: is not a regular file/);
    await expect(hashFile(join(dir, "none"))).rejects.toThrow(/none: cannot read image \(ENOENT/);
  });
});

describe("progressBar", () => {
  it("draws nothing when stderr is not a terminal, and draws when forced", () => {
    const write = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const quiet = progressBar("hashing", 100);
      quiet.update(50);
      quiet.stop();
      // Vitest workers write to pipes, never to a terminal.
      expect(process.stderr.isTTY).toBeFalsy();
      expect(write).not.toHaveBeenCalled();
      const loud = progressBar("hashing", 100 * 1024 * 1024, { force: true });
      loud.update(50 * 1024 * 1024);
      loud.stop();
      loud.stop(); // idempotent
      const out = write.mock.calls.map((c) => String(c[0])).join("");
      expect(out).toContain("hashing [");
      expect(out).toContain("50.0 MiB / 100.0 MiB");
    } finally {
      write.mockRestore();
    }
  });
});

describe("progress on a terminal", () => {
  it("keel release sign shows a bar for a large image on a TTY and nothing off one", async () => {
    await writeKey(dir, "rel", 21);
    // Sparse: 40 MiB that costs no disk and reads fast.
    await writeFile(join(dir, "big.img"), "");
    await truncate(join(dir, "big.img"), 40 * 1024 * 1024);
    const args = [
      "release",
      "sign",
      "big.img",
      "--version",
      "1.0.0",
      "--counter",
      "1",
      "--compatible",
      "pc",
      "--key",
      "rel.key",
    ];
    const plain = await keel(dir, ...args, "--out", "plain.json");
    expect(plain.code).toBe(0);
    expect(plain.stderr).toBe("");
    // `script` (util-linux) runs the command on a pseudo-terminal.
    const keelBin = resolve(import.meta.dirname, "../../bin/keel.mjs");
    const cmd = [process.execPath, keelBin, ...args, "--out", "tty.json"].join(" ");
    const { stdout } = await promisify(execFile)("script", ["-qec", cmd, "/dev/null"], { cwd: dir });
    expect(stdout).toContain("hashing [");
    expect(stdout).toContain("100% | 40.0 MiB / 40.0 MiB");
    expect(stdout).toContain("tty.json has 1 signature(s)");
  });
});
