/** `keel releases`: what register-release recorded for each published release (VERIFIED or REJECTED, why). */
import type { Command } from "commander";
import { parseWith } from "../../core/parse.ts";
import { type Release, ReleaseListSchema } from "../../functions/rollout-api/contract.ts";
import { renderTable } from "../../local/render.ts";
import { ApiClient, addTargetOptions, resolveTarget, type TargetFlags } from "../api-client.ts";

export function renderReleases(releases: Release[]): string {
  if (releases.length === 0) return "no releases published yet\n";
  const rows = releases.map((r) => [
    r.version,
    r.status,
    r.releaseCounter === undefined ? "-" : String(r.releaseCounter),
    r.imageSize === undefined ? "-" : String(r.imageSize),
    r.registeredAt,
    r.reason ?? "",
  ]);
  return renderTable(["VERSION", "STATUS", "COUNTER", "SIZE", "REGISTERED", "REASON"], rows);
}

export async function listReleases(api: ApiClient): Promise<Release[]> {
  return parseWith(ReleaseListSchema, await api.get("/releases"), "API answer").releases;
}

export function register(program: Command): void {
  addTargetOptions(
    program.command("releases").description("list published releases: VERIFIED, or REJECTED and why"),
  ).action(async (flags: TargetFlags) => {
    process.stdout.write(renderReleases(await listReleases(new ApiClient(await resolveTarget(flags)))));
  });
}
