/**
 * register-release: an S3 ObjectCreated event on `releases/<version>/release.json` → verify the envelope
 * against the bucket's current trust root, check the image object, record VERIFIED or REJECTED with the
 * reason (docs/releases.md). Idempotent: the same manifest bytes give the same record, written once.
 */
import { createHash } from "node:crypto";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { describeError, KeelError } from "../../core/errors.ts";
import { parseJsonText } from "../../core/parse.ts";
import type { RootSigned } from "../../core/schemas.ts";
import { parseRootEnvelope, verifyRelease, verifyRole, walkRootChain } from "../../core/verify.ts";
import { awsErrorName } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ReleaseStatus } from "../rollout-api/contract.ts";
import type { ReleaseRecord, Store } from "../store.ts";

export const MANIFEST_KEY = /^releases\/([^/]+)\/release\.json$/;
const ROOT_KEY = /^trust\/root\.(\d+)\.json$/;

/** Why a release is refused, in words the operator sees in `keel releases`. */
export class ReleaseRejection extends KeelError {
  override name = "ReleaseRejection";
}

export interface RegisterDeps {
  s3: S3Client;
  store: Store;
  bucket: string;
  now: () => number;
  log: Logger;
}

async function readObject(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!r.Body) throw new ReleaseRejection(`s3://${bucket}/${key} has no body`);
  return r.Body.transformToByteArray();
}

/** The newest trust root, reached from root.1.json by core's chain rules (root N+1 signed by N and itself). */
export async function currentTrustRoot(s3: S3Client, bucket: string, now: number): Promise<RootSigned> {
  const versions: number[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: "trust/root.", ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) {
      const m = ROOT_KEY.exec(o.Key ?? "");
      if (m?.[1]) versions.push(Number(m[1]));
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  versions.sort((a, b) => a - b);
  if (versions[0] !== 1)
    throw new ReleaseRejection(`no trust root in the bucket: trust/root.1.json is missing`);
  const max = versions[versions.length - 1] ?? 1;
  const load = async (n: number) =>
    parseJsonText(await readObject(s3, bucket, `trust/root.${n}.json`), `trust/root.${n}.json`);
  const first = parseRootEnvelope(await load(1), "trust/root.1.json");
  // Root 1 is the anchor the operator put in the bucket; its own root threshold must sign it. Its expiry
  // is not checked here: only the root the walk ends on must be current (TUF §5.3, core's walkRootChain).
  verifyRole(first.signed, first.signatures, first.signed, "root");
  const chain: unknown[] = [];
  for (let n = 2; n <= max; n++) {
    if (!versions.includes(n))
      throw new ReleaseRejection(`trust root chain has a gap: trust/root.${n}.json is missing`);
    chain.push(await load(n));
  }
  return walkRootChain(first.signed, chain, { now: new Date(now) });
}

export async function registerRelease(deps: RegisterDeps, key: string): Promise<ReleaseRecord | null> {
  const m = MANIFEST_KEY.exec(key);
  if (!m?.[1]) {
    deps.log.info("ignored object", { key });
    return null;
  }
  const keyVersion = m[1];
  const bytes = await readObject(deps.s3, deps.bucket, key);
  const manifestSha256 = createHash("sha256").update(bytes).digest("hex");
  const existing = await deps.store.getRelease(keyVersion);
  // A verdict of VERIFIED on these exact bytes stands. A REJECTED one is looked at again: the bucket may
  // have changed since (trust root or image uploaded after the manifest), and publishing again is the fix.
  if (existing && existing.manifestSha256 === manifestSha256 && existing.status === ReleaseStatus.Verified) {
    deps.log.info("release already registered", { version: keyVersion, status: existing.status });
    return existing;
  }
  const base = {
    version: keyVersion,
    manifestKey: key,
    manifestSha256,
    registeredAt: new Date(deps.now()).toISOString(),
  };
  let record: ReleaseRecord;
  try {
    const root = await currentTrustRoot(deps.s3, deps.bucket, deps.now());
    const { release, signers } = verifyRelease(parseJsonText(bytes, key), root, {
      now: new Date(deps.now()),
    });
    if (release.version !== keyVersion) {
      throw new ReleaseRejection(`manifest is for version ${release.version} but was uploaded as ${key}`);
    }
    let size: number | undefined;
    try {
      const head = await deps.s3.send(new HeadObjectCommand({ Bucket: deps.bucket, Key: release.image.key }));
      size = head.ContentLength;
    } catch (err) {
      const name = awsErrorName(err);
      if (name === "NotFound" || name === "NoSuchKey") {
        throw new ReleaseRejection(`image object ${release.image.key} does not exist in the bucket`, {
          cause: err,
        });
      }
      throw err;
    }
    if (size !== release.image.size) {
      throw new ReleaseRejection(
        `image object ${release.image.key} is ${size} bytes; the manifest says ${release.image.size}`,
      );
    }
    record = {
      ...base,
      status: ReleaseStatus.Verified,
      imageKey: release.image.key,
      imageSize: release.image.size,
      imageSha256: release.image.sha256,
      releaseCounter: release.releaseCounter,
      os: release.os,
      compatible: release.compatible,
      signers,
      rootVersion: root.version,
      expiresAt: release.expiresAt,
    };
  } catch (err) {
    // Only a verdict on the release is recorded; anything else (throttling, network) is rethrown so the
    // event is retried rather than turned into a false REJECTED.
    if (!(err instanceof KeelError)) throw err;
    record = { ...base, status: ReleaseStatus.Rejected, reason: describeError(err) };
  }
  await deps.store.putRelease(record);
  deps.log.info("release registered", {
    version: record.version,
    status: record.status,
    reason: record.reason,
  });
  return record;
}
