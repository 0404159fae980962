/**
 * Presigned-URL placeholders (docs/iot-jobs.md): `${aws:iot:s3-presigned-url:https://s3.<region>.amazonaws.com/<bucket>/<key>}`
 * is replaced, on every delivery of a document to a device, by a freshly generated presigned GET URL
 * against the local S3 (path style), valid for the job's `expiresInSec`.
 */
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { IotStandInOptions } from "../contracts.ts";

const PLACEHOLDER =
  /\$\{aws:iot:s3-presigned-url:https:\/\/s3\.[a-z0-9-]+\.amazonaws\.com\/([^/}]+)\/([^}]+)\}/g;
export const DEFAULT_PRESIGN_EXPIRY_SEC = 3600;

export type Presigner = (documentText: string, expiresInSec: number) => Promise<string>;

export function createPresigner(s3: IotStandInOptions["s3"]): Presigner {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: s3.credentials,
    forcePathStyle: true,
  });
  return async (text, expiresInSec) => {
    const matches = [...text.matchAll(PLACEHOLDER)];
    if (matches.length === 0) return text;
    const urls = await Promise.all(
      matches.map((m) =>
        getSignedUrl(
          client,
          new GetObjectCommand({
            Bucket: decodeURIComponent(m[1] as string),
            Key: (m[2] as string).split("/").map(decodeURIComponent).join("/"),
          }),
          { expiresIn: expiresInSec },
        ),
      ),
    );
    let i = 0;
    // The document is JSON text and the placeholder sits inside a string, so the URL is JSON-escaped.
    return text.replace(PLACEHOLDER, () => JSON.stringify(urls[i++]).slice(1, -1));
  };
}
