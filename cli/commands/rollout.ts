/**
 * `keel rollout start|list|status|pause|resume|abort`: staged rollouts through the rollout API
 * (docs/operations.md, docs/api.md). Waves are given as a compact spec (`canary:t1+t2,10,50,100`) or as JSON.
 */
import { type Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { parseJsonText, parseWith } from "../../core/parse.ts";
import {
  type Rollout,
  RolloutSchema,
  type RolloutView,
  type WaveInput,
  WaveInputSchema,
} from "../../functions/rollout-api/contract.ts";
import { renderTable, waveBar, waveLabel } from "../../local/render.ts";
import {
  ApiClient,
  addTargetOptions,
  getRolloutView,
  listAllRollouts,
  resolveTarget,
  type TargetFlags,
} from "../api-client.ts";
import { CliUsageError } from "../errors.ts";
import { collectList, durationOption, intOption } from "../inputs.ts";
import { transferLine } from "../transfer-summary.ts";
import { windowLine } from "./fleet-windows.ts";
import { register as registerRetry } from "./rollout-retry.ts";

export interface WaveDefaults {
  /** Bake after every wave but the last, in seconds. */
  bakeSeconds?: number | undefined;
  failureThresholdPercent?: number | undefined;
  successThresholdPercent?: number | undefined;
}

/**
 * `canary:t1+t2,10,50,100` → waves. Items are comma-separated; `canary:` names things joined by `+`;
 * a number is a cumulative percent of the fleet. A JSON array is taken as the API's wave objects.
 * Defaults fill only what a wave does not say; the last wave gets no bake (nothing comes after it).
 */
export function parseWavesSpec(spec: string, defaults: WaveDefaults = {}): WaveInput[] {
  const text = spec.trim();
  let raw: unknown[];
  if (text.startsWith("[")) {
    raw = parseWith(z.array(z.unknown()), parseJsonText(text, "--waves"), "--waves");
  } else {
    raw = text.split(",").map((item, i) => {
      const t = item.trim();
      if (t.startsWith("canary:")) return { canary: t.slice("canary:".length).split("+").filter(Boolean) };
      if (/^\d+(\.\d+)?%?$/.test(t)) return { percent: Number(t.replace("%", "")) };
      throw new CliUsageError(
        `--waves item ${i + 1} "${t}": expected a percent (25) or canary:thing1+thing2`,
      );
    });
  }
  const items = raw.map((w, i) => {
    const last = i === raw.length - 1;
    const obj = typeof w === "object" && w !== null ? (w as Record<string, unknown>) : {};
    const withDefaults = {
      ...(defaults.bakeSeconds !== undefined && !last && obj.bakeMinutes === undefined
        ? { bakeSeconds: defaults.bakeSeconds }
        : {}),
      ...(defaults.failureThresholdPercent !== undefined
        ? { failureThresholdPercent: defaults.failureThresholdPercent }
        : {}),
      ...(defaults.successThresholdPercent !== undefined
        ? { successThresholdPercent: defaults.successThresholdPercent }
        : {}),
      ...obj,
    };
    return withDefaults;
  });
  // Parsed as the API body's `waves` so an issue reads as the API's 400 would: `waves[0].percent: …`.
  return parseWith(z.object({ waves: z.array(WaveInputSchema) }), { waves: items }, "--waves").waves;
}

/**
 * The in-progress timeout is whole minutes in IoT Jobs; a value that is not (30s, 90s) is refused rather
 * than silently rounded to something the user did not ask for.
 */
export function minutesOption(v: string): number {
  const seconds = durationOption(v);
  if (seconds <= 0 || seconds % 60 !== 0) {
    throw new InvalidArgumentError(
      `${v.trim()} is not a whole number of minutes (IoT Jobs counts this timeout in minutes); use e.g. 1m, 30m or 2h`,
    );
  }
  return seconds / 60;
}

/** Like durationOption, but 0 is a valid bake ("advance as soon as the threshold is met"). */
const bakeOption = (v: string): number => (/^0+(\.0+)?[smhdw]?$/.test(v.trim()) ? 0 : durationOption(v));

const percentOption = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new InvalidArgumentError("expected a percent 0–100");
  return n;
};

const BAR_WIDTH = 30;

/** The status screen: header, one progress line per wave, the device table, the latest timeline. */
export function renderRollout(r: RolloutView): string {
  const lines: string[] = [];
  const target = r.fleets.length > 0 ? `fleet ${r.fleets.join(", ")}` : `groups ${r.thingGroups.join(", ")}`;
  lines.push(
    `rollout ${r.id}: release ${r.release} to ${target} — ${r.status}${r.reason ? ` (${r.reason})` : ""}`,
  );
  lines.push(
    `created ${r.createdAt} by ${r.createdBy}${r.forced ? " (forced)" : ""}${r.retryOf ? `, retry of ${r.retryOf}` : ""}`,
  );
  if (r.waitingForWindow) {
    lines.push(
      `waiting for a maintenance window since ${r.waitingForWindow.since}${r.waitingForWindow.opensAt ? `; next opens ${r.waitingForWindow.opensAt}` : ""}`,
    );
  } else if (r.window?.restricted) lines.push(windowLine(r.window, true));
  const f = r.effectFailure;
  if (f) {
    const next = !f.stalled
      ? "retrying"
      : r.status === "STALLED"
        ? "stalled: `keel rollout resume` retries, `keel rollout abort` stops"
        : "stalled: still retrying";
    lines.push(
      `! ${f.effect} failed ${f.attempts} time(s) since ${f.firstAt} (${next}); last error: ${f.error}`,
    );
  }
  lines.push("");
  r.waves.forEach((w, i) => {
    const marker = i === r.current && r.status !== "SUCCEEDED" ? ">" : " ";
    const c = w.counts;
    const state = w.completedAt
      ? "done"
      : w.thresholdMetAt
        ? `baking ${w.bakeSeconds}s`
        : w.jobCreatedAt
          ? "running"
          : "pending";
    const nums = c
      ? `${c.succeeded} ok, ${c.failed + c.rejected + c.timedOut} failed, ${c.inProgress} in progress, ${c.queued} queued`
      : "";
    lines.push(
      `${marker} wave ${i + 1} ${waveLabel(w).padEnd(12)} ${waveBar(c, BAR_WIDTH)} ${state}${nums ? `  ${nums}` : ""}`,
    );
  });
  const t = r.totals;
  if (t && t.devices > 0) {
    // Each device once: a canary device also counts in its percent wave's bar above.
    lines.push(
      `  devices: ${t.devices} — ${t.succeeded} succeeded, ${t.failed} failed (${t.rolledBack} rolled back)${t.other > 0 ? `, ${t.other} other` : ""}`,
    );
  }
  // Delta updates: bytes saved across the rollout's devices (cli/transfer-summary.ts).
  const transfer = transferLine(r.devices);
  if (transfer) lines.push(transfer);
  if (r.devices.length > 0) {
    lines.push("");
    const width = Math.max(6, ...r.devices.map((d) => d.thingName.length));
    lines.push(`${"DEVICE".padEnd(width)}  WAVE  STATUS      DETAILS`);
    for (const d of [...r.devices].sort(
      (a, b) => a.wave - b.wave || a.thingName.localeCompare(b.thingName),
    )) {
      const details = Object.entries(d.statusDetails ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(" ");
      lines.push(
        `${d.thingName.padEnd(width)}  ${String(d.wave).padEnd(4)}  ${d.status.padEnd(10)}  ${details}`,
      );
    }
  }
  const recent = r.timeline.slice(-5);
  lines.push("");
  for (const t of recent)
    lines.push(`${t.at}  ${t.event}${t.detail ? `: ${t.detail}` : ""}${t.by ? ` (${t.by})` : ""}`);
  return `${lines.join("\n")}\n`;
}

export function renderRolloutList(rollouts: Rollout[]): string {
  if (rollouts.length === 0) return "no rollouts\n";
  const rows = rollouts.map((r) => [
    r.id,
    r.release,
    r.fleets.join(",") || r.thingGroups.join(","),
    r.status,
    `${r.current + 1}/${r.waves.length}`,
    r.createdAt,
  ]);
  return renderTable(["ID", "RELEASE", "TARGET", "STATUS", "WAVE", "CREATED"], rows);
}

async function client(flags: TargetFlags): Promise<ApiClient> {
  return new ApiClient(await resolveTarget(flags));
}

/** --watch stops at a final state, and at STALLED, which waits for the operator. */
const WATCH_STOPS = new Set(["SUCCEEDED", "ABORTED", "STALLED"]);

interface StartFlags extends TargetFlags {
  release: string;
  fleet?: string[];
  thingGroup?: string[];
  waves: string;
  bake?: number;
  failureThreshold?: number;
  successThreshold?: number;
  rate?: number;
  /** Minutes (minutesOption). */
  timeout?: number;
  healthDeadline?: number;
  force?: boolean;
}

export function register(program: Command): void {
  const rollout = program
    .command("rollout")
    .description("start, watch, pause, resume and abort staged rollouts");

  addTargetOptions(
    rollout
      .command("start")
      .description("start a rollout of a VERIFIED release in waves")
      .requiredOption("--release <version>", "release version to roll out")
      .option("--fleet <names>", "fleet(s) to roll out to (comma-separate or repeat)", collectList)
      .option("--thing-group <names>", "existing thing group(s) instead of fleets", collectList)
      .requiredOption("--waves <spec>", 'waves: "canary:t1+t2,10,50,100" or a JSON array of wave objects')
      .option("--bake <duration>", "bake time after each wave but the last, e.g. 30s, 10m", bakeOption)
      .option(
        "--failure-threshold <percent>",
        "abort when more than this % of a wave fails (default 10)",
        percentOption,
      )
      .option(
        "--success-threshold <percent>",
        "advance once this % of a wave succeeded (default 90)",
        percentOption,
      )
      .option("--rate <n>", "devices notified per minute (default 1000)", intOption(1))
      .option(
        "--timeout <duration>",
        "in-progress timeout per device in whole minutes, e.g. 60m or 2h",
        minutesOption,
      )
      .option("--health-deadline <duration>", "device health-check deadline, e.g. 300s", durationOption)
      .option("--force", "start even if the fleet already has a rollout running"),
  ).action(async (flags: StartFlags) => {
    const body = {
      release: flags.release,
      ...(flags.fleet ? { fleets: flags.fleet } : {}),
      ...(flags.thingGroup ? { thingGroups: flags.thingGroup } : {}),
      waves: parseWavesSpec(flags.waves, {
        bakeSeconds: flags.bake,
        failureThresholdPercent: flags.failureThreshold,
        successThresholdPercent: flags.successThreshold,
      }),
      ...(flags.rate ? { rolloutRate: { maximumPerMinute: flags.rate } } : {}),
      ...(flags.timeout ? { inProgressTimeoutMinutes: flags.timeout } : {}),
      ...(flags.healthDeadline ? { healthDeadlineSeconds: Math.round(flags.healthDeadline) } : {}),
      ...(flags.force ? { force: true } : {}),
    };
    const r = parseWith(RolloutSchema, await (await client(flags)).post("/rollouts", body), "API answer");
    process.stdout.write(
      `started rollout ${r.id} (${r.waves.length} wave(s)); follow it with: keel rollout status ${r.id} --watch${flags.local ? " --local" : ""}\n`,
    );
  });

  addTargetOptions(rollout.command("list").description("list rollouts, newest first")).action(
    async (flags: TargetFlags) => {
      process.stdout.write(renderRolloutList(await listAllRollouts(await client(flags))));
    },
  );

  addTargetOptions(
    rollout
      .command("status")
      .description("per-wave progress and the device table")
      .argument("<id>", "rollout id")
      .option("--watch", "refresh until the rollout finishes")
      .option("--interval <duration>", "refresh period for --watch (default 2s)", durationOption),
  ).action(async (id: string, flags: TargetFlags & { watch?: boolean; interval?: number }) => {
    const api = await client(flags);
    const tty = process.stdout.isTTY;
    for (;;) {
      const view = await getRolloutView(api, id);
      // On a terminal, redraw in place; in a pipe, print each frame once it changed.
      process.stdout.write(`${tty && flags.watch ? "\x1b[2J\x1b[H" : ""}${renderRollout(view)}`);
      if (!flags.watch || WATCH_STOPS.has(view.status)) return;
      await new Promise((r) => setTimeout(r, (flags.interval ?? 2) * 1000));
    }
  });

  for (const action of ["pause", "resume", "abort"] as const) {
    const cmd = rollout
      .command(action)
      .description(
        action === "pause"
          ? "stop advancing to new waves (the current wave's devices carry on)"
          : action === "resume"
            ? "continue a paused rollout, or retry a stalled one"
            : "abort: cancel the current wave's queued devices and stop",
      )
      .argument("<id>", "rollout id");
    if (action === "abort") cmd.option("--reason <text>", "why, for the timeline and the audit log");
    addTargetOptions(cmd).action(async (id: string, flags: TargetFlags & { reason?: string }) => {
      const body = flags.reason ? { reason: flags.reason } : undefined;
      const r = parseWith(
        RolloutSchema,
        await (await client(flags)).post(`/rollouts/${encodeURIComponent(id)}/${action}`, body),
        "API answer",
      );
      process.stdout.write(`rollout ${r.id} is ${r.status}${r.reason ? `: ${r.reason}` : ""}\n`);
    });
  }

  registerRetry(rollout);
}
