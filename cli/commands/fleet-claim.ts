/**
 * `keel fleet claim-rule|claim-cert` (docs/fleets.md#fleet-provisioning-by-claim): say which thing names may
 * enrol by claim, and make the claim certificate to bake into a factory image. Nodes then enrol themselves
 * with `keel-agent enroll-claim`.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { parseWith } from "../../core/parse.ts";
import { ClaimCertificateSchema } from "../../functions/rollout-api/contract.ts";
import { ApiClient, addTargetOptions, resolveTarget, type TargetFlags } from "../api-client.ts";
import { CliFileError, CliUsageError } from "../errors.ts";
import { collectList, exists, writeNewFile } from "../inputs.ts";
import { caPem, mqttEndpoint } from "./fleet.ts";

const CLAIM_FILES = ["claim.pem", "claim.key", "ca.pem"] as const;

export function registerClaimCommands(fleet: Command): void {
  addTargetOptions(
    fleet
      .command("claim-rule")
      .description("which thing names may enrol into the fleet by claim (replaces the fleet's rule)")
      .argument("<fleet>", "fleet name")
      .option("--pattern <regex>", "a regular expression the whole thing name must match")
      .option("--name <thing>", "a thing name allowed by name (repeatable)", collectList, []),
  ).action(async (name: string, flags: TargetFlags & { pattern?: string; name: string[] }) => {
    if (!flags.pattern && flags.name.length === 0) {
      throw new CliUsageError("give --pattern and/or --name: an empty rule would let nobody enrol");
    }
    const api = new ApiClient(await resolveTarget(flags));
    const body = { ...(flags.pattern ? { thingNamePattern: flags.pattern } : {}), thingNames: flags.name };
    await api.post(`/fleets/${encodeURIComponent(name)}/claim-rule`, body);
    process.stdout.write(
      `fleet ${name}: claim rule set (${[flags.pattern ? `pattern ${flags.pattern}` : "", flags.name.length ? `${flags.name.length} name(s)` : ""].filter(Boolean).join(", ")})\n`,
    );
  });

  addTargetOptions(
    fleet
      .command("claim-cert")
      .description(
        "create the fleet's claim certificate for factory images: writes claim.pem, claim.key, ca.pem",
      )
      .argument("<fleet>", "fleet name")
      .requiredOption("--out <dir>", "folder to write the claim certificate, its key and the CA into"),
  ).action(async (name: string, flags: TargetFlags & { out: string }) => {
    const target = await resolveTarget(flags);
    const api = new ApiClient(target);
    await mkdir(flags.out, { recursive: true });
    // The key exists only in the API's answer: every file must be writable before asking for it.
    for (const f of CLAIM_FILES) {
      const path = join(flags.out, f);
      if (await exists(path)) throw new CliFileError(path, "already exists; refusing to overwrite it");
    }
    const ca = await caPem(target);
    const c = parseWith(
      ClaimCertificateSchema,
      await api.post(`/fleets/${encodeURIComponent(name)}/claim-certificates`, {}),
      "API answer",
    );
    await writeNewFile(join(flags.out, "claim.pem"), c.certificatePem, 0o644);
    await writeNewFile(join(flags.out, "claim.key"), c.privateKey, 0o600);
    await writeNewFile(join(flags.out, "ca.pem"), ca, 0o644);
    const endpoint = mqttEndpoint(target, c.endpoint);
    process.stdout.write(
      [
        `claim certificate ${c.certificateId.slice(0, 12)}… for fleet ${c.fleet} (template ${c.templateName}) written to ${flags.out}`,
        "on each node (its thing name must match the fleet's claim rule):",
        `  keel-agent enroll-claim -c agent.json --fleet ${c.fleet} --thing-name <name> --endpoint ${endpoint} \\`,
        `    --ca ca.pem --claim-cert claim.pem --claim-key claim.key`,
        "",
      ].join("\n"),
    );
  });
}
