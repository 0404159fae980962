/**
 * Both local brokers, over mutual TLS with MQTT.js, enforce the device IoT policy (docs/architecture.md): a device
 * connects with an ACTIVE certificate attached to the thing named by its client id, and uses only
 * `$aws/things/<its thing>/jobs/…`. Each refusal case is its own test, on aedes and on mosquitto.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAedesBroker } from "../../local/broker-aedes.ts";
import { startMosquittoBroker } from "../../local/broker-mosquitto.ts";
import { type LocalCertificateAuthority, openCertificateAuthority } from "../../local/ca.ts";
import type { IssuedCertificate, RunningBroker } from "../../local/contracts.ts";
import {
  closedByBroker,
  collect,
  connectDevice,
  nextMessage,
  type TestRegistry as Registry,
  TestRegistry,
  tempDir,
} from "./helpers.ts";

type Kind = "aedes" | "mosquitto";

describe.each<Kind>(["aedes", "mosquitto"])("%s broker over mutual TLS", (kind) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ca: LocalCertificateAuthority;
  let registry: Registry;
  let broker: RunningBroker;
  let service: MqttClient;
  const certs: Record<"a" | "b" | "unknown" | "inactive" | "foreign", IssuedCertificate> = {} as never;
  const open: MqttClient[] = [];

  const identity = (cert: IssuedCertificate) => ({
    ca: ca.caCertPem,
    cert: cert.certificatePem,
    key: cert.privateKeyPem,
  });
  async function connected(clientId: string, cert: IssuedCertificate): Promise<MqttClient> {
    const outcome = await connectDevice(broker.url, clientId, identity(cert));
    if (!outcome.connected) throw new Error(`expected ${clientId} to connect: ${outcome.error}`);
    open.push(outcome.client);
    return outcome.client;
  }
  /** Both brokers refuse at CONNECT (mosquitto through Keel's plugin, local/mosquitto-client-id.c). */
  async function expectRefusedAtConnect(clientId: string, cert: IssuedCertificate): Promise<void> {
    const outcome = await connectDevice(broker.url, clientId, identity(cert));
    expect(outcome.connected).toBe(false);
    if (!outcome.connected) expect(outcome.error).toMatch(/Not authorized/i);
  }

  beforeAll(async () => {
    dir = await tempDir(`brokers-${kind}`);
    ca = await openCertificateAuthority(`${dir.path}/ca`);
    const otherCa = await openCertificateAuthority(`${dir.path}/other-ca`);
    registry = new TestRegistry();
    for (const k of ["a", "b", "unknown", "inactive"] as const) certs[k] = await ca.issueDeviceCertificate();
    certs.foreign = await otherCa.issueDeviceCertificate();
    registry.register(certs.a.certificateId);
    registry.attach(certs.a.certificateId, "thing-a");
    registry.register(certs.b.certificateId);
    registry.attach(certs.b.certificateId, "thing-b");
    registry.register(certs.inactive.certificateId, false);
    registry.attach(certs.inactive.certificateId, "thing-c");
    broker =
      kind === "aedes"
        ? await startAedesBroker({ ca, authority: registry })
        : await startMosquittoBroker({ ca, authority: registry, dir: `${dir.path}/mosquitto` });
    const s = broker.serviceClient;
    const outcome = await connectDevice(broker.url, s.clientId, { ca: s.ca, cert: s.cert, key: s.key });
    if (!outcome.connected) throw new Error(`service client refused: ${outcome.error}`);
    service = outcome.client;
    await service.subscribeAsync(["$aws/things/#"], { qos: 1 });
  });

  afterAll(async () => {
    for (const c of [...open, service]) c?.end(true);
    await broker?.stop();
    await dir?.remove();
  });

  it("lets a device with an active attached certificate connect as its thing and use its own jobs topics", async () => {
    const device = await connected("thing-a", certs.a);
    const granted = await device.subscribeAsync("$aws/things/thing-a/jobs/notify-next", { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);

    const toDevice = nextMessage(device, "$aws/things/thing-a/jobs/notify-next");
    await service.publishAsync("$aws/things/thing-a/jobs/notify-next", '{"from":"service"}', { qos: 1 });
    expect(await toDevice).toBe('{"from":"service"}');

    const toService = nextMessage(service, "$aws/things/thing-a/jobs/start-next");
    await device.publishAsync("$aws/things/thing-a/jobs/start-next", '{"from":"device"}', { qos: 1 });
    expect(await toService).toBe('{"from":"device"}');
  });

  it("refuses a connection without a client certificate", async () => {
    const outcome = await connectDevice(broker.url, "thing-a", { ca: ca.caCertPem });
    expect(outcome.connected).toBe(false);
  });

  it("refuses a certificate from another CA", async () => {
    const outcome = await connectDevice(broker.url, "thing-a", identity(certs.foreign));
    expect(outcome.connected).toBe(false);
  });

  it("refuses a certificate the registry does not know", async () => {
    const outcome = await connectDevice(broker.url, "thing-a", identity(certs.unknown));
    expect(outcome.connected).toBe(false);
  });

  it("refuses an INACTIVE certificate", async () => {
    const outcome = await connectDevice(broker.url, "thing-c", identity(certs.inactive));
    expect(outcome.connected).toBe(false);
  });

  it("refuses a certificate attached to another thing than the client id names", async () => {
    await expectRefusedAtConnect("thing-a", certs.b);
  });

  it("refuses a client id that is not a thing the certificate is attached to", async () => {
    await expectRefusedAtConnect("not-a-thing", certs.a);
  });

  it("refuses another thing's client id with a valid certificate, and the thing connected under it stays connected", async () => {
    const victim = await connected("thing-a", certs.a);
    let closes = 0;
    victim.on("close", () => closes++);
    // A valid certificate (attached to thing-b) asking for thing-a's client id: AWS IoT refuses the CONNECT.
    await expectRefusedAtConnect("thing-a", certs.b);
    await expectRefusedAtConnect("thing-a", certs.b);
    await victim.subscribeAsync("$aws/things/thing-a/jobs/after-takeover", { qos: 1 });
    const heard = nextMessage(victim, "$aws/things/thing-a/jobs/after-takeover");
    await service.publishAsync("$aws/things/thing-a/jobs/after-takeover", "still here", { qos: 1 });
    expect(await heard).toBe("still here");
    expect(closes).toBe(0);
    expect(victim.connected).toBe(true);
  });

  it("delivers nothing from another thing's topics, by name or by wildcard", async () => {
    const device = await connected("thing-a", certs.a);
    const seen = collect(device);
    const subscribed = await device
      .subscribeAsync(["$aws/things/thing-b/jobs/notify", "$aws/things/+/jobs/#"], { qos: 1 })
      .then(
        () => "granted",
        () => "refused",
      );
    // aedes refuses the filters in SUBACK (0x80); mosquitto grants them but filters every delivery by ACL.
    expect(subscribed).toBe(kind === "aedes" ? "refused" : "granted");
    await device.subscribeAsync("$aws/things/thing-a/jobs/barrier", { qos: 1 });
    await service.publishAsync("$aws/things/thing-b/jobs/notify", "secret", { qos: 1 });
    const barrier = nextMessage(device, "$aws/things/thing-a/jobs/barrier");
    await service.publishAsync("$aws/things/thing-a/jobs/barrier", "done", { qos: 1 });
    await barrier;
    expect(seen.filter((m) => m.topic.startsWith("$aws/things/thing-b/"))).toEqual([]);
  });

  it("does not accept a publish to another thing's topics", async () => {
    const device = await connected("thing-a", certs.a);
    const seen = collect(service);
    // aedes refuses the publish and closes the connection (as AWS IoT does); mosquitto drops it.
    await Promise.race([
      device.publishAsync("$aws/things/thing-b/jobs/start-next", "forged", { qos: 1 }).catch(() => {}),
      closedByBroker(device),
    ]);
    const barrier = nextMessage(service, "$aws/things/thing-a/jobs/barrier");
    await service.publishAsync("$aws/things/thing-a/jobs/barrier", "done", { qos: 1 });
    await barrier;
    expect(seen.filter((m) => m.topic === "$aws/things/thing-b/jobs/start-next")).toEqual([]);
  });

  it("enforces registry changes: a newly attached certificate connects, a deactivated one no longer does", async () => {
    const fresh = await ca.issueDeviceCertificate();
    registry.register(fresh.certificateId);
    registry.attach(fresh.certificateId, "thing-d");
    await broker.settled?.();
    const device = await connected("thing-d", fresh);
    device.end(true);

    registry.setActive(fresh.certificateId, false);
    await broker.settled?.();
    const outcome = await connectDevice(broker.url, "thing-d", identity(fresh));
    expect(outcome.connected).toBe(false);
  });

  it("closes a connected device once its certificate is made INACTIVE", async () => {
    const cert = await ca.issueDeviceCertificate();
    registry.register(cert.certificateId);
    registry.attach(cert.certificateId, "thing-e");
    await broker.settled?.();
    const device = await connected("thing-e", cert);
    const closed = closedByBroker(device);
    registry.setActive(cert.certificateId, false);
    await closed;
    expect(device.connected).toBe(false);
  });
});
