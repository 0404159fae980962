/**
 * `keel-agent enroll-claim`: a node with no AWS identity enrols itself through AWS IoT fleet provisioning by
 * claim (docs/fleets.md#fleet-provisioning-by-claim). The node's key pair is made here and never leaves it;
 * with the fleet's claim certificate (baked into the factory image) the node sends only a CSR
 * (`$aws/certificates/create-from-csr/json`), then asks the fleet's template to provision its thing with
 * the ownership token (`$aws/provisioning-templates/<T>/provision/json`). It then writes its certificate
 * and completes agent.json (thingName, mqtt), so `keel-agent run` connects as its own thing.
 *
 * Crash-safe and repeatable: the key is written (atomically) before anything is sent and reused by every
 * later attempt; the certificate is written before agent.json, and a certificate on disk that belongs to
 * the key only needs agent.json finished. A crash anywhere leaves either the old config or the new one.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { z } from "zod";
import { buildCsr } from "../../core/csr.ts";
import { describeError } from "../../core/errors.ts";
import { parseJsonText } from "../../core/parse.ts";
import { ClaimEnrolmentError } from "../errors.ts";
import { writeFileAtomic } from "../fs-atomic.ts";
import type { Logger } from "../logger.ts";
import {
  certificateFits,
  type EnrolFailure,
  nodeKey,
  readConfigObject,
  readOptional,
  writeEnrolledConfig,
} from "./identity.ts";

export const CREATE_FROM_CSR_TOPIC = "$aws/certificates/create-from-csr/json";
export const provisionTopicOf = (template: string): string =>
  `$aws/provisioning-templates/${template}/provision/json`;

export interface ClaimEnrolOptions {
  /** agent.json to complete; its other settings (slots, bootloader, …) are kept as they are. */
  config: string;
  fleet: string;
  /** The provisioning template; Keel names it keel-<fleet>. */
  template?: string;
  thingName: string;
  /** mqtts://host:port of AWS IoT (the iot:Data-ATS endpoint) or the local broker. */
  endpoint: string;
  /** PEM files: the broker's CA, and the fleet's claim certificate and key. */
  ca: string;
  claimCert: string;
  claimKey: string;
  /** Where the node's key and certificate are written; default `identity/` next to agent.json. */
  identityDir?: string;
  /** Per request; AWS answers in well under a second. */
  timeoutMs?: number;
  log: Logger;
}

const CsrAccepted = z.object({
  certificateId: z.string().regex(/^[0-9a-f]{64}$/),
  certificatePem: z.string().min(1),
  certificateOwnershipToken: z.string().min(1),
});
const ProvisionAccepted = z.object({
  thingName: z.string().min(1),
  deviceConfiguration: z.record(z.string(), z.string()).optional(),
});
const Rejected = z.object({
  statusCode: z.number().optional(),
  errorCode: z.string().optional(),
  errorMessage: z.string().optional(),
});

const fail: EnrolFailure = (message, cause) =>
  new ClaimEnrolmentError(message, cause === undefined ? undefined : { cause });

export async function enrolByClaim(o: ClaimEnrolOptions): Promise<{ thingName: string; already: boolean }> {
  const configPath = resolve(o.config);
  const dir = resolve(o.identityDir ?? join(dirname(configPath), "identity"));
  const paths = { key: join(dir, "key.pem"), cert: join(dir, "cert.pem") };
  const raw = await readConfigObject(configPath, fail);
  const { key, created } = await nodeKey(paths.key, fail);
  if (created) o.log.info("made the node's key pair", { key: paths.key });

  const existing = await readOptional(paths.cert, fail);
  if (existing !== undefined && certificateFits(existing, key)) {
    o.log.info("certificate already issued for this key; finishing agent.json", { cert: paths.cert });
    await writeConfig(configPath, raw, o, paths);
    return { thingName: o.thingName, already: true };
  }

  const template = o.template ?? `keel-${o.fleet}`;
  const client = await connectClaim(o);
  try {
    o.log.info("sending the CSR (the key stays here)", { thingName: o.thingName, fleet: o.fleet });
    const csr = parseAnswer(
      CsrAccepted,
      await request(
        client,
        CREATE_FROM_CSR_TOPIC,
        { certificateSigningRequest: buildCsr(key, o.thingName) },
        o,
      ),
      "CreateCertificateFromCsr",
    );
    if (!certificateFits(csr.certificatePem, key)) {
      throw new ClaimEnrolmentError("the certificate returned is not for this node's key");
    }
    o.log.info("provisioning the thing", { template, certificateId: csr.certificateId });
    const done = parseAnswer(
      ProvisionAccepted,
      await request(
        client,
        provisionTopicOf(template),
        { certificateOwnershipToken: csr.certificateOwnershipToken, parameters: { ThingName: o.thingName } },
        o,
      ),
      "RegisterThing",
    );
    if (done.thingName !== o.thingName) {
      throw new ClaimEnrolmentError(`the template provisioned ${done.thingName}, not ${o.thingName}`);
    }
    // Certificate first, agent.json last: a crash in between is finished by the next run.
    await writeFileAtomic(paths.cert, csr.certificatePem);
    await writeConfig(configPath, raw, o, paths);
    o.log.info("enrolled", { thingName: o.thingName, certificateId: csr.certificateId });
    return { thingName: o.thingName, already: false };
  } finally {
    await client.endAsync(true).catch(() => {});
  }
}

/** thingName and mqtt set; the result must be a valid agent config before it replaces the file. */
async function writeConfig(
  path: string,
  raw: Record<string, unknown>,
  o: ClaimEnrolOptions,
  paths: { key: string; cert: string },
): Promise<void> {
  const next = {
    ...raw,
    thingName: o.thingName,
    mqtt: { endpoint: o.endpoint, cert: paths.cert, key: paths.key, ca: resolve(o.ca) },
  };
  await writeEnrolledConfig(path, dirname(path), next);
}

async function connectClaim(o: ClaimEnrolOptions): Promise<MqttClient> {
  const [ca, cert, key] = await Promise.all(
    [o.ca, o.claimCert, o.claimKey].map((p) =>
      readFile(p, "utf8").catch((err: unknown) => {
        throw new ClaimEnrolmentError(`cannot read ${p}`, { cause: err });
      }),
    ),
  );
  try {
    return await mqtt.connectAsync(o.endpoint, {
      // The claim certificate may connect with any client id; the thing name makes logs readable.
      clientId: o.thingName,
      ca,
      cert,
      key,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: o.timeoutMs ?? 30_000,
    });
  } catch (err) {
    throw new ClaimEnrolmentError(`cannot connect to ${o.endpoint} with the claim certificate`, {
      cause: err,
    });
  }
}

/** Publishes a request and resolves with the answer on `/accepted`; `/rejected` throws its reason. */
async function request(
  client: MqttClient,
  topic: string,
  body: Record<string, unknown>,
  o: ClaimEnrolOptions,
): Promise<unknown> {
  // AWS: subscribe to the answers before asking, or the answer may be lost.
  await client.subscribeAsync([`${topic}/accepted`, `${topic}/rejected`], { qos: 1 });
  const answer = new Promise<{ accepted: boolean; body: unknown }>((resolveAnswer, reject) => {
    const timer = setTimeout(
      () => reject(new ClaimEnrolmentError(`no answer on ${topic} within ${o.timeoutMs ?? 30_000} ms`)),
      o.timeoutMs ?? 30_000,
    );
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== `${topic}/accepted` && t !== `${topic}/rejected`) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      try {
        resolveAnswer({ accepted: t.endsWith("/accepted"), body: parseJsonText(payload, t) });
      } catch (err) {
        reject(new ClaimEnrolmentError(`the answer on ${t} is not JSON`, { cause: err }));
      }
    };
    client.on("message", onMessage);
  });
  await client.publishAsync(topic, JSON.stringify(body), { qos: 1 });
  const a = await answer;
  await client.unsubscribeAsync([`${topic}/accepted`, `${topic}/rejected`]);
  if (!a.accepted) {
    const r = Rejected.safeParse(a.body);
    const why = r.success
      ? `${r.data.errorCode ?? "?"} (${r.data.statusCode ?? "?"}): ${r.data.errorMessage ?? ""}`
      : "";
    throw new ClaimEnrolmentError(`${topic} was rejected: ${why}`);
  }
  return a.body;
}

function parseAnswer<S extends z.ZodType>(schema: S, body: unknown, what: string): z.output<S> {
  const r = schema.safeParse(body);
  if (!r.success)
    throw new ClaimEnrolmentError(`${what} answered something unexpected: ${describeError(r.error)}`);
  return r.data;
}
