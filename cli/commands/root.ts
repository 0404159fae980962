/**
 * `keel root init|rotate`: the TUF-style trust root (docs/architecture.md#releases-and-trust). Every root is
 * verified with core's own rules before it is written, so the CLI can never produce a root that devices
 * would refuse.
 */
import type { Command } from "commander";
import { type KeyPair, publicKeyEntry, signValue } from "../../core/keys.ts";
import { parseWith } from "../../core/parse.ts";
import { type Envelope, type RootSigned, RootSignedSchema, type Signature } from "../../core/schemas.ts";
import { parseRootEnvelope, verifyInitialRoot, verifyRole, verifyRootUpdate } from "../../core/verify.ts";
import { CliFileError } from "../errors.ts";
import {
  collectList,
  durationOption,
  exists,
  intOption,
  isoSeconds,
  loadPublicKeys,
  loadSecretKeys,
  readJsonFile,
  writeFileAtomic,
} from "../inputs.ts";

export interface RootFlags {
  keys: string[];
  threshold: number;
  releaseKeys?: string[] | undefined;
  releaseThreshold?: number | undefined;
  sign: string[];
  out: string;
  expires?: number | undefined; // seconds from now; default 365 days
  force?: boolean | undefined;
}

/** The signed part of a root with `version`, from key files; validated by core's schema. */
async function buildRootSigned(flags: RootFlags, version: number, nowMs: number): Promise<RootSigned> {
  const rootKeys = await loadPublicKeys(flags.keys);
  // Release keys default to the root keys (with the root threshold); a separate release key set defaults to
  // needing one signature, the usual single CI or release-manager key.
  const releaseKeys = flags.releaseKeys ? await loadPublicKeys(flags.releaseKeys) : rootKeys;
  const keys: RootSigned["keys"] = {};
  for (const k of [...rootKeys, ...releaseKeys]) keys[k.keyId] = publicKeyEntry(k.publicKey);
  return parseWith(
    RootSignedSchema,
    {
      _type: "root",
      schemaVersion: 1,
      version,
      expiresAt: isoSeconds(nowMs + (flags.expires ?? 365 * 86400) * 1000),
      keys,
      roles: {
        root: { keyIds: rootKeys.map((k) => k.keyId), threshold: flags.threshold },
        release: {
          keyIds: releaseKeys.map((k) => k.keyId),
          threshold: flags.releaseThreshold ?? (flags.releaseKeys ? 1 : flags.threshold),
        },
      },
    },
    `trust root v${version} built from the flags`,
  );
}

/** One signature per distinct key (a key given twice signs once: it would count once anyway). */
export function signAll(signed: unknown, keys: ReadonlyArray<KeyPair>): Signature[] {
  const seen = new Map<string, Signature>();
  for (const k of keys) if (!seen.has(k.keyId)) seen.set(k.keyId, signValue(signed, k));
  return [...seen.values()];
}

export function envelopeText(env: Envelope<unknown>): string {
  return `${JSON.stringify(env, null, 2)}\n`;
}

async function refuseOverwrite(path: string, force: boolean | undefined): Promise<void> {
  if (!force && (await exists(path))) {
    throw new CliFileError(path, "already exists; refusing to overwrite it (use --force)");
  }
}

function summary(root: RootSigned): string {
  const r = root.roles;
  return `trust root v${root.version}: root ${r.root.threshold}-of-${r.root.keyIds.length}, release ${r.release.threshold}-of-${r.release.keyIds.length}, expires ${root.expiresAt}`;
}

export async function rootInit(flags: RootFlags, nowMs = Date.now()): Promise<RootSigned> {
  await refuseOverwrite(flags.out, flags.force);
  const signed = await buildRootSigned(flags, 1, nowMs);
  const env = { signed, signatures: signAll(signed, await loadSecretKeys(flags.sign)) };
  // A root that does not meet its own root threshold would be refused by every device: never write one.
  verifyInitialRoot(env, { now: new Date(nowMs) });
  await writeFileAtomic(flags.out, envelopeText(env));
  return signed;
}

export async function rootRotate(
  flags: RootFlags & { from: string },
  nowMs = Date.now(),
): Promise<RootSigned> {
  await refuseOverwrite(flags.out, flags.force);
  const current = parseRootEnvelope(await readJsonFile(flags.from, "trust root"), `trust root ${flags.from}`);
  // The root we rotate from must itself be genuine; its expiry does not matter (rotating away is the fix).
  verifyRole(current.signed, current.signatures, current.signed, "root", `root role of ${flags.from}`);
  const signed = await buildRootSigned(flags, current.signed.version + 1, nowMs);
  const env = { signed, signatures: signAll(signed, await loadSecretKeys(flags.sign)) };
  // Exactly the check a device makes: thresholds of both the old and the new root keys.
  verifyRootUpdate(current.signed, env);
  await writeFileAtomic(flags.out, envelopeText(env));
  return signed;
}

/** Options `root init` and `root rotate` share. */
function rootOptions(cmd: Command): Command {
  return cmd
    .requiredOption(
      "--keys <files>",
      "public key files (.pub) of the root role, comma-separated",
      collectList,
    )
    .requiredOption("--threshold <n>", "root signatures needed to rotate the root", intOption(1))
    .option(
      "--release-keys <files>",
      "public key files of the release role, comma-separated (default: the --keys)",
      collectList,
    )
    .option(
      "--release-threshold <n>",
      "release signatures needed on a release (default: --threshold with the default release keys, else 1)",
      intOption(1),
    )
    .requiredOption("--sign <files>", "secret key files (.key) to sign with, comma-separated", collectList)
    .requiredOption("--out <file>", "where to write the signed root")
    .option("--expires <duration>", "how long the root stays valid, e.g. 52w (default: 365d)", durationOption)
    .option("--force", "replace --out if it exists");
}

export function register(program: Command): void {
  const root = program.command("root").description("create and rotate the trust root (root.json)");
  rootOptions(
    root
      .command("init")
      .description("create trust root version 1, signed by a threshold of its own root keys"),
  ).action(async (flags: RootFlags) => {
    const r = await rootInit(flags);
    process.stdout.write(`wrote ${flags.out}: ${summary(r)}\n`);
  });
  rootOptions(
    root
      .command("rotate")
      .description(
        "create the next root version; it must be signed by a threshold of the old root keys AND of the new ones",
      )
      .requiredOption("--from <file>", "the current root (version N); the new one is N+1"),
  ).action(async (flags: RootFlags & { from: string }) => {
    const r = await rootRotate(flags);
    process.stdout.write(`wrote ${flags.out}: ${summary(r)}\n`);
  });
}
