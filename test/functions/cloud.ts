/**
 * The local cloud for the function tests (startLocalCloud: s3rver, dynalite, aedes with mutual TLS, the
 * IoT Jobs stand-in) in a temp dir, on a manual clock so bake times pass without waiting; plus the SDK
 * clients a test uses to look at it from outside.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IoTClient } from "@aws-sdk/client-iot";
import { S3Client } from "@aws-sdk/client-s3";
import { createClients, destroyClients } from "../../functions/clients.ts";
import { parseEnv } from "../../functions/env.ts";
import { Store } from "../../functions/store.ts";
import { createManualClock, type ManualClock } from "../../local/clock.ts";
import { startLocalCloud } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "../../local/contracts.ts";
import { envFor } from "./fixtures.ts";

export interface TestCloud extends LocalCloud {
  readonly clock: ManualClock;
  readonly s3: S3Client;
  readonly iotClient: IoTClient;
  /** The functions' own view of the table, to check what they recorded. */
  readonly store: Store;
}

export async function startTestCloud(broker: "aedes" | "mosquitto" = "aedes"): Promise<TestCloud> {
  const dir = await mkdtemp(join(tmpdir(), "keel-fn-"));
  const clock = createManualClock(Date.now());
  const cloud = await startLocalCloud({ dir, clock, broker });
  const { info } = cloud;
  const s3 = new S3Client({
    region: info.region,
    endpoint: info.s3,
    forcePathStyle: true,
    credentials: LOCAL_CREDENTIALS,
  });
  const iotClient = new IoTClient({
    region: info.region,
    endpoint: info.iot,
    credentials: LOCAL_CREDENTIALS,
  });
  const clients = createClients(parseEnv(envFor(info)));
  return {
    info,
    ca: cloud.ca,
    clock,
    iot: cloud.iot,
    broker: cloud.broker,
    onObjectCreated: (l) => cloud.onObjectCreated(l),
    s3,
    iotClient,
    store: new Store(clients.ddb, info.table),
    async stop() {
      s3.destroy();
      iotClient.destroy();
      destroyClients(clients);
      await cloud.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
