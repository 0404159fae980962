/**
 * The release side of delta updates: `keel release build` appends the chunk index, `sign` signs it (and
 * adds it to an image built without one, but never changes an image when co-signing), `--no-chunks`,
 * `keel release diff`, the manifest's rule for `image.chunks`, and `keel rollout status`'s bytes saved.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, diffImages, signRelease } from "../../cli/commands/release.ts";
import { transferLine, transferTotals } from "../../cli/transfer-summary.ts";
import { decodeSignedIndex } from "../../core/chunk-index.ts";
import { ReleaseSignedSchema } from "../../core/schemas.ts";
import { writeKey } from "../cli/helpers.ts";
import { buildPair, type ImagePair } from "./fixtures.ts";

let dir: string;
let pair: ImagePair;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keel-delta-release-"));
  pair = await buildPair(dir);
  await writeKey(dir, "rel", 7);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const flags = (out: string, extra: object = {}) => ({
  version: "1.1.0",
  counter: 2,
  compatible: ["rpi4"],
  key: [join(dir, "rel.key")],
  out: join(dir, out),
  os: "keelos",
  ...extra,
});

describe("release build and sign", () => {
  it("build appends the index and stays reproducible; sign signs exactly that tail", async () => {
    // Act
    await buildImage(join(dir, "new-tree"), join(dir, "again.squashfs"));
    const r = await signRelease(pair.newImage, flags("signed.json"));
    // Assess
    const bytes = await readFile(pair.newImage);
    expect((await readFile(join(dir, "again.squashfs"))).equals(bytes)).toBe(true);
    const chunks = r.envelope.signed.image.chunks;
    expect(chunks).toEqual(pair.ref);
    if (!chunks) throw new Error("no chunks");
    const index = decodeSignedIndex(bytes.subarray(chunks.offset), chunks);
    expect(index.covered).toBe(chunks.offset);
    expect(r.envelope.signed.image.size).toBe(bytes.length);
  });

  it("sign adds the index to an image built without one; --no-chunks leaves it out", async () => {
    const plain = join(dir, "plain.squashfs");
    await buildImage(join(dir, "new-tree"), plain, { chunks: false });
    const before = await readFile(plain);
    const none = await signRelease(plain, flags("none.json", { chunks: false }));
    expect(none.envelope.signed.image.chunks).toBeUndefined();
    expect((await readFile(plain)).equals(before)).toBe(true);
    const r = await signRelease(plain, flags("added.json"));
    expect(r.envelope.signed.image.chunks?.offset).toBe(before.length);
    expect((await readFile(plain)).equals(await readFile(pair.newImage))).toBe(true);
  });

  it("co-signing refuses an image whose index tail changed, and leaves the file as it was", async () => {
    const image = join(dir, "cosign.squashfs");
    await writeFile(image, await readFile(pair.newImage));
    await signRelease(image, flags("cosign.json"));
    const spoiled = Buffer.from(await readFile(image));
    spoiled[spoiled.length - 1] = (spoiled[spoiled.length - 1] as number) ^ 1;
    await writeFile(image, spoiled);
    await expect(signRelease(image, flags("cosign.json"))).rejects.toThrow(/does not end in its chunk index/);
    expect((await readFile(image)).equals(spoiled)).toBe(true);
  });

  it("the manifest refuses chunks that are not the image's last bytes", () => {
    const image = {
      key: "releases/1.1.0/image.squashfs",
      size: 1000,
      sha256: "a".repeat(64),
      format: "squashfs",
      chunks: { offset: 900, size: 50, sha256: "b".repeat(64) },
    };
    const signed = {
      _type: "release",
      schemaVersion: 1,
      os: "keelos",
      version: "1.1.0",
      releaseCounter: 2,
      compatible: ["rpi4"],
      image,
      createdAt: "2026-01-01T00:00:00Z",
      expiresAt: "2027-01-01T00:00:00Z",
    };
    const r = ReleaseSignedSchema.safeParse(signed);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/last bytes of the image/);
    expect(ReleaseSignedSchema.safeParse({ ...signed, image: { ...image, chunks: undefined } }).success).toBe(
      true,
    );
  });
});

describe("keel release diff", () => {
  it("predicts what a node running OLD fetches for NEW", async () => {
    const d = await diffImages(pair.oldImage, pair.newImage);
    const size = (await readFile(pair.newImage)).length;
    expect(d).toMatchObject({ carried: true, imageBytes: size });
    expect(d.fetchBytes).toBeLessThan(size * 0.25);
    expect(d.fetchBytes).toBeGreaterThan(pair.ref.size);
    expect(d.missingChunks).toBeGreaterThan(0);
    const same = await diffImages(pair.newImage, pair.newImage);
    expect(same.fetchBytes).toBe(pair.ref.size);
    expect(same.requests).toBe(1);
  });
});

describe("keel rollout status: bytes saved", () => {
  const device = (statusDetails: Record<string, string>) => ({
    thingName: "n",
    wave: 1,
    status: "SUCCEEDED",
    statusDetails,
    at: 0,
  });
  it("sums what devices reported and ignores malformed details", () => {
    const devices = [
      device({ transfer: "delta", bytesFetched: "1000000", imageBytes: "10000000" }),
      device({ transfer: "full", bytesFetched: "10000000", imageBytes: "10000000" }),
      device({ transfer: "delta", bytesFetched: "-5", imageBytes: "10000000" }),
      device({ transfer: "delta", bytesFetched: "1e9", imageBytes: "10000000" }),
      device({ phase: "committed" }),
    ];
    expect(transferTotals(devices)).toEqual({ devices: 2, delta: 1, fetched: 11e6, imageBytes: 20e6 });
    expect(transferLine(devices)).toBe(
      "  transfer: 1 of 2 device(s) by delta — fetched 11.0 MB of 20.0 MB, 9.0 MB saved (45 %)",
    );
    expect(transferLine([device({})])).toBeNull();
  });
});
