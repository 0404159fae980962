/**
 * `keel fleet allow-enrol` and `keel fleet remove` (docs/fleets.md#enrolment): who may enrol nodes into a
 * fleet with their own AWS identity, and taking a device out (certificate detached and deactivated, groups
 * left, thing deleted; the node can no longer connect).
 */
import type { Command } from "commander";
import { parseWith } from "../../core/parse.ts";
import {
  type EnrolmentPolicy,
  EnrolmentPolicySchema,
  RemovedThingSchema,
} from "../../functions/rollout-api/contract.ts";
import { ApiClient, addTargetOptions, resolveTarget, type TargetFlags } from "../api-client.ts";
import { CliUsageError } from "../errors.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function renderEnrolmentPolicy(fleet: string, p: EnrolmentPolicy): string {
  const lines = [`fleet ${fleet}: nodes may enrol themselves when signed by`];
  for (const a of p.accounts) lines.push(`  account ${a}`);
  for (const r of p.roles) lines.push(`  role    ${r}`);
  for (const t of p.tags) lines.push(`  tag     ${t.key}=${t.value} (on the caller's role)`);
  if (lines.length === 1) lines.push("  nobody (self-enrolment is closed; keel fleet register still works)");
  return `${lines.join("\n")}\n`;
}

function tagRule(text: string): { key: string; value: string } {
  const i = text.indexOf("=");
  if (i <= 0) throw new CliUsageError(`--tag ${text}: expected KEY=VALUE`);
  return { key: text.slice(0, i), value: text.slice(i + 1) };
}

export function registerEnrolmentCommands(fleet: Command): void {
  addTargetOptions(
    fleet
      .command("allow-enrol")
      .description(
        "set who may enrol nodes into the fleet with their AWS identity (replaces the list; none given: show it)",
      )
      .argument("<fleet>", "fleet name")
      .option("--account <id>", "an AWS account whose identities may enrol (repeatable)", collect)
      .option(
        "--role <arn>",
        "an IAM role (e.g. the node group's instance role) that may enrol (repeatable)",
        collect,
      )
      .option("--tag <key=value>", "a tag the caller's IAM role must carry (repeatable)", collect)
      .option("--nobody", "close self-enrolment"),
  ).action(
    async (
      name: string,
      flags: TargetFlags & { account?: string[]; role?: string[]; tag?: string[]; nobody?: boolean },
    ) => {
      const api = new ApiClient(await resolveTarget(flags));
      const path = `/fleets/${encodeURIComponent(name)}/enrolment`;
      const given = flags.account ?? flags.role ?? flags.tag;
      if (given === undefined && !flags.nobody) {
        const current = parseWith(EnrolmentPolicySchema, await api.get(path), "API answer");
        process.stdout.write(renderEnrolmentPolicy(name, current));
        return;
      }
      if (given !== undefined && flags.nobody)
        throw new CliUsageError("--nobody takes no --account, --role or --tag");
      const body = {
        accounts: flags.account ?? [],
        roles: flags.role ?? [],
        tags: (flags.tag ?? []).map(tagRule),
      };
      const saved = parseWith(EnrolmentPolicySchema, await api.put(path, body), "API answer");
      process.stdout.write(renderEnrolmentPolicy(name, saved));
    },
  );

  addTargetOptions(
    fleet
      .command("remove")
      .description(
        "deregister a device: detach and deactivate its certificate, leave its groups, delete the thing",
      )
      .argument("<fleet>", "fleet name")
      .argument("<thing>", "thing name"),
  ).action(async (name: string, thing: string, flags: TargetFlags) => {
    const api = new ApiClient(await resolveTarget(flags));
    const r = parseWith(
      RemovedThingSchema,
      await api.delete(`/fleets/${encodeURIComponent(name)}/things/${encodeURIComponent(thing)}`),
      "API answer",
    );
    process.stdout.write(
      r.removed
        ? `removed ${r.thingName} from fleet ${r.fleet}: ${r.certificates.length} certificate(s) deactivated, left ${r.groups.join(", ") || "no groups"}; it can no longer connect\n`
        : `${r.thingName} was not registered (already removed); nothing to do\n`,
    );
  });
}
