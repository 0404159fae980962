import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExpiredError, ThresholdError } from "../../core/errors.ts";
import { generateKeyPair, publicKeyEntry, signValue } from "../../core/keys.ts";
import type { RootSigned } from "../../core/schemas.ts";
import { verifyRelease } from "../../core/verify.ts";
import type { AgentClock } from "../../device/clock.ts";
import { TrustStore } from "../../device/trust.ts";
import { makeSigners, randomImage, signRelease } from "./helpers/release.ts";

describe("TrustStore", () => {
  let dir: string;
  let now = Date.now();
  const clock: AgentClock = { now: () => now, sleep: async () => {} };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-trust-"));
    now = Date.now();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("walks forward to a newer root offered by a job, persists it and keeps using it", async () => {
    // Prepare: root 2 rotates the release key; signed by root 1's root key and its own
    const s = makeSigners();
    await writeFile(join(dir, "root.json"), JSON.stringify(s.root));
    const newRelease = generateKeyPair();
    const signed2: RootSigned = {
      ...s.root.signed,
      version: 2,
      keys: {
        [s.rootKey.keyId]: publicKeyEntry(s.rootKey.publicKey),
        [newRelease.keyId]: publicKeyEntry(newRelease.publicKey),
      },
      roles: { root: s.root.signed.roles.root, release: { keyIds: [newRelease.keyId], threshold: 1 } },
    };
    const root2 = { signed: signed2, signatures: [signValue(signed2, s.rootKey)] };
    const store = new TrustStore(join(dir, "root.json"), join(dir, "state"), clock);
    const manifest = signRelease(s, {
      version: "1.1.0",
      releaseCounter: 2,
      image: randomImage(10),
      signWith: newRelease,
    });
    // Act / Assess: root 1 does not trust the new key; after the walk, root 2 does, also on a later start
    expect(() => verifyRelease(manifest, s.root.signed, { now: new Date(now) })).toThrow(ThresholdError);
    const current = await store.currentRoot([root2]);
    expect(current.version).toBe(2);
    expect(await readdir(join(dir, "state/trust"))).toContain("root.2.json");
    const again = await new TrustStore(join(dir, "root.json"), join(dir, "state"), clock).currentRoot();
    expect(again.version).toBe(2);
    expect(verifyRelease(manifest, again, await store.trustedTime()).release.version).toBe("1.1.0");
  });

  it("refuses a newer root not signed by the current root keys, and stores nothing", async () => {
    const s = makeSigners();
    await writeFile(join(dir, "root.json"), JSON.stringify(s.root));
    const rogue = generateKeyPair();
    const signed2: RootSigned = {
      ...s.root.signed,
      version: 2,
      keys: { [rogue.keyId]: publicKeyEntry(rogue.publicKey) },
      roles: {
        root: { keyIds: [rogue.keyId], threshold: 1 },
        release: { keyIds: [rogue.keyId], threshold: 1 },
      },
    };
    const store = new TrustStore(join(dir, "root.json"), join(dir, "state"), clock);
    await expect(
      store.currentRoot([{ signed: signed2, signatures: [signValue(signed2, rogue)] }]),
    ).rejects.toThrow(ThresholdError);
    await expect(readdir(join(dir, "state/trust"))).rejects.toThrow();
  });

  it("remembers the latest verified time so a clock stepping back cannot revive an expired manifest", async () => {
    const s = makeSigners();
    await writeFile(join(dir, "root.json"), JSON.stringify(s.root));
    const store = new TrustStore(join(dir, "root.json"), join(dir, "state"), clock);
    const manifest = signRelease(s, { version: "1.1.0", releaseCounter: 2, image: randomImage(10) });
    const expiry = Date.parse(manifest.signed.expiresAt);
    await store.recordTime(new Date(expiry + 1000));
    now = expiry - 86400_000; // the clock stepped back a day
    const root = await store.currentRoot().catch((e: unknown) => e);
    // The root expires a year out like the manifest in these fixtures: both are past the remembered time.
    expect(root).toBeInstanceOf(ExpiredError);
  });
});
