/**
 * Fleet provisioning by claim in the local cloud, on aedes and on mosquitto (docs/fleets.md#fleet-provisioning-by-claim):
 * AWS's MQTT topics and payloads, answers to the asking connection only, a claim certificate kept to the
 * provisioning topics, the pre-provisioning hook's refusal, single-use ownership tokens, and every
 * malformed field refused on `/rejected` with nothing created.
 */
import { generateKeyPairSync } from "node:crypto";
import {
  AttachPolicyCommand,
  CreateJobCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DescribeThingCommand,
  IoTClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-iot";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCsr } from "../../../core/csr.ts";
import {
  createClaimCertificate,
  ensureFleetProvisioning,
} from "../../../functions/provisioning-hook/template.ts";
import { createManualClock } from "../../../local/clock.ts";
import { startLocalCloud } from "../../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "../../../local/contracts.ts";
import type { HookInput } from "../../../local/iot/fleet-provisioning.ts";
import {
  CREATE_FROM_CSR_TOPIC,
  CREATE_KEYS_TOPIC,
  provisionTopic,
} from "../../../local/provisioning-topics.ts";
import { tempDir } from "../helpers.ts";

const FLEET = "edge";
const HOOK = "arn:aws:lambda:us-east-1:000000000000:function:test-provisioning-hook";
const TEMPLATE = provisionTopic(`keel-${FLEET}`);

interface Answer {
  topic: string;
  body: Record<string, unknown>;
}

/** A factory-fresh node holding the claim certificate: asks and waits for its `/accepted` or `/rejected`. */
class ClaimClient {
  private readonly heard: Answer[] = [];
  constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload) =>
      this.heard.push({ topic, body: JSON.parse(payload.toString()) }),
    );
  }
  async ask(topic: string, payload: string | Record<string, unknown>): Promise<Answer> {
    await this.client.subscribeAsync([`${topic}/accepted`, `${topic}/rejected`], { qos: 1 });
    const from = this.heard.length;
    await this.client.publishAsync(topic, typeof payload === "string" ? payload : JSON.stringify(payload), {
      qos: 1,
    });
    for (let i = 0; i < 400; i++) {
      const a = this.heard.slice(from).find((m) => m.topic.startsWith(`${topic}/`));
      if (a) return a;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no answer on ${topic}`);
  }
  answers(): Answer[] {
    return [...this.heard];
  }
}

describe.each(["aedes", "mosquitto"] as const)("fleet provisioning by claim on %s", (broker) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cloud: LocalCloud;
  let iot: IoTClient;
  let claim: { certificatePem: string; privateKey: string; certificateId: string };
  const hookCalls: HookInput[] = [];
  const open: MqttClient[] = [];

  const connect = async (clientId: string, cert: string, key: string): Promise<MqttClient> => {
    await cloud.broker.settled?.();
    const c = await mqtt.connectAsync(cloud.info.mqtt, {
      clientId,
      ca: cloud.ca.caCertPem,
      cert,
      key,
      reconnectPeriod: 0,
    });
    open.push(c);
    return c;
  };
  const claimClient = async (clientId: string) =>
    new ClaimClient(await connect(clientId, claim.certificatePem, claim.privateKey));

  /** CreateCertificateFromCsr for a key made here; the accepted answer. */
  async function csr(c: ClaimClient): Promise<{ key: string; body: Record<string, unknown> }> {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const a = await c.ask(CREATE_FROM_CSR_TOPIC, { certificateSigningRequest: buildCsr(privateKey, "node") });
    expect(a.topic).toBe(`${CREATE_FROM_CSR_TOPIC}/accepted`);
    return { key: privateKey.export({ format: "pem", type: "pkcs8" }).toString(), body: a.body };
  }

  const thingExists = async (thingName: string) =>
    iot.send(new DescribeThingCommand({ thingName })).then(
      () => true,
      (err) => {
        if (err instanceof ResourceNotFoundException) return false;
        throw err;
      },
    );

  /** A test hook with the Lambda's contract: names under edge- join, into group edge-g. */
  function serveHook(): void {
    cloud.iot.registerLambda?.(HOOK, async (input) => {
      hookCalls.push(input);
      const name = input.parameters.ThingName ?? "";
      return name.startsWith("edge-")
        ? { allowProvisioning: true, parameterOverrides: { BucketGroup: "edge-g" } }
        : { allowProvisioning: false };
    });
  }

  beforeAll(async () => {
    dir = await tempDir(`provisioning-${broker}`);
    cloud = await startLocalCloud({ dir: dir.path, broker, clock: createManualClock() });
    iot = new IoTClient({
      region: cloud.info.region,
      endpoint: cloud.info.iot,
      credentials: LOCAL_CREDENTIALS,
    });
    serveHook();
    await iot.send(new CreateThingGroupCommand({ thingGroupName: "edge-g" }));
    await iot.send(
      new CreatePolicyCommand({
        policyName: "keel-device",
        policyDocument: JSON.stringify({ Statement: { Effect: "Allow", Action: "iot:*", Resource: "*" } }),
      }),
    );
    await ensureFleetProvisioning(iot, {
      fleet: FLEET,
      region: cloud.info.region,
      account: cloud.info.account,
      hookArn: HOOK,
      provisioningRoleArn: "arn:aws:iam::000000000000:role/keel-provisioning",
      devicePolicyName: "keel-device",
    });
    claim = await createClaimCertificate(iot, FLEET);
  }, 60_000);

  afterAll(async () => {
    for (const c of open) c.end(true);
    iot?.destroy();
    await cloud?.stop();
    await dir?.remove();
  });

  it("enrols a node by claim (its key made here, only a CSR sent), which then connects as its thing and gets a job", async () => {
    const node = await claimClient("factory-1");
    const { key, body } = await csr(node);
    expect(Object.keys(body).sort()).toEqual([
      "certificateId",
      "certificateOwnershipToken",
      "certificatePem",
    ]);
    const provisioned = await node.ask(TEMPLATE, {
      certificateOwnershipToken: body.certificateOwnershipToken,
      parameters: { ThingName: "edge-001" },
    });
    expect(provisioned).toEqual({
      topic: `${TEMPLATE}/accepted`,
      body: { thingName: "edge-001", deviceConfiguration: { fleet: FLEET } },
    });
    expect(hookCalls.at(-1)).toMatchObject({
      claimCertificateId: claim.certificateId,
      certificateId: body.certificateId,
      clientId: "factory-1",
      templateArn: `arn:aws:iot:${cloud.info.region}:${cloud.info.account}:provisioningtemplate/keel-${FLEET}`,
      parameters: { ThingName: "edge-001", "AWS::IoT::Certificate::Id": body.certificateId },
    });
    const thing = await iot.send(new DescribeThingCommand({ thingName: "edge-001" }));
    expect(thing.attributes).toEqual({ fleet: FLEET });

    const device = await connect("edge-001", String(body.certificatePem), key);
    await device.subscribeAsync("$aws/things/edge-001/jobs/notify-next", { qos: 1 });
    const notified = new Promise<string>((resolve) =>
      device.once("message", (_t, p) => resolve(p.toString())),
    );
    await iot.send(
      new CreateJobCommand({
        jobId: `claim-${broker}`,
        targets: [`arn:aws:iot:${cloud.info.region}:${cloud.info.account}:thinggroup/edge-g`],
        document: JSON.stringify({ op: "hello" }),
      }),
    );
    expect(JSON.parse(await notified)).toMatchObject({ execution: { jobId: `claim-${broker}` } });
  });

  it("answers only the connection that asked, even with the same claim certificate", async () => {
    const asking = await claimClient("factory-2");
    const other = await claimClient("factory-3");
    await other.client.subscribeAsync(`${CREATE_FROM_CSR_TOPIC}/accepted`, { qos: 1 });
    await csr(asking);
    // The other connection's own request is answered after the first one's: it heard only its own.
    await csr(other);
    expect(other.answers()).toHaveLength(1);
  });

  it("keeps a claim certificate off every jobs topic", async () => {
    await iot.send(new CreateThingCommand({ thingName: "edge-victim" }));
    const c = await claimClient("edge-victim");
    const refused = await c.client.subscribeAsync("$aws/things/edge-victim/jobs/#", { qos: 1 }).then(
      () => false,
      () => true,
    );
    // aedes refuses the filter in SUBACK; mosquitto grants it but never delivers (read ACL per message).
    expect(refused).toBe(broker === "aedes");
    await iot.send(
      new CreateJobCommand({
        jobId: `victim-${broker}`,
        targets: [`arn:aws:iot:${cloud.info.region}:${cloud.info.account}:thing/edge-victim`],
        document: JSON.stringify({ op: "secret" }),
      }),
    );
    // A later answer on the same connection proves everything sent before it has arrived.
    await csr(c);
    expect(c.answers().filter((a) => a.topic.includes("/jobs/"))).toEqual([]);
  });

  it("refuses what the hook refuses, with the reason, and creates nothing", async () => {
    const node = await claimClient("factory-4");
    const { body } = await csr(node);
    const refused = await node.ask(TEMPLATE, {
      certificateOwnershipToken: body.certificateOwnershipToken,
      parameters: { ThingName: "intruder-1" },
    });
    expect(refused).toEqual({
      topic: `${TEMPLATE}/rejected`,
      body: {
        statusCode: 403,
        errorCode: "AccessDenied",
        errorMessage: "The pre-provisioning hook did not allow provisioning",
      },
    });
    expect(await thingExists("intruder-1")).toBe(false);
  });

  it("refuses an ownership token used twice", async () => {
    const node = await claimClient("factory-5");
    const { body } = await csr(node);
    const request = {
      certificateOwnershipToken: body.certificateOwnershipToken,
      parameters: { ThingName: "edge-005" },
    };
    expect((await node.ask(TEMPLATE, request)).topic).toBe(`${TEMPLATE}/accepted`);
    const again = await node.ask(TEMPLATE, { ...request, parameters: { ThingName: "edge-006" } });
    expect(again.topic).toBe(`${TEMPLATE}/rejected`);
    expect(again.body).toMatchObject({ statusCode: 400, errorCode: "InvalidCertificateOwnershipToken" });
    expect(await thingExists("edge-006")).toBe(false);
  });

  it.each<[string, string, string | Record<string, unknown>, RegExp]>([
    ["not JSON", CREATE_FROM_CSR_TOPIC, "{nope", /not valid UTF-8 JSON/],
    ["an array", CREATE_FROM_CSR_TOPIC, "[]", /must be a JSON object/],
    ["no CSR", CREATE_FROM_CSR_TOPIC, {}, /certificateSigningRequest/],
    [
      "a CSR that is not a string",
      CREATE_FROM_CSR_TOPIC,
      { certificateSigningRequest: 7 },
      /certificateSigningRequest/,
    ],
    ["a CSR that is not PEM", CREATE_FROM_CSR_TOPIC, { certificateSigningRequest: "hello" }, /not PEM/],
    ["an unknown field", CREATE_FROM_CSR_TOPIC, { certificateSigningRequest: "x", extra: 1 }, /extra/],
    ["no ownership token", TEMPLATE, { parameters: { ThingName: "edge-x" } }, /certificateOwnershipToken/],
    ["a token that is not a string", TEMPLATE, { certificateOwnershipToken: 1 }, /certificateOwnershipToken/],
    [
      "parameters that are not an object",
      TEMPLATE,
      { certificateOwnershipToken: "t", parameters: "x" },
      /parameters/,
    ],
    [
      "a parameter that is not a string",
      TEMPLATE,
      { certificateOwnershipToken: "t", parameters: { ThingName: 1 } },
      /parameters\.ThingName/,
    ],
    [
      "an unknown token",
      TEMPLATE,
      { certificateOwnershipToken: "forged", parameters: { ThingName: "edge-x" } },
      /ownership token/,
    ],
  ])("refuses %s on /rejected, creating nothing", async (_what, topic, payload, message) => {
    const node = await claimClient("factory-bad");
    const before = hookCalls.length;
    const a = await node.ask(topic, payload);
    expect(a.topic).toBe(`${topic}/rejected`);
    expect(a.body.statusCode).toBe(400);
    expect(String(a.body.errorMessage)).toMatch(message);
    expect(hookCalls.length).toBe(before);
    expect(await thingExists("edge-x")).toBe(false);
  });

  it("serves CreateKeysAndCertificate to a claim whose policy allows it (Keel's does not), and refuses a payload with fields", async () => {
    const base = `arn:aws:iot:${cloud.info.region}:${cloud.info.account}`;
    await iot.send(
      new CreatePolicyCommand({
        policyName: "keys-claim",
        policyDocument: JSON.stringify({
          Statement: [
            { Effect: "Allow", Action: "iot:Publish", Resource: `${base}:topic/${CREATE_KEYS_TOPIC}` },
            {
              Effect: "Allow",
              Action: "iot:Subscribe",
              Resource: `${base}:topicfilter/${CREATE_KEYS_TOPIC}/*`,
            },
          ],
        }),
      }),
    );
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachPolicyCommand({ policyName: "keys-claim", target: cert.certificateArn }));
    const c = new ClaimClient(
      await connect("factory-keys", cert.certificatePem ?? "", cert.keyPair?.PrivateKey ?? ""),
    );
    const made = await c.ask(CREATE_KEYS_TOPIC, {});
    expect(made.topic).toBe(`${CREATE_KEYS_TOPIC}/accepted`);
    expect(Object.keys(made.body).sort()).toEqual([
      "certificateId",
      "certificateOwnershipToken",
      "certificatePem",
      "privateKey",
    ]);
    const bad = await c.ask(CREATE_KEYS_TOPIC, { setAsActive: true });
    expect(bad.topic).toBe(`${CREATE_KEYS_TOPIC}/rejected`);
    expect(bad.body).toMatchObject({ statusCode: 400, errorCode: "InvalidPayload" });
  });

  it("keeps templates, policies and the claim certificate's rights across a restart of the local cloud", async () => {
    for (const c of open.splice(0)) c.end(true);
    await cloud.stop();
    cloud = await startLocalCloud({ dir: dir.path, broker, clock: createManualClock() });
    serveHook();
    iot.destroy();
    iot = new IoTClient({
      region: cloud.info.region,
      endpoint: cloud.info.iot,
      credentials: LOCAL_CREDENTIALS,
    });
    const node = await claimClient("factory-after-restart");
    const { body } = await csr(node);
    const done = await node.ask(TEMPLATE, {
      certificateOwnershipToken: body.certificateOwnershipToken,
      parameters: { ThingName: "edge-after" },
    });
    expect(done.topic).toBe(`${TEMPLATE}/accepted`);
    expect(await thingExists("edge-after")).toBe(true);
  });
});
