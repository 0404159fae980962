import { describe, expect, it } from "vitest";
import { SchemaError } from "../../core/errors.ts";
import {
  buildJobDocument,
  JobDocumentSchema,
  MAX_JOB_DOCUMENT_BYTES,
  presignedPlaceholder,
} from "../../core/job-document.ts";
import { parseJsonWith, parseWith } from "../../core/parse.ts";

const valid = {
  operation: "keel.update",
  schemaVersion: 1,
  rolloutId: "r-2030-06-01",
  version: "1.2.0",
  manifestUrl: "https://bucket.s3.amazonaws.com/releases/1.2.0/release.json?X-Amz-Signature=abc",
  imageUrl: "http://127.0.0.1:4569/bucket/releases/1.2.0/image.squashfs",
};

function pathsOf(doc: unknown): string[] {
  try {
    parseWith(JobDocumentSchema, doc, "job document");
  } catch (err) {
    if (err instanceof SchemaError) return err.issues.map((i) => i.path);
    throw err;
  }
  return [];
}

describe("job document", () => {
  it("accepts a valid document and fills in the default policy and roots", () => {
    const doc = parseWith(JobDocumentSchema, valid, "job document");
    expect(doc.policy).toEqual({ healthDeadlineSeconds: 300, readBack: true });
    expect(doc.rootUrls).toEqual([]);
  });

  it("accepts an explicit policy and root URLs", () => {
    const doc = parseWith(
      JobDocumentSchema,
      { ...valid, policy: { healthDeadlineSeconds: 60, readBack: false }, rootUrls: [valid.imageUrl] },
      "job document",
    );
    expect(doc.policy.healthDeadlineSeconds).toBe(60);
  });

  it.each([
    ["operation", { operation: "keel.reboot" }],
    ["schemaVersion", { schemaVersion: 2 }],
    ["rolloutId", { rolloutId: "Has Spaces" }],
    ["rolloutId", { rolloutId: "" }],
    ["rolloutId", { rolloutId: "r".repeat(41) }],
    ["version", { version: "latest" }],
    ["manifestUrl", { manifestUrl: "file:///etc/passwd" }],
    ["imageUrl", { imageUrl: "not a url" }],
    ["imageUrl", { imageUrl: `https://x/${"a".repeat(4100)}` }],
    ["rootUrls", { rootUrls: Array.from({ length: 17 }, () => valid.imageUrl) }],
    ["policy.healthDeadlineSeconds", { policy: { healthDeadlineSeconds: 1 } }],
    ["policy.healthDeadlineSeconds", { policy: { healthDeadlineSeconds: "300" } }],
    ["policy", { policy: { healthDeadlineSeconds: 300, reboot: "never" } }],
    ["", { extra: true }],
  ])("refuses a bad %s", (path, patch) => {
    expect(pathsOf({ ...valid, ...patch })).toContain(path);
  });

  it("refuses each missing required field", () => {
    for (const field of ["operation", "schemaVersion", "rolloutId", "version", "manifestUrl", "imageUrl"]) {
      const { [field]: _gone, ...rest } = valid as Record<string, unknown>;
      expect(pathsOf(rest)).toEqual([field]);
    }
  });

  it("refuses an unresolved presigned placeholder (the device must see a real URL)", () => {
    const placeholder = presignedPlaceholder("us-east-1", "bucket", "releases/1.2.0/image.squashfs");
    expect(pathsOf({ ...valid, imageUrl: placeholder })).toEqual(["imageUrl"]);
  });

  it("refuses malformed and oversized JSON text", () => {
    expect(() => parseJsonWith(JobDocumentSchema, "{", "job document")).toThrow(/not valid UTF-8 JSON/);
    expect(() =>
      parseJsonWith(JobDocumentSchema, JSON.stringify({ ...valid, pad: "x".repeat(2 * 1024 * 1024) }), "job"),
    ).toThrow(/limit is/);
  });

  it("buildJobDocument writes placeholders that, once presigned, parse; and fits the IoT size limit", () => {
    const doc = buildJobDocument({
      rolloutId: "r1",
      version: "1.2.0",
      region: "eu-west-1",
      bucket: "keel-releases",
      manifestKey: "releases/1.2.0/release.json",
      imageKey: "releases/1.2.0/image.squashfs",
      rootKeys: ["trust/root.2.json"],
      policy: { healthDeadlineSeconds: 120 },
    });
    // The literal AWS IoT placeholder syntax, not a template string.
    expect(doc.imageUrl).toBe(
      `\${aws:iot:s3-presigned-url:https://s3.eu-west-1.amazonaws.com/keel-releases/releases/1.2.0/image.squashfs}`,
    );
    expect(doc.policy).toEqual({ healthDeadlineSeconds: 120, readBack: true });
    expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThan(MAX_JOB_DOCUMENT_BYTES);
    // What a device receives after AWS IoT replaced each placeholder with a URL.
    const delivered = JSON.parse(
      JSON.stringify(doc).replace(/\$\{aws:iot:s3-presigned-url:([^}]+)\}/g, "$1?X-Amz-Signature=x"),
    );
    expect(parseWith(JobDocumentSchema, delivered, "job document").rootUrls).toHaveLength(1);
  });
});
