import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { KeyPair } from "../../core/keys.ts";
import type { RootSigned } from "../../core/schemas.ts";
import { parseRootEnvelope, verifyInitialRoot, verifyRootUpdate } from "../../core/verify.ts";
import { keel, rootInit, rootRotate, tempDir, writeKey } from "./helpers.ts";

let dir: string;
let a: KeyPair;
let b: KeyPair;
let c: KeyPair;
let d: KeyPair;
let rel: KeyPair;

beforeAll(async () => {
  dir = await tempDir("root");
  [a, b, c, d, rel] = await Promise.all([
    writeKey(dir, "a", 1),
    writeKey(dir, "b", 2),
    writeKey(dir, "c", 3),
    writeKey(dir, "d", 4),
    writeKey(dir, "rel", 5),
  ]);
});

/** One root key, a, signing alone: the base of the flag tests. */
const SOLO = { keys: "a.pub", threshold: "1", sign: "a.key" };

async function readRoot(file: string) {
  return parseRootEnvelope(JSON.parse(await readFile(join(dir, file), "utf8")));
}

async function missing(file: string): Promise<boolean> {
  return stat(join(dir, file)).then(
    () => false,
    () => true,
  );
}

describe("keel root init", () => {
  it("writes root v1 (2-of-3) whose release role defaults to the root keys and threshold", async () => {
    const before = Date.now();
    const r = await rootInit(dir, {
      keys: "a.pub,b.pub,c.pub",
      threshold: "2",
      sign: "a.key,b.key",
      out: "root.json",
      expires: "30d",
    });
    const after = Date.now();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote root\.json: trust root v1: root 2-of-3, release 2-of-3/);
    const env = await readRoot("root.json");
    expect(verifyInitialRoot(env, { now: new Date() })).toEqual(env.signed);
    expect(env.signed.version).toBe(1);
    expect(env.signed.roles.root).toEqual({ keyIds: [a.keyId, b.keyId, c.keyId], threshold: 2 });
    expect(env.signed.roles.release).toEqual(env.signed.roles.root);
    expect(env.signatures.map((s) => s.keyId)).toEqual([a.keyId, b.keyId]);
    // --expires 30d from the moment it ran (bounds taken around the run, to the second).
    const exp = Date.parse(env.signed.expiresAt);
    expect(exp).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 30 * 86400_000);
    expect(exp).toBeLessThanOrEqual(after + 30 * 86400_000);
  });

  it("takes separate release keys, with threshold 1 unless given", async () => {
    const r1 = await rootInit(dir, {
      keys: "a.pub",
      threshold: "1",
      releaseKeys: "rel.pub,d.pub",
      sign: "a.key",
      out: "root-rel.json",
    });
    expect(r1.code).toBe(0);
    expect((await readRoot("root-rel.json")).signed.roles.release).toEqual({
      keyIds: [rel.keyId, d.keyId],
      threshold: 1,
    });
    const r2 = await rootInit(dir, {
      keys: "a.pub",
      threshold: "1",
      releaseKeys: ["rel.pub", "d.pub"],
      releaseThreshold: "2",
      sign: "a.key",
      out: "root-rel2.json",
    });
    expect(r2.code).toBe(0);
    expect((await readRoot("root-rel2.json")).signed.roles.release.threshold).toBe(2);
  });

  it("refuses to write a root that does not meet its own root threshold", async () => {
    const r = await rootInit(dir, {
      keys: "a.pub,b.pub,c.pub",
      threshold: "2",
      sign: "a.key",
      out: "short.json",
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("root role (root v1): 1 valid signature(s) of 2 needed");
    expect(await missing("short.json")).toBe(true);
  });

  it("signatures by keys outside the root role do not count", async () => {
    const r = await rootInit(dir, {
      keys: "a.pub,b.pub",
      threshold: "2",
      sign: "a.key,d.key",
      out: "outsider.json",
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /1 valid signature\(s\) of 2 needed \(key [0-9a-f]{16}… is not trusted for root\)/,
    );
    expect(await missing("outsider.json")).toBe(true);
  });

  it("refuses a threshold above the number of keys", async () => {
    const r = await rootInit(dir, { ...SOLO, threshold: "2", out: "x.json" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("roles.root.threshold: threshold 2 is more than the 1 key(s) listed");
  });

  it("refuses bad flag values and bad key files with a specific message", async () => {
    const t = await rootInit(dir, { ...SOLO, threshold: "1.5", out: "x.json" });
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain("expected an integer ≥ 1");
    const e = await rootInit(dir, { ...SOLO, out: "x.json", expires: "soon" });
    expect(e.stderr).toContain('invalid duration "soon"');
    // A secret key given where a public key belongs.
    const k = await rootInit(dir, { ...SOLO, keys: "a.key", out: "x.json" });
    expect(k.code).not.toBe(0);
    expect(k.stderr).toContain("invalid public key file a.key");
    const n = await rootInit(dir, { ...SOLO, keys: "nope.pub", out: "x.json" });
    expect(n.stderr).toContain("nope.pub: cannot read");
    expect(await missing("x.json")).toBe(true);
  });

  it("does not overwrite an existing root unless --force", async () => {
    await writeFile(join(dir, "exists.json"), "keep");
    const r = await rootInit(dir, { ...SOLO, out: "exists.json" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("exists.json: already exists; refusing to overwrite it (use --force)");
    expect(await readFile(join(dir, "exists.json"), "utf8")).toBe("keep");
    const f = await rootInit(dir, { ...SOLO, out: "exists.json", force: true });
    expect(f.code).toBe(0);
    expect((await readRoot("exists.json")).signed.version).toBe(1);
  });
});

describe("keel root rotate", () => {
  let root1: RootSigned;
  beforeAll(async () => {
    const r = await rootInit(dir, {
      keys: "a.pub,b.pub,c.pub",
      threshold: "2",
      releaseKeys: "rel.pub",
      sign: "a.key,c.key",
      out: "r1.json",
    });
    expect(r.code).toBe(0);
    root1 = (await readRoot("r1.json")).signed;
  });

  it("writes version N+1 signed by thresholds of the old and the new root keys", async () => {
    // Revoke c, add d: a+b are in both roots (2 of old, 2 of new).
    const r = await rootRotate(dir, "r1.json", {
      keys: "a.pub,b.pub,d.pub",
      threshold: "2",
      releaseKeys: "rel.pub",
      sign: "a.key,b.key",
      out: "r2.json",
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("trust root v2: root 2-of-3, release 1-of-1");
    const env = await readRoot("r2.json");
    expect(verifyRootUpdate(root1, env).version).toBe(2);
    expect(env.signed.keys[c.keyId]).toBeUndefined();
    // And it chains on: v3 from v2.
    const r3 = await rootRotate(dir, "r2.json", {
      keys: "b.pub,d.pub",
      threshold: "2",
      sign: "b.key,d.key",
      out: "r3.json",
    });
    expect(r3.code).toBe(0);
    expect((await readRoot("r3.json")).signed.version).toBe(3);
  });

  it.each([
    {
      // a+c meet root 1's threshold, but c is not in the new root → 1 of 2 new.
      only: "old keys sign (new threshold not met)",
      keys: "a.pub,d.pub",
      sign: "a.key,c.key",
      out: "old-only.json",
      message: "root role of trust root v2 (new keys): 1 valid signature(s) of 2 needed",
    },
    {
      only: "new keys sign (old threshold not met)",
      keys: "d.pub,rel.pub",
      sign: "d.key,rel.key",
      out: "new-only.json",
      message: "root role of trust root v1 (old keys): 0 valid signature(s) of 2 needed",
    },
  ])("refuses when only $only", async ({ keys, sign, out, message }) => {
    const r = await rootRotate(dir, "r1.json", { keys, threshold: "2", sign, out });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(await missing(out)).toBe(true);
  });

  it("refuses to rotate from a root that is not genuine", async () => {
    const env = JSON.parse(await readFile(join(dir, "r1.json"), "utf8"));
    env.signed.roles.root.threshold = 1;
    await writeFile(join(dir, "tampered.json"), JSON.stringify(env));
    const r = await rootRotate(dir, "tampered.json", { ...SOLO, out: "t2.json" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("root role of tampered.json");
    expect(r.stderr).toContain("does not verify");
    expect(await missing("t2.json")).toBe(true);
  });

  it("has --help naming both thresholds", async () => {
    const r = await keel(dir, "root", "rotate", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--from <file>");
    expect(r.stdout.replace(/\s+/g, " ")).toContain("threshold of the old root keys AND of the new ones");
  });
});
