/**
 * `keel-agent enroll --fleet F --api URL`: a new node joins a fleet by itself (docs/fleets.md#enrolment).
 *
 *   1. its key pair is generated HERE, EC P-256, and kept in <stateDir>/identity/key.pem (mode 0600);
 *   2. only a CSR for it is sent, to POST /fleets/F/enrolments, SigV4-signed with the node's own AWS
 *      identity (the default credential chain: the EC2 instance role in AWS, env credentials locally);
 *   3. the certificate the API answers with is checked to be for this key and written beside it;
 *   4. agent.json gets the thing name and the MQTT identity, so `keel-agent run` connects.
 *
 * Crash-safe at every step (device/enrol/identity.ts): each file is written atomically; a key already on disk
 * is re-used, never replaced, so a cut before the answer re-sends a CSR for the same key, and the API lets
 * the principal that enrolled a thing enrol it again (the certificate a cut lost is retired, a new one
 * issued). A node already enrolled with this key exits 0 without calling the API.
 */
import { hostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { buildCsr } from "../../core/csr.ts";
import { describeError } from "../../core/errors.ts";
import { type Credentials, functionUrlSigner, sendSigned, urlUnder } from "../../core/signed-request.ts";
import { EnrolmentError } from "../errors.ts";
import { writeFileAtomic } from "../fs-atomic.ts";
import {
  certificateFits,
  type EnrolFailure,
  nodeKey,
  readConfigObject,
  readOptional,
  writeEnrolledConfig,
} from "./identity.ts";

export interface EnrolOptions {
  /** agent.json: read for stateDir (and mqtt.ca), then updated in place. */
  config: string;
  fleet: string;
  api: string;
  region: string;
  credentials: Credentials;
  /** Default: this host's name, made a valid thing name. */
  thing?: string | undefined;
  /** The CA the broker's certificate chains to; default agent.json's mqtt.ca. */
  ca?: string | undefined;
  /** Default: the endpoint the API answers with (AWS IoT's iot:Data-ATS), on 8883 when it names no port. */
  mqttEndpoint?: string | undefined;
}

export interface EnrolResult {
  thingName: string;
  fleet: string;
  certificateId: string | undefined;
  keyFile: string;
  certFile: string;
  /** True when the node was enrolled already and nothing was asked of the API. */
  already: boolean;
  /** True when the key was generated now (false: re-used from an earlier, cut, attempt). */
  newKey: boolean;
}

/** What the node reads of the API's answer; the key is not in it, and must not be. */
const EnrolAnswerSchema = z.object({
  thingName: z.string(),
  fleet: z.string(),
  certificateId: z.string().optional(),
  certificatePem: z.string().min(1),
  endpoint: z.string().optional(),
});

/** A host name as a thing name: letters, digits and `:_-` only. */
export function defaultThingName(host = hostname()): string {
  const name =
    host
      .split(".")[0]
      ?.replace(/[^a-zA-Z0-9:_-]/g, "-")
      .slice(0, 128) ?? "";
  if (!name) throw new EnrolmentError("cannot derive a thing name from the host name; pass --thing");
  return name;
}

const fail: EnrolFailure = (message, cause) =>
  new EnrolmentError(message, undefined, cause === undefined ? undefined : { cause });

export async function enrol(o: EnrolOptions): Promise<EnrolResult> {
  const config = await readConfigObject(o.config, fail);
  const base = dirname(resolve(o.config));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const stateDir = abs(typeof config.stateDir === "string" ? config.stateDir : "/var/lib/keel");
  const identityDir = join(stateDir, "identity");
  const keyFile = join(identityDir, "key.pem");
  const certFile = join(identityDir, "cert.pem");
  const thingName = o.thing ?? defaultThingName();
  const mqtt = (typeof config.mqtt === "object" && config.mqtt !== null ? config.mqtt : {}) as Record<
    string,
    unknown
  >;
  const ca = o.ca !== undefined ? resolve(o.ca) : typeof mqtt.ca === "string" ? abs(mqtt.ca) : undefined;
  if (ca === undefined) {
    throw new EnrolmentError("no CA for the broker: pass --ca <file> (AWS IoT: Amazon Root CA 1)");
  }

  const { key, created } = await nodeKey(keyFile, fail);
  const known = await readOptional(certFile, fail);
  const current = config.thingName === thingName && mqtt.cert === certFile && mqtt.key === keyFile;
  if (current && known !== undefined && certificateFits(known, key)) {
    return {
      thingName,
      fleet: o.fleet,
      certificateId: undefined,
      keyFile,
      certFile,
      already: true,
      newKey: false,
    };
  }

  const csr = buildCsr(key, thingName);
  const url = urlUnder(new URL(o.api), `/fleets/${encodeURIComponent(o.fleet)}/enrolments`);
  const answer = await sendSigned(
    functionUrlSigner(o.credentials, o.region),
    url,
    "POST",
    JSON.stringify({ thingName, csr }),
  ).catch((err: unknown) => {
    throw new EnrolmentError(describeError(err), undefined, { cause: err });
  });
  if (answer.status < 200 || answer.status >= 300) {
    throw new EnrolmentError(
      `the rollout API refused the enrolment: ${answer.status} ${reasonOf(answer.payload)}`,
      answer.status,
    );
  }
  const got = EnrolAnswerSchema.safeParse(safeJson(answer.payload));
  if (!got.success)
    throw new EnrolmentError(`the rollout API's answer is not an enrolment: ${answer.payload.slice(0, 200)}`);
  if (!certificateFits(got.data.certificatePem, key)) {
    throw new EnrolmentError(
      "the certificate the API returned is not for this node's key; nothing was written",
    );
  }
  const endpoint = o.mqttEndpoint ?? mqttUrl(got.data.endpoint);
  await writeFileAtomic(certFile, got.data.certificatePem);
  const next = { ...config, thingName, mqtt: { ...mqtt, endpoint, cert: certFile, key: keyFile, ca } };
  // The result must be a config the agent accepts before it replaces the old one.
  await writeEnrolledConfig(
    o.config,
    base,
    next,
    (err) =>
      new EnrolmentError(
        `${describeError(err)} (the certificate is in ${certFile}; agent.json was not changed)`,
        undefined,
        { cause: err },
      ),
  );
  return {
    thingName,
    fleet: o.fleet,
    certificateId: got.data.certificateId,
    keyFile,
    certFile,
    already: false,
    newKey: created,
  };
}

function mqttUrl(endpoint: string | undefined): string {
  if (!endpoint) throw new EnrolmentError("the API's answer names no IoT endpoint; pass --mqtt-endpoint");
  return `mqtts://${endpoint}${/:\d+$/.test(endpoint) ? "" : ":8883"}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function reasonOf(payload: string): string {
  const v = safeJson(payload) as { error?: unknown; Message?: unknown } | undefined;
  const m = v?.error ?? v?.Message;
  return typeof m === "string" ? m : payload.slice(0, 200);
}
