/**
 * startLocalCloud end to end through the real SDK clients and MQTT.js over mutual TLS: local.json, the
 * bucket and the table exist, S3 ObjectCreated notifications arrive, a device registered through the IoT
 * control plane connects, and a restart on the same directory keeps objects, items, the CA and the registry.
 */
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import {
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DescribeThingCommand,
  IoTClient,
} from "@aws-sdk/client-iot";
import { GetObjectCommand, HeadBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalCloudInfoSchema, readLocalCloudInfo, startLocalCloud } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud, type LocalCloudInfo } from "../../local/contracts.ts";
import { LocalServiceError } from "../../local/errors.ts";
import { connectDevice, tempDir } from "./helpers.ts";

function clients(info: LocalCloudInfo) {
  const common = { region: info.region, credentials: LOCAL_CREDENTIALS };
  return {
    s3: new S3Client({ ...common, endpoint: info.s3, forcePathStyle: true }),
    ddb: new DynamoDBClient({ ...common, endpoint: info.dynamodb }),
    iot: new IoTClient({ ...common, endpoint: info.iot }),
  };
}

describe.each(["aedes", "mosquitto"] as const)("startLocalCloud with %s", (broker) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cloud: LocalCloud | undefined;
  let device: { certificatePem: string; privateKeyPem: string };
  let firstCaPem: string;

  beforeAll(async () => {
    dir = await tempDir(`cloud-${broker}`);
    cloud = await startLocalCloud({ dir: dir.path, broker });
  });
  afterAll(async () => {
    await cloud?.stop();
    await dir?.remove();
  });

  it("writes local.json with every endpoint, the CA file, the bucket and the table", async () => {
    const onDisk = LocalCloudInfoSchema.parse(
      JSON.parse(await readFile(join(dir.path, "local.json"), "utf8")),
    );
    expect(onDisk).toEqual(cloud?.info);
    expect(onDisk).toMatchObject({ bucket: "keel-releases", table: "keel", api: "", region: "us-east-1" });
    expect(onDisk.mqtt).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    expect(await readFile(onDisk.caFile, "utf8")).toBe(cloud?.ca.caCertPem);
  });

  it("serves the bucket and the table to the real SDK clients, and reports created objects", async () => {
    if (!cloud) throw new Error("no cloud");
    const { s3, ddb } = clients(cloud.info);
    await s3.send(new HeadBucketCommand({ Bucket: "keel-releases" }));
    const table = await ddb.send(new DescribeTableCommand({ TableName: "keel" }));
    expect(table.Table?.KeySchema?.map((k) => k.AttributeName)).toEqual(["pk", "sk"]);
    expect(table.Table?.GlobalSecondaryIndexes?.[0]?.IndexName).toBe("gsi1");

    const created = new Promise((resolve) => cloud?.onObjectCreated(resolve));
    await s3.send(
      new PutObjectCommand({ Bucket: "keel-releases", Key: "releases/1.0.0/release.json", Body: "{}" }),
    );
    expect(await created).toEqual({ bucket: "keel-releases", key: "releases/1.0.0/release.json", size: 2 });
    await ddb.send(
      new PutItemCommand({ TableName: "keel", Item: { pk: { S: "release#1.0.0" }, sk: { S: "meta" } } }),
    );
  });

  it("lets a device registered through the IoT control plane connect over mutual TLS", async () => {
    if (!cloud) throw new Error("no cloud");
    const { iot } = clients(cloud.info);
    await iot.send(new CreateThingCommand({ thingName: "edge-1" }));
    const keys = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: "edge-1", principal: keys.certificateArn }));
    device = { certificatePem: keys.certificatePem ?? "", privateKeyPem: keys.keyPair?.PrivateKey ?? "" };
    await cloud.broker.settled?.();
    const outcome = await connectDevice(cloud.info.mqtt, "edge-1", {
      ca: await readFile(cloud.info.caFile, "utf8"),
      cert: device.certificatePem,
      key: device.privateKeyPem,
    });
    expect(outcome.connected).toBe(true);
    if (outcome.connected) outcome.client.end(true);
    firstCaPem = cloud.ca.caCertPem;
  });

  it("removes local.json on stop and, restarted on the same directory, keeps objects, items, CA and registry", async () => {
    await cloud?.stop();
    expect(await readLocalCloudInfo(dir.path)).toBeUndefined();

    cloud = await startLocalCloud({ dir: dir.path, broker });
    const { s3, ddb, iot } = clients(cloud.info);
    const object = await s3.send(
      new GetObjectCommand({ Bucket: "keel-releases", Key: "releases/1.0.0/release.json" }),
    );
    expect(await object.Body?.transformToString()).toBe("{}");
    const item = await ddb.send(
      new GetItemCommand({ TableName: "keel", Key: { pk: { S: "release#1.0.0" }, sk: { S: "meta" } } }),
    );
    expect(item.Item?.sk?.S).toBe("meta");
    expect(cloud.ca.caCertPem).toBe(firstCaPem);
    expect((await iot.send(new DescribeThingCommand({ thingName: "edge-1" }))).thingName).toBe("edge-1");

    const outcome = await connectDevice(cloud.info.mqtt, "edge-1", {
      ca: cloud.ca.caCertPem,
      cert: device.certificatePem,
      key: device.privateKeyPem,
    });
    expect(outcome.connected).toBe(true);
    if (outcome.connected) outcome.client.end(true);
  });
});

describe("startLocalCloud ports and failures", () => {
  it("takes the previous run's ports again, or another free port when one is now taken", async () => {
    const dir = await tempDir("cloud-ports");
    try {
      const first = await startLocalCloud({ dir: dir.path });
      const before = first.info;
      await first.stop();
      // Something else now listens on the old MQTT port.
      const squatter = createServer();
      await new Promise<void>((r) => squatter.listen(Number(new URL(before.mqtt).port), "127.0.0.1", r));
      const second = await startLocalCloud({ dir: dir.path });
      try {
        expect(second.info.s3).toBe(before.s3);
        expect(second.info.iot).toBe(before.iot);
        expect(second.info.mqtt).not.toBe(before.mqtt);
      } finally {
        await second.stop();
        await new Promise<void>((r) => squatter.close(() => r()));
      }
    } finally {
      await dir.remove();
    }
  });

  it("resumes a scaled clock where it stopped: after a restart, time never goes back", async () => {
    const dir = await tempDir("cloud-clock");
    try {
      // 3600x: an hour of scaled time per real second, far ahead of the real clock within a moment.
      const first = await startLocalCloud({ dir: dir.path, timeScale: 3600 });
      await new Promise((r) => setTimeout(r, 300));
      const lastSeen = first.clock.now();
      expect(lastSeen - Date.now()).toBeGreaterThan(10 * 60_000);
      await first.stop();
      const second = await startLocalCloud({ dir: dir.path, timeScale: 3600 });
      try {
        expect(second.clock.now()).toBeGreaterThanOrEqual(lastSeen);
      } finally {
        await second.stop();
      }
    } finally {
      await dir.remove();
    }
  });

  it("fails with a named error and writes no local.json when mosquitto cannot start", async () => {
    const dir = await tempDir("cloud-fail");
    const saved = process.env.PATH;
    try {
      // No mosquitto on PATH: the broker cannot start (s3rver and dynalite, already up, are stopped again).
      process.env.PATH = "/nonexistent";
      const started = startLocalCloud({ dir: dir.path, broker: "mosquitto" });
      await expect(started).rejects.toThrow(LocalServiceError);
      await expect(started).rejects.toThrow(/mosquitto: cannot start/);
      expect(await readLocalCloudInfo(dir.path)).toBeUndefined();
    } finally {
      process.env.PATH = saved;
      await dir.remove();
    }
  });
});
