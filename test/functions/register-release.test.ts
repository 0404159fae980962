/** register-release through the real S3 and DynamoDB clients against the local cloud (s3rver, dynalite). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair } from "../../core/keys.ts";
import { parseEnv } from "../../functions/env.ts";
import { createRegisterReleaseHandler } from "../../functions/register-release/app.ts";
import type { Store } from "../../functions/store.ts";
import { startTestCloud, type TestCloud } from "./cloud.ts";
import { envFor, makeRelease, makeTrust, putBytes, putJson, s3Event } from "./fixtures.ts";

let cloud: TestCloud;
let handler: ReturnType<typeof createRegisterReleaseHandler>;
let store: Store;
const trust = makeTrust();
const image = new Uint8Array(4096).fill(7);

beforeAll(async () => {
  cloud = await startTestCloud();
  // The handler is invoked directly here (no wiring), with the environment the wiring would give it.
  handler = createRegisterReleaseHandler(parseEnv(envFor(cloud.info)));
  store = cloud.store;
});
afterAll(async () => cloud?.stop());

async function publish(version: string, envelope: unknown, imageBytes: Uint8Array | null = image) {
  if (imageBytes)
    await putBytes(cloud.s3, cloud.info.bucket, `releases/${version}/image.squashfs`, imageBytes);
  await putJson(cloud.s3, cloud.info.bucket, `releases/${version}/release.json`, envelope);
  return handler(s3Event(cloud.info.bucket, `releases/${version}/release.json`));
}

describe("register-release", () => {
  it("rejects every release while the bucket has no trust root", async () => {
    await publish("0.9.0", makeRelease({ version: "0.9.0", counter: 1, image, key: trust.key }));
    const rec = await store.getRelease("0.9.0");
    expect(rec?.status).toBe("REJECTED");
    expect(rec?.reason).toMatch(/trust\/root\.1\.json is missing/);
  });

  it("records a correctly signed release with its image as VERIFIED", async () => {
    await putJson(cloud.s3, cloud.info.bucket, "trust/root.1.json", trust.root1);
    const out = await publish("1.0.0", makeRelease({ version: "1.0.0", counter: 1, image, key: trust.key }));
    expect(out.registered).toEqual([{ version: "1.0.0", status: "VERIFIED" }]);
    const rec = await store.getRelease("1.0.0");
    expect(rec).toMatchObject({
      status: "VERIFIED",
      releaseCounter: 1,
      imageSize: 4096,
      rootVersion: 1,
      signers: [trust.key.keyId],
    });
  });

  it("looks again at a rejected manifest when the event comes again (here: root uploaded since)", async () => {
    await handler(s3Event(cloud.info.bucket, "releases/0.9.0/release.json"));
    expect((await store.getRelease("0.9.0"))?.status).toBe("VERIFIED");
  });

  it("is idempotent: the same event again changes nothing", async () => {
    const before = await store.getRelease("1.0.0");
    await handler(s3Event(cloud.info.bucket, "releases/1.0.0/release.json"));
    expect(await store.getRelease("1.0.0")).toEqual(before);
  });

  it("rejects a release signed by a key the root does not trust", async () => {
    await publish("1.1.0", makeRelease({ version: "1.1.0", counter: 2, image, key: generateKeyPair() }));
    const rec = await store.getRelease("1.1.0");
    expect(rec?.status).toBe("REJECTED");
    expect(rec?.reason).toMatch(/release role.*0 valid signature\(s\) of 1 needed/);
  });

  it("rejects a release whose signature was made over other bytes", async () => {
    const env = makeRelease({ version: "1.1.1", counter: 2, image, key: trust.key });
    const tampered = { ...env, signed: { ...env.signed, releaseCounter: 99 } };
    await publish("1.1.1", tampered);
    expect((await store.getRelease("1.1.1"))?.reason).toMatch(/does not verify/);
  });

  it("rejects a release whose image object is missing", async () => {
    await publish("1.2.0", makeRelease({ version: "1.2.0", counter: 3, image, key: trust.key }), null);
    const rec = await store.getRelease("1.2.0");
    expect(rec?.status).toBe("REJECTED");
    expect(rec?.reason).toBe("image object releases/1.2.0/image.squashfs does not exist in the bucket");
  });

  it("rejects a release whose image object has another size than the manifest states", async () => {
    await publish("1.3.0", makeRelease({ version: "1.3.0", counter: 4, image, key: trust.key, size: 5000 }));
    expect((await store.getRelease("1.3.0"))?.reason).toBe(
      "image object releases/1.3.0/image.squashfs is 4096 bytes; the manifest says 5000",
    );
  });

  it("rejects a manifest uploaded under another version's key", async () => {
    await putBytes(cloud.s3, cloud.info.bucket, "releases/1.4.0/image.squashfs", image);
    await publish("1.4.1", makeRelease({ version: "1.4.0", counter: 5, image, key: trust.key }));
    expect((await store.getRelease("1.4.1"))?.reason).toMatch(
      /manifest is for version 1.4.0 but was uploaded as releases\/1.4.1/,
    );
  });

  it("rejects a manifest that is not JSON, naming the key", async () => {
    await putBytes(
      cloud.s3,
      cloud.info.bucket,
      "releases/1.5.0/release.json",
      new TextEncoder().encode("{not json"),
    );
    await handler(s3Event(cloud.info.bucket, "releases/1.5.0/release.json"));
    expect((await store.getRelease("1.5.0"))?.reason).toMatch(
      /releases\/1.5.0\/release.json.*not valid UTF-8 JSON/,
    );
  });

  it("re-verifies when a corrected manifest replaces a rejected one", async () => {
    await publish("1.3.0", makeRelease({ version: "1.3.0", counter: 4, image, key: trust.key }));
    expect((await store.getRelease("1.3.0"))?.status).toBe("VERIFIED");
  });

  it("ignores objects that are not release manifests", async () => {
    const out = await handler(s3Event(cloud.info.bucket, "releases/1.0.0/image.squashfs"));
    expect(out.registered).toEqual([]);
  });

  it("refuses a malformed event with the field path", async () => {
    await expect(handler({ Records: [{ eventName: "ObjectCreated:Put", s3: {} }] })).rejects.toThrow(
      /Records\[0\]\.s3\.bucket/,
    );
  });

  it("lists releases newest first", async () => {
    const all = await store.listReleases();
    expect(all[0]?.version).toBe("1.3.0");
    expect(all.map((r) => r.version)).toContain("1.0.0");
  });
});
