/**
 * `keel dev --demo` (what `npm start` runs) as a user runs it, in a child process: Ctrl-C in the middle of a
 * rollout stops everything and exits 130 leaving no endpoints behind; running it again in the same
 * directory needs nothing deleted by hand, exits 0 and leaves a report whose verdict is true.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";

const KEEL = resolve(import.meta.dirname, "../../bin/keel.mjs");
const children: ChildProcess[] = [];

function demo(dir: string): { proc: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [KEEL, "dev", "--demo", "--devices", "4", "--dir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  let out = "";
  proc.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  proc.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((res) => proc.once("exit", (code) => res(code)));
  return { proc, out: () => out, exited };
}

const gone = (p: string) =>
  access(p).then(
    () => false,
    () => true,
  );

describe("keel dev --demo in a child process", () => {
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "keel-e2e-start-"));
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await rm(tmp, { recursive: true, force: true });
  });

  it("stops cleanly on Ctrl-C mid-rollout, then runs again to a verified outcome", async () => {
    // Prepare
    const dir = join(tmp, ".keel");
    const first = demo(dir);
    const deadline = Date.now() + 90_000;
    while (!first.out().includes("Rolling out 1.1.0")) {
      if (first.proc.exitCode !== null) throw new Error(`demo exited early:\n${first.out()}`);
      if (Date.now() > deadline) throw new Error(`no rollout started:\n${first.out()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // Act: Ctrl-C during the first rollout
    first.proc.kill("SIGINT");

    // Assess: clean stop, exit 130, no endpoints left pointing at dead services
    expect(await first.exited).toBe(130);
    expect(first.out()).toContain("SIGINT: stopping the fleet and the local cloud");
    expect(await gone(join(dir, "local.json"))).toBe(true);
    expect(await gone(join(dir, "demo", "local.json"))).toBe(true);
    expect(await gone(join(dir, "last-run.json"))).toBe(true);

    // Act: run again in the same directory
    const second = demo(dir);
    const code = await second.exited;

    // Assess
    expect(code, second.out()).toBe(0);
    const report = z
      .object({ devices: z.number(), ok: z.boolean(), fleet: z.record(z.string(), z.number()) })
      .parse(JSON.parse(await readFile(join(dir, "last-run.json"), "utf8")));
    expect(report).toMatchObject({ devices: 4, ok: true, fleet: { "1.1.0": 4 } });
  }, 180_000);
});
