/** `keel keygen`: an ed25519 signing key pair for root or release roles, kept offline by the operator. */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { describeError } from "../../core/errors.ts";
import { generateKeyPair, publicKeyFileText, secretKeyFileText } from "../../core/keys.ts";
import { CliFileError, CliUsageError } from "../errors.ts";
import { exists, writeNewFile } from "../inputs.ts";

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export async function keygen(
  outDir: string,
  name: string,
): Promise<{ keyId: string; secret: string; pub: string }> {
  if (!KEY_NAME.test(name)) {
    throw new CliUsageError(`--name ${JSON.stringify(name)}: use 1–64 letters, digits, . _ - (no slashes)`);
  }
  try {
    await mkdir(outDir, { recursive: true });
  } catch (err) {
    throw new CliFileError(outDir, `cannot create directory (${describeError(err)})`, { cause: err });
  }
  const key = generateKeyPair();
  const secret = join(outDir, `${name}.key`);
  const pub = join(outDir, `${name}.pub`);
  // Check both first so a refusal leaves nothing behind (no lone .key without its .pub).
  for (const p of [secret, pub]) {
    if (await exists(p)) throw new CliFileError(p, "already exists; refusing to overwrite it");
  }
  // The secret key is created 0600 and never replaces an existing file: losing a key to a typo is unrecoverable.
  await writeNewFile(secret, secretKeyFileText(key), 0o600);
  await writeNewFile(pub, publicKeyFileText(key), 0o644);
  return { keyId: key.keyId, secret, pub };
}

export function register(program: Command): void {
  program
    .command("keygen")
    .description("generate an ed25519 signing key pair: NAME.key (secret, mode 0600) and NAME.pub")
    .requiredOption("--out <dir>", "directory to write the key files to (created if missing)")
    .requiredOption("--name <name>", "file name stem, e.g. root-alice or release-ci")
    .action(async (opts: { out: string; name: string }) => {
      const r = await keygen(opts.out, opts.name);
      process.stderr.write(`wrote ${r.secret} (keep it offline) and ${r.pub}\n`);
      process.stdout.write(`${r.keyId}\n`);
    });
}
