/**
 * `keel os build` refuses inputs that cannot make a bootable node, with a named error, before it
 * downloads or writes anything (the output directory is never created). No VM and no Debian download here.
 */
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError } from "../../core/errors.ts";
import { buildOs, type OsBuildOptions } from "../../os/build.ts";
import { diskLayout } from "../../os/disk.ts";
import { OsInputError } from "../../os/errors.ts";
import { key, makeRoot, sign } from "../core/fixtures.ts";

let tmp: string;
let base: OsBuildOptions;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "keel-os-input-"));
  const agent = join(tmp, "keel-agent.mjs");
  // Shaped like the bundle's first line and naming keel-agent, which is what the builder checks.
  await writeFile(agent, "#!/usr/bin/env -S node --max-semi-space-size=1\n// keel-agent\n");
  const root = join(tmp, "root.json");
  await writeFile(root, JSON.stringify(sign(makeRoot({ rootKeys: [key(3)] }), [key(3)])));
  base = {
    out: join(tmp, "out"),
    trustRoot: root,
    version: "1.0.0",
    agent,
    cacheDir: join(tmp, "cache"),
    pack: () => Promise.reject(new Error("must not be reached")),
  };
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function refused(o: Partial<OsBuildOptions>, message: RegExp): Promise<void> {
  const err = await buildOs({ ...base, ...o }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OsInputError);
  expect((err as Error).name).toBe("OsInputError");
  expect(describeError(err)).toMatch(message);
  // Nothing written: neither the output nor the cache.
  await expect(access(base.out)).rejects.toThrow();
  await expect(access(join(tmp, "cache"))).rejects.toThrow();
}

describe("keel os build refuses bad input before writing", () => {
  it("a root file system without the agent (no bundle)", async () => {
    await refused(
      { agent: join(tmp, "missing.mjs") },
      /agent bundle .*missing\.mjs cannot be read; build it with `npm run build:agent`/,
    );
  });

  it("an agent file that is not the keel-agent bundle", async () => {
    const other = join(tmp, "other.mjs");
    await writeFile(other, "console.log('hello')\n");
    await refused({ agent: other }, /is not the keel-agent bundle/);
  });

  it("a disk too small for two slots", async () => {
    await refused(
      { diskMiB: 500, slotMiB: 384 },
      /a 500 MiB disk is too small for two 384 MiB slots.*at least 1251 MiB/,
    );
  });

  it("a missing trust root", async () => {
    await refused({ trustRoot: join(tmp, "nope.json") }, /trust root .*nope\.json cannot be read/);
  });

  it("an agent config the agent would refuse", async () => {
    const cfg = join(tmp, "agent.json");
    await writeFile(cfg, JSON.stringify({ thingName: "bad name!", hardware: "x" }));
    await refused({ agentConfig: cfg }, /not a valid agent\.json \(thingName: may contain only/);
    await writeFile(cfg, "{not json");
    await refused({ agentConfig: cfg }, /agent\.json: not JSON/);
  });

  it("an image larger than a slot, and a slot size that is not whole MiB", () => {
    expect(() => diskLayout({ slotMiB: 64, imageBytes: 65 * 1024 * 1024 })).toThrow(
      /does not fit a 64 MiB slot/,
    );
    expect(() => diskLayout({ slotMiB: 8, imageBytes: 0 })).toThrow(/at least 16/);
  });

  it("lays out the partitions the shipped grub.cfg expects", () => {
    const l = diskLayout({ slotMiB: 64, imageBytes: 1 });
    expect(l.parts.map((p) => [p.num, p.label])).toEqual([
      [6, "bios_grub"],
      [1, "keel-esp"],
      [2, "keel-a"],
      [3, "keel-b"],
      [4, "keel-rescue"],
      [5, "keel-data"],
    ]);
    const last = l.parts[l.parts.length - 1];
    expect(last && last.startMiB + last.sizeMiB).toBe(l.diskMiB - 1);
  });
});
