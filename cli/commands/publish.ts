/**
 * `keel release publish IMAGE release.json`: upload a signed release to the release bucket (multipart,
 * with a progress bar), then wait for register-release to record it VERIFIED, or print why it was not.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { Upload } from "@aws-sdk/lib-storage";
import type { Command } from "commander";
import { checkImageDigest } from "../../core/acceptance.ts";
import { describeError, KeelError } from "../../core/errors.ts";
import { parseJsonText } from "../../core/parse.ts";
import { parseReleaseEnvelope, parseRootEnvelope } from "../../core/verify.ts";
import type { ReleaseRecord } from "../../functions/store.ts";
import {
  ApiClient,
  addTargetOptions,
  type CloudTarget,
  resolveTarget,
  type TargetFlags,
} from "../api-client.ts";
import { CliFileError } from "../errors.ts";
import { hashFileWithProgress } from "../hash.ts";
import { collectList, durationOption, readSmallFile } from "../inputs.ts";
import { progressBar } from "../progress.ts";
import { releaseCommand } from "./release.ts";
import { listReleases } from "./releases.ts";

/** The release came back REJECTED (or never came back); the message carries register-release's reason. */
export class PublishError extends KeelError {
  override name = "PublishError";
}

export function s3For(target: CloudTarget): S3Client {
  if (target.local) {
    return new S3Client({
      region: target.region,
      endpoint: target.local.s3,
      forcePathStyle: true,
      credentials: target.credentials,
    });
  }
  return new S3Client({ region: target.region, credentials: fromNodeProviderChain() });
}

const PART_SIZE = 8 * 1024 * 1024;

async function uploadRoot(s3: S3Client, bucket: string, path: string): Promise<string> {
  const bytes = await readSmallFile(path);
  const root = parseRootEnvelope(parseJsonText(bytes, path), `trust root ${path}`);
  const key = `trust/root.${root.signed.version}.json`;
  // A root already in the bucket is never replaced: devices and register-release have walked through it.
  const existing = await s3
    .send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    .then((r) => r.Body?.transformToByteArray())
    .catch((err: unknown) => {
      if (err instanceof Error && (err.name === "NoSuchKey" || err.name === "NotFound")) return undefined;
      throw err;
    });
  if (existing) {
    if (Buffer.from(existing).equals(Buffer.from(bytes))) return `${key} (already there)`;
    throw new CliFileError(path, `the bucket already has a different ${key}; roots are never replaced`);
  }
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentType: "application/json" }),
  );
  return key;
}

export interface PublishFlags extends TargetFlags {
  root?: string[];
  wait?: boolean;
  waitTimeout?: number;
}

export async function publishRelease(
  image: string,
  manifestPath: string,
  flags: PublishFlags,
  out: (line: string) => void,
): Promise<ReleaseRecord | undefined> {
  const manifestBytes = await readSmallFile(manifestPath);
  // Shape only: the cloud verifies the signatures against its trust root (register-release).
  const env = parseReleaseEnvelope(
    parseJsonText(manifestBytes, manifestPath),
    `release manifest ${manifestPath}`,
  );
  const release = env.signed;
  const digest = await hashFileWithProgress(image, "checking image");
  try {
    checkImageDigest(release.image, digest);
  } catch (err) {
    throw new CliFileError(image, `is not the image ${manifestPath} signs: ${describeError(err)}`, {
      cause: err,
    });
  }
  const target = await resolveTarget(flags);
  const s3 = s3For(target);
  try {
    for (const r of flags.root ?? []) out(`uploaded ${await uploadRoot(s3, target.bucket, r)}`);
    const bar = progressBar(`uploading ${release.image.key}`, digest.size);
    const upload = new Upload({
      client: s3,
      params: { Bucket: target.bucket, Key: release.image.key, Body: createReadStream(image) },
      partSize: PART_SIZE,
      queueSize: 4,
    });
    upload.on("httpUploadProgress", (p) => bar.update(p.loaded ?? 0));
    try {
      await upload.done();
    } finally {
      bar.stop();
    }
    out(`uploaded ${release.image.key} (${digest.size} bytes)`);
    const manifestKey = `releases/${release.version}/release.json`;
    await s3.send(
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: manifestKey,
        Body: manifestBytes,
        ContentType: "application/json",
      }),
    );
    out(`uploaded ${manifestKey}`);
  } finally {
    s3.destroy();
  }
  if (flags.wait === false) return undefined;
  const sha = createHash("sha256").update(manifestBytes).digest("hex");
  const api = new ApiClient(target);
  const deadline = Date.now() + (flags.waitTimeout ?? 120) * 1000;
  for (;;) {
    // Only the record of these exact manifest bytes counts, not an older upload of the same version.
    const rec = (await listReleases(api)).find(
      (r) => r.version === release.version && r.manifestSha256 === sha,
    );
    if (rec?.status === "VERIFIED") {
      out(
        `release ${rec.version} VERIFIED (counter ${rec.releaseCounter}, signed by ${rec.signers?.length ?? 0} key(s) under root v${rec.rootVersion})`,
      );
      return rec;
    }
    if (rec?.status === "REJECTED")
      throw new PublishError(`release ${rec.version} was REJECTED: ${rec.reason ?? "no reason given"}`);
    if (Date.now() > deadline) {
      throw new PublishError(
        `release ${release.version} was uploaded but not registered within ${flags.waitTimeout ?? 120}s; check \`keel releases\` later`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function register(program: Command): void {
  addTargetOptions(
    releaseCommand(program)
      .command("publish")
      .description("upload a signed release (image + manifest) and wait until the cloud has VERIFIED it")
      .argument("<image>", "the SquashFS image the manifest signs")
      .argument("<manifest>", "release.json (signed envelope)")
      .option(
        "--root <files>",
        "trust root file(s) to upload first (trust/root.<n>.json), comma-separated",
        collectList,
      )
      .option("--no-wait", "return after the upload, without waiting for VERIFIED")
      .option("--wait-timeout <duration>", "how long to wait for the verdict (default 120s)", durationOption),
  ).action(async (image: string, manifest: string, flags: PublishFlags) => {
    await publishRelease(image, manifest, flags, (l) => process.stdout.write(`${l}\n`));
  });
}
