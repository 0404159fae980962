/**
 * Test helpers for the IoT Jobs stand-in: a device speaking the MQTT Jobs topics with MQTT.js, and an
 * environment made of a transport (broker + CA + MQTT connections), a real s3rver and the stand-in on a
 * manual clock. `plainTransport` is in-process aedes without TLS; part B passes mutual-TLS transports
 * (aedes, mosquitto) to `makeStandInEnv` and runs `defineConformanceSuite` over them.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IoTClient } from "@aws-sdk/client-iot";
import { Aedes } from "aedes";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { createManualClock, type ManualClock } from "../../../local/clock.ts";
import {
  type CertificateAuthority,
  type IotStandIn,
  type IotStandInOptions,
  LOCAL_ACCOUNT,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  type RunningBroker,
} from "../../../local/contracts.ts";
import { createIotStandIn } from "../../../local/iot/standin.ts";

export interface Message {
  topic: string;
  payload: Record<string, unknown>;
}

/** A device: one MQTT connection as thing T, subscribed to its jobs topics, recording everything it hears. */
export class Device {
  readonly messages: Message[] = [];
  private waiters: Array<{ match: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  private seq = 0;

  constructor(
    readonly thing: string,
    readonly client: MqttClient,
  ) {
    client.on("message", (topic, payload) => {
      const m = { topic, payload: tryJson(payload) };
      this.messages.push(m);
      const w = this.waiters.find((x) => x.match(m));
      if (w) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(m);
      }
    });
  }

  get base(): string {
    return `$aws/things/${this.thing}/jobs`;
  }

  /** The first message already heard or still to come that matches, after index `from`. */
  waitFor(match: (m: Message) => boolean, what: string, from = 0, timeoutMs = 10_000): Promise<Message> {
    const seen = this.messages.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.thing}: no ${what} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Publishes a request on `<base>/<suffix>` and resolves with the /accepted or /rejected answer. */
  async request(suffix: string, body: Record<string, unknown> | string = {}): Promise<Message> {
    const clientToken = `${this.thing}-${++this.seq}`;
    const payload = typeof body === "string" ? body : JSON.stringify({ clientToken, ...body });
    const topic = `${this.base}/${suffix}`;
    const from = this.messages.length;
    const answer = this.waitFor(
      (m) =>
        (m.topic === `${topic}/accepted` || m.topic === `${topic}/rejected`) &&
        (typeof body === "string" || m.payload.clientToken === clientToken),
      `answer on ${topic}`,
      from,
    );
    await this.client.publishAsync(topic, payload, { qos: 1 });
    return answer;
  }

  /** Messages heard on a topic suffix (notify, notify-next, …) since index `from`. */
  heard(suffix: string, from = 0): Message[] {
    return this.messages.slice(from).filter((m) => m.topic === `${this.base}/${suffix}`);
  }

  /** Resolves once everything the service published before now has arrived (a GetPending round trip). */
  async barrier(): Promise<void> {
    await this.request("get");
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

/** Devices also hear their own requests (they subscribe to jobs/#), which may be deliberately malformed. */
function tryJson(payload: Buffer): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(payload.toString("utf8"));
    return v !== null && typeof v === "object" ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return { raw: payload.toString("utf8") };
  }
}

export interface ConformanceEnv {
  iot: IoTClient;
  /** http://127.0.0.1:PORT of the control plane (for raw HTTP checks the SDK would never send). */
  controlPlane: string;
  standIn: IotStandIn;
  clock: ManualClock;
  region: string;
  account: string;
  /** The S3 the stand-in presigns against, with a bucket the test may write to. */
  s3: { endpoint: string; bucket: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  /** Connects a device as thing `thing` (already created through the SDK); provisions credentials if needed. */
  connectDevice(thing: string): Promise<Device>;
  /** Connects an observer allowed to subscribe to `$aws/events/#`. */
  connectObserver(topicFilter: string): Promise<{ messages: Message[]; close(): Promise<void> }>;
  /** Stops the stand-in and starts a new one on the same dataDir (a restart of the local cloud). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

type S3rverCtor = new (
  opts: Record<string, unknown>,
) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
};
const S3rver = createRequire(import.meta.url)("s3rver") as S3rverCtor;

export const S3_BUCKET = "keel-test";
/** s3rver's built-in account. */
const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

/** A CA stub for the plain broker: certificate records only (TLS is part B's transport). */
function fakeCa(dir: string): CertificateAuthority {
  let n = 0;
  const record = () => {
    n++;
    const id = (n.toString(16).padStart(8, "0") + "ab".repeat(28)).slice(0, 64);
    return {
      certificateId: id,
      certificatePem: `-----BEGIN CERTIFICATE-----\n${id}\n-----END CERTIFICATE-----\n`,
    };
  };
  return {
    caCertPem: "",
    caFile: join(dir, "ca.pem"),
    async issueDeviceCertificate() {
      return { ...record(), privateKeyPem: "private", publicKeyPem: "public" };
    },
    async issueCertificateForKey() {
      return record();
    },
  };
}

/**
 * What an environment needs from the transport: a broker, the CA the stand-in issues certificates from,
 * and a way to connect MQTT clients. Part B supplies mutual-TLS transports (aedes, mosquitto); this file
 * supplies the plain one.
 */
export interface Transport {
  broker: RunningBroker;
  ca: CertificateAuthority;
  /**
   * Connects a device as thing `thing` (created through the SDK beforehand). A TLS transport provisions
   * it first the AWS way: CreateKeysAndCertificate + AttachThingPrincipal through `iot`.
   */
  connectDevice(thing: string, iot: IoTClient): Promise<MqttClient>;
  /** Connects a client that may subscribe to `$aws/events/#` (a privileged observer). */
  connectObserver(): Promise<MqttClient>;
  close(): Promise<void>;
}

/** The stand-in on the given transport, with a real s3rver, a manual clock and an SDK client. */
export async function makeStandInEnv(transport: Transport): Promise<ConformanceEnv> {
  const dir = await mkdtemp(join(tmpdir(), "keel-iot-"));
  const s3 = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory: join(dir, "s3"),
    configureBuckets: [{ name: S3_BUCKET }],
  });
  const s3addr = await s3.run();
  const s3Endpoint = `http://127.0.0.1:${s3addr.port}`;
  const clock = createManualClock();
  const opts: IotStandInOptions = {
    dataDir: join(dir, "iot"),
    region: LOCAL_REGION,
    account: LOCAL_ACCOUNT,
    clock,
    ca: transport.ca,
    s3: { endpoint: s3Endpoint, region: LOCAL_REGION, credentials: S3RVER_CREDENTIALS },
  };
  let standIn = await createIotStandIn(opts);
  const { endpoint } = await standIn.start(transport.broker);
  const port = Number(new URL(endpoint).port);
  const iot = new IoTClient({ region: LOCAL_REGION, endpoint, credentials: LOCAL_CREDENTIALS });
  const clients: MqttClient[] = [];
  return {
    iot,
    controlPlane: endpoint,
    get standIn() {
      return standIn;
    },
    clock,
    region: LOCAL_REGION,
    account: LOCAL_ACCOUNT,
    s3: { endpoint: s3Endpoint, bucket: S3_BUCKET, credentials: S3RVER_CREDENTIALS },
    async connectDevice(thing) {
      const c = await transport.connectDevice(thing, iot);
      clients.push(c);
      await c.subscribeAsync(`$aws/things/${thing}/jobs/#`, { qos: 1 });
      return new Device(thing, c);
    },
    async connectObserver(filter) {
      const c = await transport.connectObserver();
      clients.push(c);
      const messages: Message[] = [];
      c.on("message", (topic, payload) => messages.push({ topic, payload: tryJson(payload) }));
      await c.subscribeAsync(filter, { qos: 1 });
      return { messages, close: () => c.endAsync() };
    },
    async restart() {
      await standIn.stop();
      standIn = await createIotStandIn(opts);
      // Same port, so SDK clients and devices carry on unchanged.
      await standIn.start(transport.broker, { port });
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.endAsync(true)));
      await standIn.stop();
      iot.destroy();
      await s3.close();
      await transport.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Plain in-process aedes without TLS or authorization: the stand-in's own tests (part A). */
export async function plainTransport(): Promise<Transport> {
  const dir = await mkdtemp(join(tmpdir(), "keel-iot-ca-"));
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let n = 0;
  const connect = (clientId: string): Promise<MqttClient> => {
    const options: IClientOptions = { clientId, reconnectPeriod: 100 };
    return mqtt.connectAsync(url, options);
  };
  return {
    broker: {
      kind: "aedes",
      url,
      serviceClient: { cert: "", key: "", ca: "", clientId: "keel-iot-service" },
      stop: async () => {},
    },
    ca: fakeCa(dir),
    connectDevice: (thing) => connect(thing),
    connectObserver: () => connect(`observer-${++n}`),
    async close() {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function makePlainEnv(): Promise<ConformanceEnv> {
  return makeStandInEnv(await plainTransport());
}
