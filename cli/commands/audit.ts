/** `keel audit`: who changed what, newest first (GET /audit, every page), filtered by rollout, fleet, time. */
import { type Command, InvalidArgumentError } from "commander";
import type { AuditEntry } from "../../functions/rollout-api/contract.ts";
import { renderTable } from "../../local/render.ts";
import { ApiClient, addTargetOptions, listAudit, resolveTarget, type TargetFlags } from "../api-client.ts";

export function renderAudit(entries: readonly AuditEntry[]): string {
  if (entries.length === 0) return "no audit entries\n";
  const rows = entries.map((e) => [
    e.at,
    e.action,
    e.target,
    e.who,
    e.detail ? JSON.stringify(e.detail) : "",
  ]);
  return renderTable(["AT", "ACTION", "TARGET", "WHO", "DETAIL"], rows);
}

/** `--since`/`--until`: any date Date.parse reads, sent as the ISO instant the API expects. */
export function instantOption(v: string): string {
  const ms = Date.parse(v);
  if (Number.isNaN(ms))
    throw new InvalidArgumentError(`${v} is not a date (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)`);
  return new Date(ms).toISOString();
}

interface AuditFlags extends TargetFlags {
  rollout?: string;
  fleet?: string;
  since?: string;
  until?: string;
}

export function register(program: Command): void {
  addTargetOptions(
    program
      .command("audit")
      .description("the audit log: who created, paused, resumed or aborted a rollout, registered a device")
      .option("--rollout <id>", "only this rollout's entries")
      .option("--fleet <name>", "only entries about this fleet")
      .option("--since <date>", "entries at or after this time", instantOption)
      .option("--until <date>", "entries before this time", instantOption),
  ).action(async (flags: AuditFlags) => {
    const api = new ApiClient(await resolveTarget(flags));
    const entries = await listAudit(api, {
      rollout: flags.rollout,
      fleet: flags.fleet,
      since: flags.since,
      until: flags.until,
    });
    process.stdout.write(renderAudit(entries));
  });
}
