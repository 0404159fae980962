import { execFile } from "node:child_process";
import { chown, mkdir, readFile, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Command } from "commander";
import { beforeAll, describe, expect, it } from "vitest";
import { register, releaseCommand } from "../../cli/commands/release.ts";
import { canonicalize } from "../../core/canonical-json.ts";
import type { KeyPair } from "../../core/keys.ts";
import { MAX_JSON_BYTES } from "../../core/parse.ts";
import { parseReleaseEnvelope } from "../../core/verify.ts";
import { key, makeRelease, sign } from "../core/fixtures.ts";
import { keel, rootInit, rootRotate, tempDir, writeKey } from "./helpers.ts";

let dir: string;
let root1: KeyPair;
let rel1: KeyPair;
let rel2: KeyPair;
let outsider: KeyPair;

async function makeTree(at: string, extra = ""): Promise<void> {
  await mkdir(join(at, "etc"), { recursive: true });
  await mkdir(join(at, "usr/bin"), { recursive: true });
  await writeFile(join(at, "etc/os-release"), `NAME=KeelOS\nVERSION=1.0.0\n${extra}`);
  await writeFile(join(at, "usr/bin/kubelet"), Buffer.alloc(300_000, 7), { mode: 0o755 });
  await writeFile(join(at, "usr/bin/zz"), "last");
  await symlink("../usr/bin/kubelet", join(at, "etc/kubelet-link"));
}

async function readEnvelope(file: string) {
  return parseReleaseEnvelope(JSON.parse(await readFile(join(dir, file), "utf8")));
}

const SIGN = ["--version", "1.0.0", "--counter", "5", "--compatible", "pc-x86_64,rpi4"];

/**
 * `keel release sign IMAGE FIELDS --key KEY… --out OUT EXTRA…` in dir; by default the built image, the
 * release fields of SIGN and the key rel1.
 */
function releaseSign(o: {
  image?: string;
  fields?: readonly string[];
  key?: string | readonly string[];
  out: string;
  extra?: readonly string[];
}) {
  const keys = typeof o.key === "string" ? [o.key] : (o.key ?? ["rel1.key"]);
  return keel(
    dir,
    "release",
    "sign",
    o.image ?? "image.squashfs",
    ...(o.fields ?? SIGN),
    ...keys.flatMap((k) => ["--key", k]),
    "--out",
    o.out,
    ...(o.extra ?? []),
  );
}

/** `keel release verify MANIFEST --root ROOT EXTRA…` in dir. */
function releaseVerify(manifest: string, root = "root.json", ...extra: string[]) {
  return keel(dir, "release", "verify", manifest, "--root", root, ...extra);
}

beforeAll(async () => {
  dir = await tempDir("release");
  [root1, , rel1, rel2, outsider] = await Promise.all([
    writeKey(dir, "root1", 1),
    writeKey(dir, "root2", 2),
    writeKey(dir, "rel1", 11),
    writeKey(dir, "rel2", 12),
    writeKey(dir, "outsider", 99),
  ]);
  await makeTree(join(dir, "rootfs"));
  const roles = { keys: "root1.pub", threshold: "1", releaseKeys: "rel1.pub,rel2.pub", sign: "root1.key" };
  const roots = await Promise.all([
    // 1-of-1 release role for the simple flows; 2-of-2 for threshold signing.
    rootInit(dir, { ...roles, out: "root.json" }),
    rootInit(dir, { ...roles, releaseThreshold: "2", out: "root-2of2.json" }),
  ]);
  for (const r of roots) expect(r.stderr).toBe("");
  const b = await keel(dir, "release", "build", "rootfs", "--out", "image.squashfs");
  expect(b.stderr).toBe("");
  const s = await releaseSign({ out: "release.json" });
  expect(s.stderr).toBe("");
});

describe("keel release build", () => {
  it("gives identical bytes for the same tree even when mtimes and ownership change", async () => {
    const first = await readFile(join(dir, "image.squashfs"));
    expect(first.subarray(0, 4).toString("latin1")).toBe("hsqs"); // SquashFS magic
    // Touch every file with new times and owners, then build again.
    for (const f of ["etc/os-release", "usr/bin/kubelet", "usr/bin/zz", "etc", "usr/bin", "."]) {
      await utimes(
        join(dir, "rootfs", f),
        new Date("2031-02-03T04:05:06Z"),
        new Date("2032-03-04T05:06:07Z"),
      );
      if (process.getuid?.() === 0) await chown(join(dir, "rootfs", f), 1234, 5678);
    }
    const r = await keel(dir, "release", "build", "rootfs", "--out", "image-again.squashfs");
    expect(r.code).toBe(0);
    const second = await readFile(join(dir, "image-again.squashfs"));
    expect(second.equals(first)).toBe(true);
    expect(r.stdout).toContain(`${second.length} bytes, sha256 `);
  });

  it("gives different bytes for a different tree", async () => {
    const other = join(dir, "rootfs-other");
    await makeTree(other, "X=1\n");
    const r = await keel(dir, "release", "build", "rootfs-other", "--out", "other.squashfs");
    expect(r.code).toBe(0);
    const a = await readFile(join(dir, "image.squashfs"));
    const b = await readFile(join(dir, "other.squashfs"));
    expect(b.equals(a)).toBe(false);
  });

  it("stores root ownership and fixed times, readable by unsquashfs", async () => {
    const { stdout } = await promisify(execFile)("unsquashfs", ["-lln", join(dir, "image.squashfs")]);
    const lines = stdout.split("\n").filter((l) => l.includes("squashfs-root"));
    expect(lines.length).toBeGreaterThanOrEqual(6);
    for (const line of lines) {
      expect(line).toMatch(/ 0\/0 /);
      expect(line).toContain("1970-01-01 00:00");
    }
    expect(stdout).toContain("squashfs-root/etc/kubelet-link -> ../usr/bin/kubelet");
  });

  it("refuses a missing or non-directory source and leaves no image", async () => {
    const r = await keel(dir, "release", "build", "nope", "--out", "nope.squashfs");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("nope: cannot read root filesystem tree");
    const f = await keel(dir, "release", "build", "root.json", "--out", "nope.squashfs");
    expect(f.stderr).toContain("root.json: is not a directory");
    await expect(stat(join(dir, "nope.squashfs"))).rejects.toThrow();
  });
});

describe("keel release sign + verify", () => {
  it("round trip: the manifest states the image's size and SHA-256 and verifies with the image", async () => {
    const env = await readEnvelope("release.json");
    const image = await readFile(join(dir, "image.squashfs"));
    expect(env.signed).toMatchObject({
      os: "keelos",
      version: "1.0.0",
      releaseCounter: 5,
      compatible: ["pc-x86_64", "rpi4"],
      image: { key: "releases/1.0.0/image.squashfs", size: image.length, format: "squashfs" },
    });
    const { createHash } = await import("node:crypto");
    expect(env.signed.image.sha256).toBe(createHash("sha256").update(image).digest("hex"));
    const r = await releaseVerify("release.json", "root.json", "--image", "image.squashfs");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(r.stdout).toMatch(
      /^OK keelos 1\.0\.0 \(counter 5\) for pc-x86_64,rpi4: 1 valid release signature\(s\) \(threshold 1\) under root v1, expires /,
    );
    expect(r.stdout).toContain(`image ${image.length} bytes matches`);
  });

  it("honours --os, --image-key and --expires", async () => {
    const r = await releaseSign({
      out: "custom.json",
      extra: ["--os", "keelos-edge", "--image-key", "custom/img.squashfs", "--expires", "1d"],
    });
    expect(r.code).toBe(0);
    const s = (await readEnvelope("custom.json")).signed;
    expect(s.os).toBe("keelos-edge");
    expect(s.image.key).toBe("custom/img.squashfs");
    expect(Date.parse(s.expiresAt) - Date.parse(s.createdAt)).toBe(86400_000);
  });

  it("refuses a flipped image byte and a truncated image, naming expected and actual", async () => {
    const image = await readFile(join(dir, "image.squashfs"));
    const flipped = Buffer.from(image);
    flipped[1000] = (flipped[1000] ?? 0) ^ 0x01;
    await writeFile(join(dir, "flipped.squashfs"), flipped);
    const r = await releaseVerify("release.json", "root.json", "--image", "flipped.squashfs");
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /release\.json is NOT valid: image sha256 mismatch: expected [0-9a-f]{64}, got [0-9a-f]{64}/,
    );
    await writeFile(join(dir, "short.squashfs"), image.subarray(0, image.length - 1));
    const t = await releaseVerify("release.json", "root.json", "--image", "short.squashfs");
    expect(t.stderr).toContain(`image size mismatch: expected ${image.length}, got ${image.length - 1}`);
  });

  it("refuses an edited manifest field", async () => {
    const env = JSON.parse(await readFile(join(dir, "release.json"), "utf8"));
    env.signed.releaseCounter = 6;
    await writeFile(join(dir, "edited.json"), JSON.stringify(env));
    const r = await releaseVerify("edited.json");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /edited\.json is NOT valid: release role \(root v1\): 0 valid signature\(s\) of 1 needed \(signature by key [0-9a-f]{16}… does not verify\)/,
    );
  });

  it("refuses a release signed by a key the root does not trust", async () => {
    const s = await releaseSign({ out: "untrusted.json", key: "outsider.key" });
    expect(s.code).toBe(0);
    const r = await releaseVerify("untrusted.json");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`key ${outsider.keyId.slice(0, 16)}… is not trusted for release`);
  });

  it("threshold signing: a second --key on the same envelope adds a signature; the same key twice counts once", async () => {
    const first = await releaseSign({ out: "two.json" });
    expect(first.stdout).toContain("two.json has 1 signature(s)");
    const below = await releaseVerify("two.json", "root-2of2.json");
    expect(below.code).not.toBe(0);
    expect(below.stderr).toContain("1 valid signature(s) of 2 needed");
    const before = await readEnvelope("two.json");
    // The same signer again replaces its signature rather than adding a second one.
    const again = await releaseSign({ out: "two.json" });
    expect(again.stdout).toMatch(/^re-signed .* two\.json has 1 signature\(s\)/);
    const second = await releaseSign({ out: "two.json", key: "rel2.key" });
    expect(second.stdout).toMatch(/^co-signed keelos 1\.0\.0 .* two\.json has 2 signature\(s\)/);
    const after = await readEnvelope("two.json");
    // The signed body, timestamps included, is kept byte for byte.
    expect(canonicalize(after.signed)).toBe(canonicalize(before.signed));
    expect(after.signatures.map((s) => s.keyId).sort()).toEqual([rel1.keyId, rel2.keyId].sort());
    const ok = await releaseVerify("two.json", "root-2of2.json");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("2 valid release signature(s) (threshold 2) under root v1");
  });

  it("several --key flags sign at once", async () => {
    const r = await releaseSign({ out: "both.json", key: ["rel1.key", "rel2.key"] });
    expect(r.code).toBe(0);
    expect((await readEnvelope("both.json")).signatures).toHaveLength(2);
  });

  it("refuses to co-sign an envelope for a different release, leaving it unchanged", async () => {
    const before = await readFile(join(dir, "release.json"), "utf8");
    const r = await releaseSign({
      out: "release.json",
      fields: ["--version", "1.0.1", "--counter", "5", "--compatible", "pc-x86_64,rpi4"],
      key: "rel2.key",
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'release.json already holds a different release (version: "1.0.0" in the file, "1.0.1" from the flags',
    );
    const img = await releaseSign({ image: "other.squashfs", out: "release.json", key: "rel2.key" });
    expect(img.code).not.toBe(0);
    expect(img.stderr).toMatch(/image\.sha256: [0-9a-f]{64} in the file, [0-9a-f]{64} from the flags/);
    expect(await readFile(join(dir, "release.json"), "utf8")).toBe(before);
  });

  it("refuses bad flags before reading the image", async () => {
    const cases: Array<[string[], string]> = [
      [["--version", "1.0", "--counter", "1", "--compatible", "pc"], "version: must be a semantic version"],
      [["--version", "1.0.0", "--counter", "-1", "--compatible", "pc"], "expected an integer ≥ 0"],
      [["--version", "1.0.0", "--counter", "1", "--compatible", "pc x86"], "compatible[0]: may contain only"],
      [["--version", "1.0.0", "--counter", "1", "--compatible", "pc", "--image-key", "../x"], "--image-key"],
      [["--version", "1.0.0", "--counter", "1", "--compatible", "pc", "--expires", "0d"], "must be positive"],
    ];
    for (const [flags, message] of cases) {
      // The image does not exist: a flag error must come first.
      const r = await releaseSign({ image: "missing.squashfs", out: "bad.json", fields: flags });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    const noImage = await releaseSign({ image: "missing.squashfs", out: "bad.json" });
    expect(noImage.stderr).toContain("missing.squashfs: cannot read image");
    await expect(stat(join(dir, "bad.json"))).rejects.toThrow();
  });
});

describe("keel release verify against roots", () => {
  beforeAll(async () => {
    // Root 2 rotates the release role to rel2 only (rel1 revoked); root 3 keeps it.
    const r2 = await rootRotate(dir, "root.json", {
      keys: "root1.pub,root2.pub",
      threshold: "1",
      releaseKeys: "rel2.pub",
      sign: "root1.key",
      out: "root.2.json",
    });
    expect(r2.stderr).toBe("");
    const r3 = await rootRotate(dir, "root.2.json", {
      keys: "root2.pub",
      threshold: "1",
      releaseKeys: "rel2.pub",
      sign: "root1.key,root2.key",
      out: "root.3.json",
    });
    expect(r3.stderr).toBe("");
    const s = await releaseSign({ out: "by-rel2.json", key: "rel2.key" });
    expect(s.stderr).toBe("");
  });

  it("a rotated-out key: valid under root 1, refused after walking to root 2", async () => {
    expect((await releaseVerify("release.json")).code).toBe(0);
    const r = await releaseVerify("release.json", "root.json", "--root-chain", "root.2.json");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("release role (root v2): 0 valid signature(s) of 1 needed");
    expect(r.stderr).toContain(`key ${rel1.keyId.slice(0, 16)}… is not trusted for release`);
  });

  it("walks the chain forward to the newest root", async () => {
    const r = await releaseVerify("by-rel2.json", "root.json", "--root-chain", "root.2.json,root.3.json");
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("(threshold 1) under root v3");
  });

  it("refuses a gap or a wrong order in the chain", async () => {
    const gap = await releaseVerify("by-rel2.json", "root.json", "--root-chain", "root.3.json");
    expect(gap.stderr).toContain("trust root version 3 cannot follow version 1: expected 2");
    const order = await releaseVerify("by-rel2.json", "root.json", "--root-chain", "root.3.json,root.2.json");
    expect(order.code).not.toBe(0);
  });

  it("refuses an expired manifest and an expired root", async () => {
    // Signed in-process with timestamps in the past: the CLI's clock is the real one.
    const expired = sign(
      makeRelease({ createdAt: "2020-01-01T00:00:00Z", expiresAt: "2020-02-01T00:00:00Z" }),
      [rel1],
    );
    await writeFile(join(dir, "expired.json"), JSON.stringify(expired));
    const r = await releaseVerify("expired.json");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/release 1\.2\.0 manifest expired at 2020-02-01T00:00:00Z \(trusted time is /);
    const root = await rootInit(dir, {
      keys: "root1.pub",
      threshold: "1",
      releaseKeys: "rel1.pub",
      sign: "root1.key",
      out: "short-root.json",
      expires: "1s",
    });
    expect(root.code).toBe(0);
    // Rewrite the root as if made long ago: re-sign an expired copy with the same root key.
    const env = JSON.parse(await readFile(join(dir, "short-root.json"), "utf8"));
    const old = sign({ ...env.signed, expiresAt: "2020-01-01T00:00:00Z" }, [key(1)]);
    await writeFile(join(dir, "expired-root.json"), JSON.stringify(old));
    const x = await releaseVerify("release.json", "expired-root.json");
    expect(x.code).not.toBe(0);
    expect(x.stderr).toContain("trust root version 1 expired at 2020-01-01T00:00:00Z");
    expect(root1.keyId).toBe(key(1).keyId);
  });

  it("refuses malformed JSON, invalid UTF-8, wrong types, missing and unknown fields, and huge files", async () => {
    const good = JSON.parse(await readFile(join(dir, "release.json"), "utf8"));
    const cases: Array<[string, string | Buffer, RegExp | string]> = [
      ["malformed.json", '{"signed":', "not valid UTF-8 JSON"],
      ["utf8.json", Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), "not valid UTF-8 JSON"],
      [
        "types.json",
        JSON.stringify({ ...good, signed: { ...good.signed, releaseCounter: "5" } }),
        "releaseCounter: Invalid input: expected number, received string",
      ],
      [
        "missing.json",
        JSON.stringify({ signed: good.signed }),
        "signatures: Invalid input: expected array, received undefined",
      ],
      [
        "unknown.json",
        JSON.stringify({ ...good, signed: { ...good.signed, channel: "beta" } }),
        'Unrecognized key: "channel"',
      ],
      ["huge.json", `{"pad":"${"x".repeat(MAX_JSON_BYTES)}"}`, `limit is ${MAX_JSON_BYTES}`],
    ];
    for (const [file, content, message] of cases) {
      await writeFile(join(dir, file), content);
      const r = await releaseVerify(file);
      expect(r.code, file).not.toBe(0);
      expect(r.stderr, file).toMatch(new RegExp(`${file.replace(".", "\\.")} is NOT valid: `));
      if (typeof message === "string") expect(r.stderr, file).toContain(message);
    }
    const badRoot = await releaseVerify("release.json", "malformed.json");
    expect(badRoot.stderr).toContain("invalid trust root malformed.json");
  });
});

describe("release command group", () => {
  it("is created once, so other groups can attach subcommands such as publish", () => {
    const program = new Command("keel");
    register(program);
    const group = releaseCommand(program);
    expect(program.commands.filter((c) => c.name() === "release")).toHaveLength(1);
    expect(group.commands.map((c) => c.name())).toEqual(["build", "sign", "diff", "verify"]);
    group.command("publish");
    expect(releaseCommand(program).commands.map((c) => c.name())).toContain("publish");
  });

  it("has --help for the group and each subcommand", async () => {
    for (const args of [["release"], ["release", "build"], ["release", "sign"], ["release", "verify"]]) {
      const r = await keel(dir, ...args, "--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: keel ${args.join(" ")}`);
    }
  });
});
