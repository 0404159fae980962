/** Fixtures for the function tests: Lambda environments, S3 events and releases signed with core's keys. */
import { createHash } from "node:crypto";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { generateKeyPair, type KeyPair, publicKeyEntry, signValue } from "../../core/keys.ts";
import { LOCAL_CREDENTIALS, LOCAL_REGION, type LocalCloudInfo } from "../../local/contracts.ts";

/** The Lambda environment the handlers would get from the local wiring, pointing at the local cloud. */
export function envFor(info: LocalCloudInfo, extra: Record<string, string> = {}) {
  return {
    TABLE_NAME: info.table,
    BUCKET_NAME: info.bucket,
    S3_ENDPOINT: info.s3,
    DYNAMODB_ENDPOINT: info.dynamodb,
    IOT_ENDPOINT: info.iot,
    PRESIGN_ROLE_ARN: `arn:aws:iam::${info.account}:role/keel-test-presign`,
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    LOG_LEVEL: "silent",
    ...extra,
  };
}

const inDays = (d: number) => new Date(Date.now() + d * 86400_000).toISOString().replace(/\.\d{3}Z$/, "Z");

export interface Trust {
  key: KeyPair;
  root1: unknown;
}

export function makeTrust(key = generateKeyPair()): Trust {
  const signed = {
    _type: "root",
    schemaVersion: 1,
    version: 1,
    expiresAt: inDays(365),
    keys: { [key.keyId]: publicKeyEntry(key.publicKey) },
    roles: { root: { keyIds: [key.keyId], threshold: 1 }, release: { keyIds: [key.keyId], threshold: 1 } },
  };
  return { key, root1: { signed, signatures: [signValue(signed, key)] } };
}

export function makeRelease(o: {
  version: string;
  counter: number;
  image: Uint8Array;
  key: KeyPair;
  size?: number;
}) {
  const signed = {
    _type: "release",
    schemaVersion: 1,
    os: "keelos",
    version: o.version,
    releaseCounter: o.counter,
    compatible: ["x86_64-sim"],
    image: {
      key: `releases/${o.version}/image.squashfs`,
      size: o.size ?? o.image.byteLength,
      sha256: createHash("sha256").update(o.image).digest("hex"),
      format: "squashfs",
    },
    createdAt: inDays(0),
    expiresAt: inDays(30),
  };
  return { signed, signatures: [signValue(signed, o.key)] };
}

export async function putJson(s3: S3Client, bucket: string, key: string, value: unknown): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: JSON.stringify(value),
      ContentType: "application/json",
    }),
  );
}

export async function putBytes(s3: S3Client, bucket: string, key: string, body: Uint8Array): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

/** An S3 ObjectCreated event as AWS delivers it (keys URL-encoded). */
export function s3Event(bucket: string, key: string, size = 1) {
  return {
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: LOCAL_REGION,
        eventTime: new Date().toISOString(),
        eventName: "ObjectCreated:Put",
        s3: {
          s3SchemaVersion: "1.0",
          bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
          object: { key: encodeURIComponent(key).replace(/%2F/g, "/"), size },
        },
      },
    ],
  };
}
