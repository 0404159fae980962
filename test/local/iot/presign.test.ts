/**
 * A device whose presigned URL expired asks for its job again (`$aws/things/T/jobs/<jobId>/get`, or an
 * update with includeJobDocument) and must get the document with FRESHLY presigned URLs: a later signing
 * time and so a later expiry, still downloadable (docs/iot-jobs.md, presigned URLs).
 */
import { CreateJobCommand, CreateThingCommand } from "@aws-sdk/client-iot";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ConformanceEnv, Device } from "./helpers.ts";
import { makePlainEnv } from "./helpers.ts";

let env: ConformanceEnv;
let device: Device;
const KEY = "releases/2.0.0/image.squashfs";

beforeAll(async () => {
  env = await makePlainEnv();
  const s3 = new S3Client({
    endpoint: env.s3.endpoint,
    region: env.region,
    credentials: env.s3.credentials,
    forcePathStyle: true,
  });
  await s3.send(new PutObjectCommand({ Bucket: env.s3.bucket, Key: KEY, Body: "IMAGE" }));
  s3.destroy();
  await env.iot.send(new CreateThingCommand({ thingName: "ps-fresh" }));
  device = await env.connectDevice("ps-fresh");
});
afterAll(async () => {
  await device.close();
  await env.close();
});

/** When a presigned URL stops working: X-Amz-Date + X-Amz-Expires, in epoch seconds. */
function expiryOf(url: string): number {
  const q = new URL(url).searchParams;
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(q.get("X-Amz-Date") ?? "");
  if (!d) throw new Error(`no X-Amz-Date in ${url}`);
  const [, y, mo, da, h, mi, s] = d.map(Number) as number[];
  return Date.UTC(y ?? 0, (mo ?? 1) - 1, da, h, mi, s) / 1000 + Number(q.get("X-Amz-Expires"));
}

/** SigV4 dates have one-second resolution (as on AWS): wait for the next second so a new URL must differ. */
async function nextSecond(): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  while (Math.floor(Date.now() / 1000) === now) await new Promise((r) => setTimeout(r, 25));
}

const urlIn = (payload: Record<string, unknown>, path: "execution" | "update"): string => {
  const doc =
    path === "execution"
      ? (payload.execution as { jobDocument: { imageUrl: string } }).jobDocument
      : (payload.jobDocument as { imageUrl: string });
  return doc.imageUrl;
};

it("describe (<jobId>/get) and update with includeJobDocument re-presign: later expiry, still downloadable", async () => {
  const placeholder = `\${aws:iot:s3-presigned-url:https://s3.${env.region}.amazonaws.com/${env.s3.bucket}/${KEY}}`;
  await env.iot.send(
    new CreateJobCommand({
      jobId: "fresh-j",
      targets: [`arn:aws:iot:${env.region}:${env.account}:thing/ps-fresh`],
      document: JSON.stringify({ imageUrl: placeholder }),
      presignedUrlConfig: { roleArn: "arn:aws:iam::000000000000:role/keel-presign", expiresInSec: 60 },
    }),
  );
  const started = await device.request("start-next");
  const first = urlIn(started.payload, "execution");
  expect(new URL(first).searchParams.get("X-Amz-Expires")).toBe("60");

  await nextSecond();
  const described = await device.request("fresh-j/get", { includeJobDocument: true });
  expect((described.payload.execution as { status: string }).status).toBe("IN_PROGRESS");
  const second = urlIn(described.payload, "execution");
  expect(second).not.toBe(first);
  expect(expiryOf(second)).toBeGreaterThan(expiryOf(first));

  await nextSecond();
  const updated = await device.request("fresh-j/update", { status: "IN_PROGRESS", includeJobDocument: true });
  const third = urlIn(updated.payload, "update");
  expect(expiryOf(third)).toBeGreaterThan(expiryOf(second));

  for (const url of [second, third]) {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("IMAGE");
  }
});
