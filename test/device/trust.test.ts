import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkAcceptance } from "../../core/acceptance.ts";
import { ExpiredError, ThresholdError } from "../../core/errors.ts";
import { generateKeyPair, publicKeyEntry, signValue } from "../../core/keys.ts";
import type { ReleaseSigned, RootSigned } from "../../core/schemas.ts";
import { verifyRelease } from "../../core/verify.ts";
import { type AgentClock, systemClock } from "../../device/clock.ts";
import { TrustStore } from "../../device/trust.ts";
import { makeNode } from "./helpers/node.ts";
import { makeSigners, randomImage, type Signers, signRelease } from "./helpers/release.ts";

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

  it("remembers the latest accepted time so a clock stepping back cannot revive an expired manifest", async () => {
    const s = makeSigners();
    await writeFile(join(dir, "root.json"), JSON.stringify(s.root));
    const store = new TrustStore(join(dir, "root.json"), join(dir, "state"), clock);
    const manifest = signRelease(s, { version: "1.1.0", releaseCounter: 2, image: randomImage(10) });
    const expiry = Date.parse(manifest.signed.expiresAt);
    // An accepted release created just after the expiry, seen while the clock read that time.
    now = expiry + 1000;
    const later = dated(s, manifest, new Date(expiry + 1000).toISOString());
    await store.advanceTime(accept(later.signed));
    now = expiry - 86400_000; // the clock stepped back a day
    const root = await store.currentRoot().catch((e: unknown) => e);
    // The root expires a year out like the manifest in these fixtures: both are past the remembered time.
    expect(root).toBeInstanceOf(ExpiredError);
  });

  it("moves trusted time forward only, and never past the clock plus the bound", async () => {
    const s = makeSigners();
    const store = new TrustStore(join(dir, "root.json"), join(dir, "state"), clock, {
      maxTimeAheadMs: 3600_000,
    });
    const m = signRelease(s, { version: "1.1.0", releaseCounter: 2, image: randomImage(10) });
    const at = (iso: string) => accept(dated(s, m, iso).signed);
    now = Date.parse("2030-01-01T00:00:00Z");
    expect(await store.advanceTime(at("2099-01-01T00:00:00Z"))).toEqual(new Date("2030-01-01T01:00:00Z"));
    // An older createdAt changes nothing; a newer one within the bound is taken as it is.
    expect(await store.advanceTime(at("2029-01-01T00:00:00Z"))).toEqual(new Date("2030-01-01T01:00:00Z"));
    now = Date.parse("2030-02-01T00:00:00Z");
    expect(await store.advanceTime(at("2030-02-01T00:30:00Z"))).toEqual(new Date("2030-02-01T00:30:00Z"));
    expect((await store.trustedTime()).latestKnown).toEqual(new Date("2030-02-01T00:30:00Z"));
  });
});

/** The same release re-signed with another createdAt. */
function dated(s: Signers, m: ReturnType<typeof signRelease>, createdAt: string) {
  const signed = { ...m.signed, createdAt: createdAt.replace(/\.\d+Z$/, "Z") };
  return { signed, signatures: [signValue(signed, s.releaseKey)] };
}

const accept = (release: ReleaseSigned) => checkAcceptance({ release, installed: null, hardware: "rpi4" });

describe("trusted time through the install pipeline (issue 11 item 1)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-trust-time-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a signed manifest dated 2099 for other hardware is refused and moves trusted time not at all", async () => {
    // Prepare: a node, a hostile-but-signed manifest for other hardware, then an ordinary release
    const s = makeSigners();
    const node = await makeNode({ dir, signers: s });
    const image = randomImage(4096);
    await writeFile(join(dir, "image.squashfs"), image);
    const m = signRelease(s, { version: "1.1.0", releaseCounter: 2, image, compatible: ["other-board"] });
    await writeFile(join(dir, "future.json"), JSON.stringify(dated(s, m, "2099-01-01T00:00:00Z")));
    await writeFile(
      join(dir, "good.json"),
      JSON.stringify(signRelease(s, { version: "1.1.0", releaseCounter: 2, image })),
    );
    const trust = new TrustStore(node.config.trustRoot, node.config.stateDir, systemClock());
    // Act
    const refused = await node
      .agent()
      .installStandalone(join(dir, "future.json"), join(dir, "image.squashfs"));
    // Assess: refused, trusted time untouched, and the next release installs
    expect(refused.reason).toMatch(/hardware rpi4 is not in the release's compatible list/);
    expect((await trust.trustedTime()).latestKnown).toBeUndefined();
    const ok = await node.agent().installStandalone(join(dir, "good.json"), join(dir, "image.squashfs"));
    expect(ok).toEqual({ state: "Rebooting", reason: null });
  });

  it("an accepted manifest dated 2099 moves trusted time only to the node's clock plus the configured bound", async () => {
    const s = makeSigners();
    const node = await makeNode({ dir, signers: s, config: { trustedTime: { maxAheadHours: 2 } } });
    const image = randomImage(4096);
    await writeFile(join(dir, "image.squashfs"), image);
    const m = signRelease(s, { version: "1.1.0", releaseCounter: 2, image });
    await writeFile(join(dir, "future.json"), JSON.stringify(dated(s, m, "2099-01-01T00:00:00Z")));
    const fixed = Date.now();
    const clock: AgentClock = { ...systemClock(), now: () => fixed };
    const r = await node
      .agent({ clock })
      .installStandalone(join(dir, "future.json"), join(dir, "image.squashfs"));
    expect(r.state).toBe("Rebooting");
    const trust = new TrustStore(node.config.trustRoot, node.config.stateDir, clock);
    expect((await trust.trustedTime()).latestKnown).toEqual(new Date(fixed + 2 * 3600_000));
  });
});
