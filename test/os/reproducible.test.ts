/**
 * The release SquashFS is a function of its inputs: the root tree assembled twice, independently, from
 * the same base tar and files — the second time under another umask and seconds later — and packed by two
 * mksquashfs runs (`keel release build`'s flags), gives the same bytes. No cache, no VM, no download: the
 * base is a small tar with what a Debian base brings that could leak into the image (owners, odd modes and
 * mtimes, hard and symbolic links, the unit files systemctl enables); the opaque binaries (Node.js, the
 * kernel, the initramfs) are small stand-ins, since they are copied byte for byte. The full-size check on
 * the real Debian base is `npm run repro:os` (docs/os-image.md#reproducible-images).
 */
import { chmod, chown, link, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage } from "../../cli/commands/release.ts";
import { assembleAndPack, type TreeInputs } from "../../os/build.ts";
import { run } from "../../os/exec.ts";
import { key, makeRoot, sign } from "../core/fixtures.ts";

let tmp: string;
let inputs: TreeInputs;

const UNIT = (wantedBy: string) =>
  `[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=${wantedBy}\n`;

/** A base tar shaped like mmdebstrap's: merged /usr, units, owners other than root, varied modes and times. */
async function baseTar(dir: string): Promise<string> {
  const tree = join(dir, "base");
  const file = async (rel: string, body: string, mode: number, mtime: number, uid = 0) => {
    await mkdir(dirname(join(tree, rel)), { recursive: true });
    await writeFile(join(tree, rel), body);
    await chmod(join(tree, rel), mode);
    await chown(join(tree, rel), uid, uid);
    await utimes(join(tree, rel), mtime, mtime);
  };
  await file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644, 1_600_000_000);
  await file("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640, 1_600_000_123, 42);
  await file("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755, 1_700_000_000);
  await file("usr/bin/setuid-tool", "#!/bin/sh\n", 0o4755, 1_700_000_001);
  await file("var/mail/user", "", 0o660, 1_650_000_000, 1000);
  await file("usr/lib/systemd/system/systemd-networkd.service", UNIT("multi-user.target"), 0o644, 1);
  await file(
    "usr/lib/systemd/system/systemd-networkd-wait-online.service",
    UNIT("network-online.target"),
    0o644,
    2,
  );
  await link(join(tree, "usr/bin/tool"), join(tree, "usr/bin/tool-hardlink"));
  await mkdir(join(tree, "usr/sbin"), { recursive: true });
  await mkdir(join(tree, "etc/systemd/system"), { recursive: true });
  await mkdir(join(tree, "var/log"), { recursive: true });
  await mkdir(join(tree, "tmp"), { mode: 0o1777 });
  await chmod(join(tree, "tmp"), 0o1777);
  for (const [name, to] of [
    ["bin", "usr/bin"],
    ["sbin", "usr/sbin"],
    ["lib", "usr/lib"],
  ] as const)
    await symlink(to, join(tree, name));
  await writeFile(join(tree, "usr/sbin/init"), "#!/bin/sh\n");
  const out = join(dir, "base.tar");
  await run("tar", ["-cpf", out, "--numeric-owner", "-C", tree, "."]);
  return out;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "keel-os-repro-"));
  const stand = async (name: string, body: string) => {
    await writeFile(join(tmp, name), body);
    return join(tmp, name);
  };
  inputs = {
    base: await baseTar(tmp),
    node: await stand("node", "stand-in for the Node.js binary\n"),
    agent: await stand("keel-agent.mjs", "#!/usr/bin/env -S node\n// keel-agent stand-in\n"),
    vmlinuz: await stand("vmlinuz", "stand-in for the kernel\n"),
    initrd: await stand("initrd.img", "stand-in for the initramfs\n"),
    trustRoot: await stand("root.json", JSON.stringify(sign(makeRoot({ rootKeys: [key(7)] }), [key(7)]))),
    version: "1.0.0",
    fault: "none",
    labels: "",
  };
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function build(name: string, inp: TreeInputs, umask: number): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir);
  const before = process.umask(umask);
  try {
    return (await assembleAndPack(dir, inp, buildImage)).sha256;
  } finally {
    process.umask(before);
  }
}

describe("the release SquashFS is reproducible", () => {
  it("two independent assemblies and mksquashfs runs of the same inputs give the same bytes, whatever the umask", async () => {
    const first = await build("one", inputs, 0o022);
    // Seconds apart, so every file the assembly writes has another mtime than in the first tree.
    await new Promise((r) => setTimeout(r, 1100));
    const second = await build("two", inputs, 0o077);
    expect(second).toBe(first);
  });

  it("the comparison sees a difference when an input differs", async () => {
    const same = await build("three", inputs, 0o022);
    const other = await build("four", { ...inputs, labels: "KUBELET=broken\n" }, 0o022);
    expect(other).not.toBe(same);
  });
});
