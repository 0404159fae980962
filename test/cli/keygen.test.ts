import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parsePublicKeyFile, parseSecretKeyFile } from "../../core/keys.ts";
import { keel, tempDir } from "./helpers.ts";

describe("keel keygen", () => {
  it("writes NAME.key (0600) and NAME.pub and prints the keyId", async () => {
    // Prepare
    const dir = await tempDir("keygen");
    // Act
    const r = await keel(dir, "keygen", "--out", "keys", "--name", "alice");
    // Assess
    expect(r.code).toBe(0);
    const keyId = r.stdout.trim();
    expect(keyId).toMatch(/^[0-9a-f]{64}$/);
    const secretPath = join(dir, "keys", "alice.key");
    expect((await stat(secretPath)).mode & 0o777).toBe(0o600);
    const secret = parseSecretKeyFile(await readFile(secretPath, "utf8"), "alice.key");
    const pub = parsePublicKeyFile(await readFile(join(dir, "keys", "alice.pub"), "utf8"), "alice.pub");
    expect(secret.keyId).toBe(keyId);
    expect(pub.keyId).toBe(keyId);
    expect(createHash("sha256").update(pub.publicKey).digest("hex")).toBe(keyId);
    // The .pub holds no secret.
    expect(await readFile(join(dir, "keys", "alice.pub"), "utf8")).not.toContain("seed");
  });

  it("gives a different key each time", async () => {
    const dir = await tempDir("keygen2");
    const a = await keel(dir, "keygen", "--out", ".", "--name", "a");
    const b = await keel(dir, "keygen", "--out", ".", "--name", "b");
    expect(a.stdout).not.toBe(b.stdout);
  });

  it("never overwrites an existing key", async () => {
    const dir = await tempDir("keygen3");
    await keel(dir, "keygen", "--out", ".", "--name", "ops");
    const before = await readFile(join(dir, "ops.key"), "utf8");
    const r = await keel(dir, "keygen", "--out", ".", "--name", "ops");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("ops.key: already exists; refusing to overwrite it");
    expect(await readFile(join(dir, "ops.key"), "utf8")).toBe(before);
  });

  it("refuses names that are paths, writing nothing", async () => {
    const dir = await tempDir("keygen4");
    const r = await keel(dir, "keygen", "--out", ".", "--name", "../evil");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--name "../evil"');
    await expect(stat(join(dir, "..", "evil.key"))).rejects.toThrow();
  });

  it("has --help and requires its options", async () => {
    const dir = await tempDir("keygen5");
    const help = await keel(dir, "keygen", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--out <dir>");
    expect(help.stdout).toContain("--name <name>");
    const missing = await keel(dir, "keygen", "--out", ".");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("required option '--name <name>' not specified");
  });
});
