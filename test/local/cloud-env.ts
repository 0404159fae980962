/**
 * The IoT Jobs conformance environment (test/local/iot/helpers.ts ConformanceEnv) on the real local cloud:
 * startLocalCloud with a manual clock, devices that connect over mutual TLS with certificates made by
 * CreateKeysAndCertificate and attached to their thing, and restarts that stop and start the whole cloud.
 */
import { AttachThingPrincipalCommand, CreateKeysAndCertificateCommand, IoTClient } from "@aws-sdk/client-iot";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { createManualClock } from "../../local/clock.ts";
import { startLocalCloud } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "../../local/contracts.ts";
import { tempDir } from "./helpers.ts";
import { type ConformanceEnv, Device, type Message, S3_BUCKET } from "./iot/helpers.ts";

export async function makeCloudEnv(broker: "aedes" | "mosquitto"): Promise<ConformanceEnv> {
  const dir = await tempDir(`conformance-${broker}`);
  const clock = createManualClock();
  let cloud: LocalCloud = await startLocalCloud({ dir: dir.path, broker, clock });
  const info = cloud.info;
  const iot = new IoTClient({ region: info.region, endpoint: info.iot, credentials: LOCAL_CREDENTIALS });
  // The suite writes its objects to the same bucket name on every environment.
  const s3 = new S3Client({
    region: info.region,
    endpoint: info.s3,
    forcePathStyle: true,
    credentials: LOCAL_CREDENTIALS,
  });
  await s3.send(new CreateBucketCommand({ Bucket: S3_BUCKET }));
  s3.destroy();
  const clients: MqttClient[] = [];

  const connect = async (clientId: string, tls: { cert: string; key: string }): Promise<MqttClient> => {
    // Reconnect quickly, as a device agent does: restarts keep the broker's port.
    const options: IClientOptions = { clientId, reconnectPeriod: 100, ca: cloud.ca.caCertPem, ...tls };
    const c = await mqtt.connectAsync(info.mqtt, options);
    clients.push(c);
    return c;
  };

  return {
    iot,
    controlPlane: info.iot,
    get standIn() {
      return cloud.iot;
    },
    clock,
    region: info.region,
    account: info.account,
    s3: { endpoint: info.s3, bucket: S3_BUCKET, credentials: LOCAL_CREDENTIALS },
    async connectDevice(thing) {
      // As a real device is provisioned: its own certificate, active and attached to its thing.
      const keys = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      await iot.send(new AttachThingPrincipalCommand({ thingName: thing, principal: keys.certificateArn }));
      await cloud.broker.settled?.();
      const c = await connect(thing, {
        cert: keys.certificatePem ?? "",
        key: keys.keyPair?.PrivateKey ?? "",
      });
      await c.subscribeAsync(`$aws/things/${thing}/jobs/#`, { qos: 1 });
      return new Device(thing, c);
    },
    async connectObserver(filter) {
      // Only the service identity may read `$aws/events/#`: the observer stands for a cloud-side rule.
      const s = cloud.broker.serviceClient;
      const c = await connect(`observer-${clients.length}`, { cert: s.cert, key: s.key });
      const messages: Message[] = [];
      c.on("message", (topic, payload) => messages.push({ topic, payload: JSON.parse(payload.toString()) }));
      await c.subscribeAsync(filter, { qos: 1 });
      return { messages, close: () => c.endAsync() };
    },
    async restart() {
      await cloud.stop();
      cloud = await startLocalCloud({ dir: dir.path, broker, clock });
      if (cloud.info.mqtt !== info.mqtt || cloud.info.iot !== info.iot) {
        throw new Error(
          `restart moved the endpoints: ${JSON.stringify(cloud.info)} vs ${JSON.stringify(info)}`,
        );
      }
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.endAsync(true)));
      iot.destroy();
      await cloud.stop();
      await dir.remove();
    },
  };
}
