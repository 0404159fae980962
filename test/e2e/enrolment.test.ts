/**
 * Devices enrol themselves (docs/fleets.md#enrolment), end to end on the local cloud with the real Lambda
 * wiring: a node's key is made on the node and only its CSR is sent, signed with the node's AWS identity;
 * the fleet's allow-list (account, role, role tag) decides; the certificate connects over mutual TLS; and
 * `keel fleet remove` makes the broker refuse it — on aedes and on mosquitto.
 */
import { execFile, execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  CreateCertificateFromCsrCommand,
  DescribeThingCommand,
  ListThingGroupsForThingCommand,
} from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient, ApiError } from "../../cli/api-client.ts";
import { buildCsr } from "../../core/csr.ts";
import { derToPem } from "../../core/der.ts";
import { enrol } from "../../device/enrol/api.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { type FunctionsWiring, startFunctionsWiring } from "../../local/functions-wiring.ts";
import { assumedRolePrincipal, LOCAL_OPERATOR, LocalIam, type LocalPrincipal } from "../../local/iam.ts";
import { startTestCloud, type TestCloud } from "../functions/cloud.ts";
import { connectDevice } from "../local/helpers.ts";

const run = promisify(execFile);
const AGENT = resolve(import.meta.dirname, "../../bin/keel-agent.mjs");
const NODE_ROLE = "arn:aws:iam::111111111111:role/keel-node";
const nodeA = assumedRolePrincipal("NODEA", "111111111111", "keel-node", "i-0aaaaaaaaaaaaaaaa");
const nodeB = assumedRolePrincipal("NODEB", "111111111111", "keel-node", "i-0bbbbbbbbbbbbbbbb");
const tagged = assumedRolePrincipal("TAGGED", "222222222222", "edge-workers", "i-0cccccccccccccccc");
const stranger = assumedRolePrincipal("STRANGER", "333333333333", "keel-node", "i-0dddddddddddddddd");

const credsOf = (p: LocalPrincipal) => ({ accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey });

describe.each(["aedes", "mosquitto"] as const)("enrolment on %s", (broker) => {
  let cloud: TestCloud;
  let wiring: FunctionsWiring;
  let operator: ApiClient;
  let tmp: string;
  const iam = new LocalIam([LOCAL_OPERATOR, nodeA, nodeB, tagged, stranger]);
  iam.tagRole("222222222222", "edge-workers", { "keel:fleet": "edge" });

  /** A fresh node's agent.json: slots and bootloader, no identity yet. */
  async function newNode(name: string): Promise<{ dir: string; config: string }> {
    const dir = await mkdtemp(join(tmp, `${name}-`));
    const config = join(dir, "agent.json");
    const value = {
      hardware: "qemu-x86_64",
      stateDir: "state",
      slots: { A: "a.img", B: "b.img" },
      bootloader: { type: "grub", envFile: "grubenv" },
    };
    await writeFile(config, JSON.stringify(value));
    return { dir, config };
  }

  const enrolAs = (p: LocalPrincipal, config: string, thing: string) =>
    enrol({
      config,
      fleet: "edge",
      api: wiring.apiUrl,
      region: cloud.info.region,
      credentials: credsOf(p),
      thing,
      ca: cloud.ca.caFile,
    });

  async function connects(thing: string, certFile: string, keyFile: string): Promise<string | true> {
    await cloud.broker.settled?.();
    const [cert, key] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
    const outcome = await connectDevice(cloud.info.mqtt, thing, { ca: cloud.ca.caCertPem, cert, key });
    if (!outcome.connected) return outcome.error;
    await outcome.client.endAsync();
    return true;
  }

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), `keel-enrol-${broker}-`));
    cloud = await startTestCloud(broker);
    wiring = await startFunctionsWiring(cloud, {
      tickSeconds: 3600,
      logLevel: "silent",
      fleets: ["edge"],
      iam,
    });
    operator = new ApiClient({
      apiUrl: wiring.apiUrl,
      region: cloud.info.region,
      credentials: LOCAL_CREDENTIALS,
    });
    await operator.put("/fleets/edge/enrolment", {
      roles: [NODE_ROLE],
      tags: [{ key: "keel:fleet", value: "edge" }],
    });
  });
  afterAll(async () => {
    await wiring?.stop();
    await cloud?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it("a node enrols with its role and a key made on it, connects, and once removed is refused at connect", async () => {
    const node = await newNode("n1");
    const r = await enrolAs(nodeA, node.config, "edge-n1");
    expect(r).toMatchObject({ thingName: "edge-n1", already: false, newKey: true });
    expect((await stat(r.keyFile)).mode & 0o777).toBe(0o600);
    // The certificate is for the node's key, and agent.json now names the thing and the identity.
    const key = createPublicKey(await readFile(r.keyFile, "utf8"));
    const cert = new X509Certificate(await readFile(r.certFile, "utf8"));
    expect(cert.publicKey.export({ format: "der", type: "spki" })).toEqual(
      key.export({ format: "der", type: "spki" }),
    );
    const config = JSON.parse(await readFile(node.config, "utf8"));
    expect(config).toMatchObject({
      thingName: "edge-n1",
      mqtt: { endpoint: cloud.info.mqtt, cert: r.certFile, key: r.keyFile },
    });
    // Registered like any device: bucket group, fleet record, audited with the principal and the rule.
    const groups = await cloud.iotClient.send(new ListThingGroupsForThingCommand({ thingName: "edge-n1" }));
    expect(groups.thingGroups?.map((g) => g.groupName)).toEqual([expect.stringMatching(/^edge-b\d\d$/)]);
    const audit = (await cloud.store.listAudit()).find(
      (a) => a.action === "thing.enrol" && a.target === "edge-n1",
    );
    expect(audit).toMatchObject({
      who: nodeA.arn,
      detail: { keyMadeOn: "node", allowedBy: `role ${NODE_ROLE}` },
    });

    expect(await connects("edge-n1", r.certFile, r.keyFile)).toBe(true);
    // Enrolling again with everything in place changes nothing and asks nothing.
    expect(await enrolAs(nodeA, node.config, "edge-n1")).toMatchObject({ already: true });

    const removed = await operator.delete("/fleets/edge/things/edge-n1");
    expect(removed).toMatchObject({
      removed: true,
      certificates: [r.certificateId],
      groups: [expect.any(String)],
    });
    expect(await connects("edge-n1", r.certFile, r.keyFile)).toMatch(
      /Not authorized|closed|ECONNRESET|alert/i,
    );
    const gone = await cloud.iotClient
      .send(new DescribeThingCommand({ thingName: "edge-n1" }))
      .catch((e: Error) => e);
    expect(gone).toMatchObject({ name: "ResourceNotFoundException" });
    expect(cloud.iot.authority.checkConnect(r.certificateId ?? "", "edge-n1")).toMatch(/is INACTIVE/);
    expect(await cloud.store.getThing("edge-n1")).toBeUndefined();
    // Idempotent.
    expect(await operator.delete("/fleets/edge/things/edge-n1")).toMatchObject({
      removed: false,
      certificates: [],
    });
  });

  it.runIf(broker === "aedes")(
    "the allow-list decides: account, role, role tag; anyone else is a 403 that creates nothing",
    async () => {
      const tagNode = await newNode("tag");
      expect(await enrolAs(tagged, tagNode.config, "edge-tag")).toMatchObject({ already: false });
      const audit = (await cloud.store.listAudit()).find(
        (a) => a.action === "thing.enrol" && a.target === "edge-tag",
      );
      expect(audit?.detail).toMatchObject({ allowedBy: "tag keel:fleet=edge on role edge-workers" });

      const out = await newNode("out");
      const refused = await enrolAs(stranger, out.config, "edge-out").catch((e: Error) => e);
      expect(refused).toMatchObject({ name: "EnrolmentError", status: 403 });
      expect((refused as Error).message).toMatch(
        /assumed-role\/keel-node\/i-0d.* may not enrol nodes into fleet edge/,
      );
      expect(await cloud.store.getThing("edge-out")).toBeUndefined();
      const noThing = await cloud.iotClient
        .send(new DescribeThingCommand({ thingName: "edge-out" }))
        .catch((e: Error) => e);
      expect(noThing).toMatchObject({ name: "ResourceNotFoundException" });
      expect(
        (await cloud.store.listAudit()).some(
          (a) => a.action === "thing.enrol.refused" && a.who === stranger.arn,
        ),
      ).toBe(true);
      // The key stays for the next attempt: the same key once the operator lets the account in.
      const key = await readFile(join(out.dir, "state/identity/key.pem"), "utf8");
      await operator.put("/fleets/edge/enrolment", { accounts: ["333333333333"], roles: [NODE_ROLE] });
      expect(await enrolAs(stranger, out.config, "edge-out")).toMatchObject({ newKey: false });
      expect(await readFile(join(out.dir, "state/identity/key.pem"), "utf8")).toBe(key);
      // Unknown access keys never reach the function (the Function URL's IAM auth): 403.
      const unknown = assumedRolePrincipal("NOBODY", "111111111111", "keel-node", "i-0eeeeeeeeeeeeeeee");
      const e = await enrolAs(unknown, (await newNode("unk")).config, "edge-unk").catch((x: Error) => x);
      expect(e).toMatchObject({ status: 403 });
      expect((e as Error).message).toMatch(/unknown access key NOBODY/);
    },
  );

  it.runIf(broker === "aedes")(
    "a lost answer: the same principal enrols again and gets a new certificate, others get 409",
    async () => {
      const node = await newNode("lost");
      const first = await enrolAs(nodeA, node.config, "edge-lost");
      // The cut: the answer never reached the disk, agent.json was not updated.
      await writeFile(
        node.config,
        JSON.stringify({
          hardware: "qemu-x86_64",
          stateDir: "state",
          slots: { A: "a.img", B: "b.img" },
          bootloader: { type: "grub", envFile: "grubenv" },
        }),
      );
      await rm(first.certFile);
      const again = await enrolAs(nodeA, node.config, "edge-lost");
      expect(again.certificateId).not.toBe(first.certificateId);
      expect(cloud.iot.authority.checkConnect(first.certificateId ?? "", "edge-lost")).toMatch(/is INACTIVE/);
      expect(cloud.iot.authority.checkConnect(again.certificateId ?? "", "edge-lost")).toBeNull();
      const other = await enrolAs(nodeB, (await newNode("thief")).config, "edge-lost").catch((x: Error) => x);
      expect(other).toMatchObject({ name: "EnrolmentError", status: 409 });
      expect((other as Error).message).toMatch(/already registered \(fleet edge\) by someone else/);
    },
  );

  it.runIf(broker === "aedes")(
    "bad, foreign or forged CSRs are a 400 that creates nothing, at the API and at CreateCertificateFromCsr",
    async () => {
      const api = new ApiClient({
        apiUrl: wiring.apiUrl,
        region: cloud.info.region,
        credentials: credsOf(nodeA),
      });
      const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
      const forged = forge(buildCsr(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, "x"));
      const cases: Array<[string, string, RegExp]> = [
        [
          "garbled",
          "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
          /not valid DER/,
        ],
        ["a certificate", cloud.ca.caCertPem, /is a PEM CERTIFICATE/],
        ["P-384", buildCsrUnchecked(p384, tmp), /only EC P-256/],
        ["forged", forged, /signature does not verify/],
      ];
      for (const [what, csr, reason] of cases) {
        const e = await api
          .post("/fleets/edge/enrolments", { thingName: `edge-bad-${what.replace(/\W/g, "")}`, csr })
          .catch((x: unknown) => x);
        expect(e, what).toBeInstanceOf(ApiError);
        expect((e as ApiError).status, what).toBe(400);
        expect((e as ApiError).issues[0], what).toMatchObject({
          path: "csr",
          message: expect.stringMatching(reason),
        });
        const r = await operator
          .post("/fleets/edge/things", { thingName: "edge-bad-op", csr })
          .catch((x: unknown) => x);
        expect((r as ApiError).status, what).toBe(400);
        const sdk = await cloud.iotClient
          .send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: csr }))
          .catch((x: Error) => x);
        expect(sdk, what).toMatchObject({ name: "InvalidRequestException" });
      }
      expect(await cloud.store.getThing("edge-bad-op")).toBeUndefined();
      const long = await cloud.iotClient
        .send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: "x".repeat(4097) }))
        .catch((x: Error) => x);
      expect(long).toMatchObject({
        name: "InvalidRequestException",
        message: expect.stringMatching(/certificateSigningRequest/),
      });
    },
  );

  it.runIf(broker === "aedes")(
    "keel fleet register --csr: the operator registers a node's CSR; no private key is made or returned",
    async () => {
      const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
      const t = (await operator.post("/fleets/edge/things", {
        thingName: "edge-op",
        csr: buildCsr(key, "edge-op"),
      })) as Record<string, string>;
      expect(t.privateKey).toBeUndefined();
      expect(
        new X509Certificate(t.certificatePem ?? "").publicKey.export({ format: "der", type: "spki" }),
      ).toEqual(createPublicKey(key).export({ format: "der", type: "spki" }));
    },
  );

  it.runIf(broker === "aedes")(
    "keel-agent enroll as a command: signed with the environment's credentials, next steps printed",
    async () => {
      const node = await newNode("cli");
      const { stdout } = await run(
        process.execPath,
        [
          AGENT,
          "enroll",
          "-c",
          node.config,
          "--fleet",
          "edge",
          "--api",
          wiring.apiUrl,
          "--thing",
          "edge-cli",
          "--ca",
          cloud.ca.caFile,
        ],
        {
          env: {
            ...process.env,
            AWS_REGION: cloud.info.region,
            AWS_ACCESS_KEY_ID: nodeB.accessKeyId,
            AWS_SECRET_ACCESS_KEY: nodeB.secretAccessKey,
            AWS_PROFILE: "",
          },
        },
      );
      expect(stdout).toMatch(/enrolled edge-cli in fleet edge/);
      expect(stdout).toMatch(/made on this node; it never left the node/);
      expect(stdout).toMatch(/next: start the agent/);
    },
  );
});

/** The CSR with the last byte of its signature changed: well-formed, but the signature no longer verifies. */
function forge(pem: string): string {
  const der = Buffer.from(
    pem
      .split("\n")
      .filter((l) => l && !l.startsWith("-----"))
      .join(""),
    "base64",
  );
  der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
  return derToPem("CERTIFICATE REQUEST", der);
}

/** A CSR for a key the builder refuses (P-384), made by openssl so the cloud's check is what is tested. */
function buildCsrUnchecked(key: ReturnType<typeof generateKeyPairSync>["privateKey"], dir: string): string {
  const file = join(dir, "p384.key");
  writeFileSync(file, key.export({ format: "pem", type: "pkcs8" }));
  return execFileSync("openssl", ["req", "-new", "-key", file, "-subj", "/CN=p384"], { encoding: "utf8" });
}
