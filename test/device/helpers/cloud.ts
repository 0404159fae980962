/**
 * The local cloud (local/cloud.ts: IoT Jobs stand-in + aedes with mutual TLS + s3rver) for device
 * tests, driven through the real AWS SDK clients, as the rollout engine would: upload a release to S3,
 * provision a thing with its own certificate, create a job whose document carries presigned-URL
 * placeholders, read the execution's final status.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AttachThingPrincipalCommand,
  CancelJobCommand,
  CreateJobCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DescribeJobExecutionCommand,
  IoTClient,
} from "@aws-sdk/client-iot";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { buildJobDocument } from "../../../core/job-document.ts";
import { startLocalCloud } from "../../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "../../../local/contracts.ts";
import { type Signers, signRelease } from "./release.ts";

export interface TestCloud {
  cloud: LocalCloud;
  iot: IoTClient;
  s3: S3Client;
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Uploads `image` and its manifest signed by `signers` under `releases/<version>/`, as `keel release publish` does. */
  putRelease(
    signers: Signers,
    release: { version: string; releaseCounter: number; image: Uint8Array },
  ): Promise<void>;
  /** Creates the thing and its active certificate; returns the agent's `mqtt` config section. */
  provision(thing: string, dir: string): Promise<{ endpoint: string; cert: string; key: string; ca: string }>;
  /**
   * The job document the rollout engine would send for the release stored under `releases/<version>/` in
   * this cloud's bucket (or under the keys given), with a 60 s health deadline.
   */
  jobDocument(o: {
    rolloutId: string;
    version: string;
    manifestKey?: string | undefined;
    imageKey?: string | undefined;
  }): Record<string, unknown>;
  createJob(jobId: string, thing: string, document: Record<string, unknown>): Promise<void>;
  cancelJob(jobId: string, force: boolean): Promise<void>;
  execution(thing: string, jobId: string): Promise<{ status: string; details: Record<string, string> }>;
  stop(): Promise<void>;
}

export async function startTestCloud(dir: string): Promise<TestCloud> {
  const cloud = await startLocalCloud({ dir, broker: "aedes" });
  const { info } = cloud;
  const iot = new IoTClient({ region: info.region, endpoint: info.iot, credentials: LOCAL_CREDENTIALS });
  const s3 = new S3Client({
    region: info.region,
    endpoint: info.s3,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  const put = async (key: string, body: Uint8Array | string) => {
    await s3.send(new PutObjectCommand({ Bucket: info.bucket, Key: key, Body: body }));
  };
  return {
    cloud,
    iot,
    s3,
    put,
    async putRelease(signers, release) {
      await put(`releases/${release.version}/image.squashfs`, release.image);
      await put(`releases/${release.version}/release.json`, JSON.stringify(signRelease(signers, release)));
    },
    async provision(thing, nodeDir) {
      await iot.send(new CreateThingCommand({ thingName: thing }));
      const keys = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      await iot.send(new AttachThingPrincipalCommand({ thingName: thing, principal: keys.certificateArn }));
      await cloud.broker.settled?.();
      await mkdir(nodeDir, { recursive: true });
      await writeFile(join(nodeDir, "device.pem"), keys.certificatePem ?? "");
      await writeFile(join(nodeDir, "device.key"), keys.keyPair?.PrivateKey ?? "");
      return {
        endpoint: info.mqtt,
        cert: join(nodeDir, "device.pem"),
        key: join(nodeDir, "device.key"),
        ca: info.caFile,
      };
    },
    jobDocument: (o) =>
      buildJobDocument({
        rolloutId: o.rolloutId,
        version: o.version,
        region: info.region,
        bucket: info.bucket,
        manifestKey: o.manifestKey ?? `releases/${o.version}/release.json`,
        imageKey: o.imageKey ?? `releases/${o.version}/image.squashfs`,
        policy: { healthDeadlineSeconds: 60 },
      }),
    async createJob(jobId, thing, document) {
      await iot.send(
        new CreateJobCommand({
          jobId,
          targets: [`arn:aws:iot:${info.region}:${info.account}:thing/${thing}`],
          document: JSON.stringify(document),
          presignedUrlConfig: {
            roleArn: `arn:aws:iam::${info.account}:role/keel-presign`,
            expiresInSec: 3600,
          },
        }),
      );
    },
    async cancelJob(jobId, force) {
      await iot.send(new CancelJobCommand({ jobId, force }));
    },
    async execution(thing, jobId) {
      const r = await iot.send(new DescribeJobExecutionCommand({ thingName: thing, jobId }));
      return {
        status: r.execution?.status ?? "UNKNOWN",
        details: r.execution?.statusDetails?.detailsMap ?? {},
      };
    },
    async stop() {
      iot.destroy();
      s3.destroy();
      await cloud.stop();
    },
  };
}
