/**
 * Reading what operators hand the CLI: JSON documents (bounded, strict UTF-8, parsed by core's schemas),
 * key files, trust roots and their chains, and flag values; and writing results atomically so a failed
 * command never leaves a half-written file.
 */
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { InvalidArgumentError } from "commander";
import { parseDurationSeconds } from "../core/duration.ts";
import { describeError, SchemaError } from "../core/errors.ts";
import { type KeyPair, parsePublicKeyFile, parseSecretKeyFile } from "../core/keys.ts";
import { MAX_JSON_BYTES, parseJsonText } from "../core/parse.ts";
import type { RootSigned } from "../core/schemas.ts";
import { parseRootEnvelope, type TrustedTime, verifyRole, walkRootChain } from "../core/verify.ts";
import { CliFileError, errnoCode } from "./errors.ts";

/**
 * The size of the regular file at `path`. A directory or device is refused as "is not a regular file";
 * a file that cannot be looked at fails with `cannot` and the system's reason.
 */
export async function regularFileSize(path: string, cannot: string): Promise<number> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new CliFileError(path, "is not a regular file");
    return st.size;
  } catch (err) {
    if (err instanceof CliFileError) throw err;
    throw new CliFileError(path, `${cannot} (${describeError(err)})`, { cause: err });
  }
}

/**
 * Reads a whole small file (a JSON document or key file, `what` names it in errors). A file over the
 * JSON limit is refused from its size alone: it is never loaded into memory.
 */
export async function readSmallFile(path: string, what = "document"): Promise<Uint8Array> {
  const size = await regularFileSize(path, "cannot read");
  if (size > MAX_JSON_BYTES) {
    throw new SchemaError(`${what} ${path}`, [
      { path: "", message: `document is ${size} bytes, limit is ${MAX_JSON_BYTES}` },
    ]);
  }
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new CliFileError(path, `cannot read (${describeError(err)})`, { cause: err });
  }
}

/** JSON from a file: size limit, strict UTF-8 and syntax errors all name the file. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  return parseJsonText(await readSmallFile(path, what), `${what} ${path}`);
}

/** Key files are UTF-8 JSON; decoding is strict so a corrupted file is refused, not "repaired". */
async function readKeyText(path: string, what: string): Promise<string> {
  const bytes = await readSmallFile(path, what);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new SchemaError(`${what} ${path}`, [{ path: "", message: "not valid UTF-8" }], { cause: err });
  }
}

export async function loadPublicKeys(paths: ReadonlyArray<string>) {
  const keys = [];
  for (const p of paths) keys.push(parsePublicKeyFile(await readKeyText(p, "public key file"), p));
  return keys;
}

export async function loadSecretKeys(paths: ReadonlyArray<string>): Promise<KeyPair[]> {
  const keys: KeyPair[] = [];
  for (const p of paths) keys.push(parseSecretKeyFile(await readKeyText(p, "secret key file"), p));
  return keys;
}

/**
 * The root an operator trusts: `rootPath` must be signed by its own root threshold, then each file of
 * `chainPaths` (root N+1, N+2, …) must be a valid rotation of the one before. Only the root the walk ends
 * on must be unexpired, as on a device (TUF §5.3).
 */
export async function loadTrustedRoot(
  rootPath: string,
  chainPaths: ReadonlyArray<string>,
  time: TrustedTime,
): Promise<RootSigned> {
  const env = parseRootEnvelope(await readJsonFile(rootPath, "trust root"), `trust root ${rootPath}`);
  verifyRole(
    env.signed,
    env.signatures,
    env.signed,
    "root",
    `root role of ${rootPath} (v${env.signed.version})`,
  );
  const chain: unknown[] = [];
  for (const p of chainPaths) chain.push(await readJsonFile(p, "trust root"));
  return walkRootChain(env.signed, chain, time);
}

/** Writes via a temp file in the same directory and a rename: readers see the old file or the new one. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, data, { mode, flag: "wx" });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new CliFileError(path, `cannot write (${describeError(err)})`, { cause: err });
  }
}

/** Creates a new file, refusing to replace an existing one (keys are never overwritten by accident). */
export async function writeNewFile(path: string, data: string, mode: number): Promise<void> {
  try {
    await writeFile(path, data, { mode, flag: "wx" });
  } catch (err) {
    const msg = errnoCode(err) === "EEXIST" ? "already exists; refusing to overwrite it" : describeError(err);
    throw new CliFileError(path, msg, { cause: err });
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return false;
    throw new CliFileError(path, `cannot stat (${describeError(err)})`, { cause: err });
  }
}

/** Commander collector for `--opt a,b --opt c`: comma lists and repeats both accumulate. */
export function collectList(value: string, previous: string[] = []): string[] {
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) throw new InvalidArgumentError("expected at least one value");
  return [...previous, ...items];
}

/** Commander parser for integers ≥ `min`; refuses 1.5, 1e3, "2x" and the like. */
export function intOption(min: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
    const n = Number(value.trim());
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
    return n;
  };
}

/** Commander parser for durations such as 90d, 12h, 3600 (seconds). */
export function durationOption(value: string): number {
  try {
    return parseDurationSeconds(value);
  } catch (err) {
    throw new InvalidArgumentError(describeError(err));
  }
}

/** ISO 8601 UTC to the second: what we write in createdAt/expiresAt (milliseconds add nothing). */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.000Z$/, "Z");
}
