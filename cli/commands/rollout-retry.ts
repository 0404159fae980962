/**
 * `keel rollout retry <id>` (docs/fleets.md#retrying-failed-devices): a new rollout of the same release to
 * only the devices that FAILED, TIMED_OUT or were REJECTED in rollout <id> — not those that rolled back,
 * unless `--include-rolled-back` — in waves of at most 100 devices.
 */
import type { Command } from "commander";
import { parseWith } from "../../core/parse.ts";
import { RolloutSchema } from "../../functions/rollout-api/contract.ts";
import { ApiClient, addTargetOptions, resolveTarget, type TargetFlags } from "../api-client.ts";

export function register(rollout: Command): void {
  addTargetOptions(
    rollout
      .command("retry")
      .description("start a new rollout of the same release to only the devices that failed in <id>")
      .argument("<id>", "rollout id")
      .option("--include-rolled-back", "also retry devices that failed and rolled back")
      .option("--force", "start even if the fleet already has a rollout running"),
  ).action(async (id: string, flags: TargetFlags & { includeRolledBack?: boolean; force?: boolean }) => {
    const api = new ApiClient(await resolveTarget(flags));
    const body = { includeRolledBack: flags.includeRolledBack === true, force: flags.force === true };
    const r = parseWith(
      RolloutSchema,
      await api.post(`/rollouts/${encodeURIComponent(id)}/retry`, body),
      "API answer",
    );
    const devices = r.waves.reduce((n, w) => n + (w.things?.length ?? 0), 0);
    process.stdout.write(
      `started rollout ${r.id}: ${r.release} to ${devices} device(s) that failed in ${id}, in ${r.waves.length} wave(s); follow it with: keel rollout status ${r.id} --watch${flags.local ? " --local" : ""}\n`,
    );
  });
}
