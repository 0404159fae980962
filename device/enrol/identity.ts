/**
 * What both ways of enrolling do on the node (docs/fleets.md#enrolment, #fleet-provisioning-by-claim): the
 * key pair is made here and kept (written 0600, atomically, before anything is sent, and re-used by every
 * later attempt), a certificate is accepted only for that key, and agent.json is replaced only by a config
 * the agent itself accepts. Each caller names its own error (`fail`), so a failure says which way failed.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { describeError } from "../../core/errors.ts";
import { parseJsonText } from "../../core/parse.ts";
import { parseAgentConfig } from "../config.ts";
import { writeFileAtomic } from "../fs-atomic.ts";

/** Makes the caller's named error for a message and the cause behind it. */
export type EnrolFailure = (message: string, cause?: unknown) => Error;

/** The file's text, or undefined when it does not exist; any other read error is a failure. */
export async function readOptional(path: string, fail: EnrolFailure): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fail(`${path}: cannot read (${describeError(err)})`, err);
  }
}

/** The node's key: the one an earlier attempt left, or a new EC P-256 key written before anything is sent. */
export async function nodeKey(
  keyFile: string,
  fail: EnrolFailure,
): Promise<{ key: KeyObject; created: boolean }> {
  const existing = await readOptional(keyFile, fail);
  if (existing !== undefined) {
    try {
      return { key: createPrivateKey(existing), created: false };
    } catch (err) {
      throw fail(`${keyFile} exists but is not a private key; remove it to enrol with a new one`, err);
    }
  }
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await writeFileAtomic(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }));
  return { key: privateKey, created: true };
}

const spki = (k: KeyObject) => k.export({ format: "der", type: "spki" });

/** Whether the PEM certificate is for this key (anything unreadable is not). */
export function certificateFits(certPem: string, key: KeyObject): boolean {
  try {
    return spki(new X509Certificate(certPem).publicKey).equals(spki(createPublicKey(key)));
  } catch {
    return false;
  }
}

/** agent.json as a plain object, to be completed and written back with its other settings kept. */
export async function readConfigObject(path: string, fail: EnrolFailure): Promise<Record<string, unknown>> {
  const text = await readOptional(path, fail);
  if (text === undefined) throw fail(`${path}: no such file`);
  const value = parseJsonText(text, `agent config ${path}`);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fail(`${path}: must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Replaces agent.json with `next` once the agent's own schema accepts it (relative paths read from `base`);
 * `invalid` may turn the schema's refusal into the caller's error, else it is thrown as it is.
 */
export async function writeEnrolledConfig(
  path: string,
  base: string,
  next: Record<string, unknown>,
  invalid?: (err: unknown) => Error,
): Promise<void> {
  try {
    parseAgentConfig(next, base, `agent config ${path} after enrolment`);
  } catch (err) {
    throw invalid ? invalid(err) : err;
  }
  await writeFileAtomic(path, `${JSON.stringify(next, null, 2)}\n`);
}
