/**
 * `keel fleet set-target <fleet> <version> --reason … [--force]`: the release the fleet converges to
 * (PUT /fleets/{fleet}/target); and the lines `keel fleet status` shows about it.
 */
import type { Command } from "commander";
import { parseWith } from "../../core/parse.ts";
import { type FleetTarget, FleetTargetSchema } from "../../functions/rollout-api/contract.ts";
import { ApiClient, addTargetOptions, resolveTarget, type TargetFlags } from "../api-client.ts";

/** The target and where its convergence job stands, for `fleet status` and `set-target`. */
export function renderTarget(t: FleetTarget | undefined): string[] {
  if (!t) return ["target: none yet (a rollout that succeeds sets it, or `keel fleet set-target`)"];
  const c = t.convergence;
  const why = t.reason ? `: ${t.reason}` : "";
  const job = !c.jobId
    ? "no convergence job yet"
    : c.phase === "canceled"
      ? `convergence paused (job ${c.jobId} canceled${c.release === t.release ? "; a rollout holds the fleet" : ""})`
      : `converging with job ${c.jobId} (${c.phase === "running" ? "CONTINUOUS" : "being created"})`;
  return [`target ${t.release}, set ${t.setAt} by ${t.setBy}${t.forced ? " (forced)" : ""}${why}`, job];
}

export function registerSetTarget(fleet: Command): void {
  addTargetOptions(
    fleet
      .command("set-target")
      .description("set the release the fleet converges to (VERIFIED, no downgrade, unless --force); audited")
      .argument("<fleet>", "fleet name")
      .argument("<version>", "release version")
      .requiredOption("--reason <text>", "why, for the audit log")
      .option("--force", "accept a release that is not VERIFIED or is a downgrade for the fleet"),
  ).action(
    async (name: string, version: string, flags: TargetFlags & { reason: string; force?: boolean }) => {
      const api = new ApiClient(await resolveTarget(flags));
      const body = { release: version, reason: flags.reason, ...(flags.force ? { force: true } : {}) };
      const t = parseWith(
        FleetTargetSchema,
        await api.put(`/fleets/${encodeURIComponent(name)}/target`, body),
        "API answer",
      );
      process.stdout.write(`fleet ${name}: ${renderTarget(t).join("\n")}\n`);
    },
  );
}
