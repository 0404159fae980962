/**
 * The demo (`npm start`, `keel dev --demo`): on a running dev environment (local cloud, Lambda wiring,
 * simulated fleet), roll out 1.1.0 in three waves — every node ends on 1.1.0 — then 1.2.0, whose kubelet
 * never becomes healthy: the canary rolls itself back, the rollout aborts, no other node receives it.
 *
 * Everything it reports, and the verdict, comes from the rollout API (GET /rollouts/{id},
 * GET /fleets/{fleet}), never from what the demo expected to happen.
 */
import { writeFile } from "node:fs/promises";
import { z } from "zod";
import { parseWith } from "../core/parse.ts";
import { AbortedError } from "../device/errors.ts";
import { TERMINAL_STATUSES, type WaveCounts } from "../functions/rollout/model.ts";
import { RolloutSchema, type RolloutView, RolloutViewSchema } from "../functions/rollout-api/contract.ts";
import { setDemoWindows, windowWaitMs } from "./demo-windows.ts";
import { type DevEnvironment, publishDemoReleases, type RolloutApi } from "./fleet/environment.ts";
import { DemoOutcomeError, WaitTimeoutError } from "./fleet/errors.ts";
import { LiveView, renderLive } from "./fleet/view.ts";
import { waveLabel } from "./render.ts";

export const GOOD_RELEASE = "1.1.0";
export const BAD_RELEASE = "1.2.0";

export interface WaveReport {
  wave: number;
  target: string;
  jobId: string;
  jobCreated: boolean;
  counts: WaveCounts | null;
  startedAt: string | null;
  completedAt: string | null;
}

export interface RolloutReport {
  id: string;
  release: string;
  status: string;
  reason: string | null;
  /** Devices whose last outcome in this rollout was SUCCEEDED / FAILED-REJECTED-TIMED_OUT / rolled back. */
  succeeded: number;
  failed: number;
  rolledBack: number;
  /** Devices that reported anything in this rollout, by name. */
  devicesReporting: string[];
  waves: WaveReport[];
  timeline: Array<{ at: string; event: string; detail?: string | undefined }>;
}

export interface LastRun {
  devices: number;
  fleetName: string;
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  problems: string[];
  rollouts: RolloutReport[];
  /** Devices per version, as GET /fleets/{fleet} reports them. */
  fleet: Record<string, number>;
  /** What the Kubernetes stand-in saw during the rollouts (docs/kubernetes.md); absent without a cluster. */
  kubernetes?: KubernetesRun;
  /** The real nodes (`keel dev --vm`) in the rollouts, with the version their fleet reports at the end. */
  realNodes?: Array<RealNode & { version: string }>;
}

/** A real node (a KeelOS VM) in a fleet of its own that the demo's rollouts include. */
export interface RealNode {
  thing: string;
  fleet: string;
  /** What it is, for the summary: "KeelOS VM under QEMU, serial console <path>". */
  what: string;
}

export interface KubernetesRun {
  /** The reboot budget the nodes were given. */
  maxUnavailable: number;
  /** Most nodes NotReady or cordoned at the same moment, watched on the stand-in. */
  maxUnavailableObserved: number;
  /** Times a PodDisruptionBudget went from met to not met. */
  pdbViolations: number;
  drains: number;
}

/** Problems with the cluster's side of the run: over the reboot budget, or a budget broken. */
export function checkKubernetes(k: KubernetesRun): string[] {
  const problems: string[] = [];
  if (k.maxUnavailableObserved > k.maxUnavailable) {
    problems.push(
      `${k.maxUnavailableObserved} nodes were unavailable at once; the budget is ${k.maxUnavailable}`,
    );
  }
  if (k.pdbViolations > 0) problems.push(`${k.pdbViolations} PodDisruptionBudget violation(s)`);
  return problems;
}

export function renderKubernetes(k: KubernetesRun): string {
  return `Kubernetes: at most ${k.maxUnavailableObserved} node(s) unavailable at once (maxUnavailable ${k.maxUnavailable}), ${k.drains} drain(s), ${k.pdbViolations} PDB violation(s)\n`;
}

/** The part of GET /fleets/{fleet} the demo reads. */
const FleetViewSchema = z.object({
  fleet: z.string(),
  devices: z.number(),
  versions: z.record(z.string(), z.number()),
});

export interface DemoOptions {
  env: DevEnvironment;
  out: NodeJS.WritableStream & { isTTY?: boolean };
  signal?: AbortSignal;
  /** Bake after the canary and the 25 % wave. @default 2 */
  bakeSeconds?: number;
  /** Health-check deadline the rollouts give devices (the API's healthDeadlineSeconds). @default 20 */
  healthDeadlineSeconds?: number;
  /** Longest a rollout may take before the demo gives up. @default 120 s */
  rolloutTimeoutMs?: number;
  /** Where to write the report (`.keel/last-run.json`). */
  resultFile?: string;
  /** Redraw period of the live view. @default 250 ms */
  refreshMs?: number;
  /** The web console serving this demo (`keel dev --demo` starts one), printed before the rollouts. */
  consoleUrl?: string;
  /** A maintenance window open this many minutes of every 2× as many (local/demo-windows.ts). */
  windowMinutes?: number;
  /** Real nodes whose fleets the rollouts include besides the simulated fleet (`keel dev --demo --vm`). */
  realNodes?: RealNode[];
}

/** The demo's patience for one rollout, plus its waits for maintenance windows when it has them. */
const rolloutTimeoutOf = (o: DemoOptions) =>
  (o.rolloutTimeoutMs ?? 120_000) + (o.windowMinutes ? windowWaitMs(o.windowMinutes, 3) : 0);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError("demo interrupted"));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError("demo interrupted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export async function getRollout(api: RolloutApi, id: string): Promise<RolloutView> {
  return parseWith(
    RolloutViewSchema,
    await api.get(`/rollouts/${encodeURIComponent(id)}`),
    "rollout API answer",
  );
}

export async function getFleetVersions(api: RolloutApi, fleet: string): Promise<Record<string, number>> {
  return parseWith(FleetViewSchema, await api.get(`/fleets/${encodeURIComponent(fleet)}`), "fleet API answer")
    .versions;
}

/**
 * The demo's wave plan: a one-node canary, then 25 %, then on to 100 %, each needing every device to
 * succeed. A job targets at most 100 bucket groups (100 per fleet per 100 %), so with more fleets the
 * percent steps are smaller: 25, 100 for one fleet; 25, 75, 100 for two.
 */
export function demoWaves(canary: string, bakeSeconds: number, fleets = 1) {
  const gate = { bakeSeconds, successThresholdPercent: 100 };
  const step = Math.max(1, Math.floor(100 / fleets));
  const percents = [Math.min(25, step)];
  for (let p = percents[0] ?? 100; p < 100; ) {
    p = Math.min(100, p + step);
    percents.push(p);
  }
  return [
    { canary: [canary], ...gate },
    ...percents.map((percent) =>
      percent < 100 ? { percent, ...gate } : { percent, successThresholdPercent: 100 },
    ),
  ];
}

export function reportOf(r: RolloutView): RolloutReport {
  const failedStatuses = new Set(["FAILED", "REJECTED", "TIMED_OUT"]);
  return {
    id: r.id,
    release: r.release,
    status: r.status,
    reason: r.reason ?? null,
    succeeded: r.devices.filter((d) => d.status === "SUCCEEDED").length,
    failed: r.devices.filter((d) => failedStatuses.has(d.status)).length,
    rolledBack: r.devices.filter((d) => d.statusDetails?.rolledBack === "true").length,
    devicesReporting: r.devices.map((d) => d.thingName).sort(),
    waves: r.waves.map((w, i) => ({
      wave: i + 1,
      target: waveLabel(w),
      jobId: w.jobId,
      jobCreated: w.jobCreatedAt !== undefined,
      counts: w.counts ?? null,
      startedAt: w.startedAt ?? null,
      completedAt: w.completedAt ?? null,
    })),
    timeline: r.timeline.map((t) => ({
      at: t.at,
      event: t.event,
      ...(t.detail ? { detail: t.detail } : {}),
    })),
  };
}

/** What the demo promises, checked against the API's view; each broken promise is one line. */
export function checkOutcome(run: Pick<LastRun, "devices" | "rollouts" | "fleet">, canary: string): string[] {
  const problems: string[] = [];
  const [good, bad] = run.rollouts;
  if (good?.status !== "SUCCEEDED")
    problems.push(`rollout of ${GOOD_RELEASE} is ${good?.status ?? "missing"}, not SUCCEEDED`);
  if (good && (good.succeeded !== run.devices || good.failed !== 0)) {
    problems.push(
      `rollout of ${GOOD_RELEASE}: ${good.succeeded} of ${run.devices} device(s) succeeded, ${good.failed} failed`,
    );
  }
  if (bad?.status !== "ABORTED")
    problems.push(`rollout of ${BAD_RELEASE} is ${bad?.status ?? "missing"}, not ABORTED`);
  if (bad) {
    if (bad.rolledBack !== 1 || bad.failed !== 1) {
      problems.push(
        `rollout of ${BAD_RELEASE}: ${bad.failed} failed and ${bad.rolledBack} rolled back, expected the canary alone`,
      );
    }
    const others = bad.devicesReporting.filter((t) => t !== canary);
    if (others.length > 0) problems.push(`${BAD_RELEASE} reached more than the canary: ${others.join(", ")}`);
    const later = bad.waves.filter((w) => w.wave > 1 && w.jobCreated);
    if (later.length > 0)
      problems.push(`${BAD_RELEASE} started wave(s) ${later.map((w) => w.wave).join(", ")} after the canary`);
  }
  const versions = Object.entries(run.fleet).filter(([, n]) => n > 0);
  if (versions.length !== 1 || versions[0]?.[0] !== GOOD_RELEASE || versions[0]?.[1] !== run.devices) {
    problems.push(
      `the fleet runs ${versions.map(([v, n]) => `${v} ×${n}`).join(", ") || "nothing"}, not ${GOOD_RELEASE} ×${run.devices}`,
    );
  }
  return problems;
}

/** Starts a rollout and follows it until it is SUCCEEDED or ABORTED and every node has settled. */
export async function followRollout(
  o: DemoOptions,
  release: string,
  body: Record<string, unknown>,
  title: string,
): Promise<RolloutView> {
  const { env, signal } = o;
  const api = env.tooling.api;
  const fleet = env.fleet;
  const view = new LiveView(o.out);
  // Plain output lists one node per line so that each changed line is one node's new phase.
  const columns = o.out.isTTY === true ? ((o.out as { columns?: number }).columns ?? 120) : 0;
  const created = parseWith(
    RolloutSchema,
    await api.post("/rollouts", { release, ...body }),
    "rollout API answer",
  );
  const deadline = Date.now() + rolloutTimeoutOf(o);
  let r: RolloutView | undefined;
  try {
    for (;;) {
      r = await getRollout(api, created.id);
      view.frame(renderLive(r, title, fleet.snapshot(), columns));
      if (TERMINAL_STATUSES.includes(r.status)) break;
      if (Date.now() > deadline) {
        throw new WaitTimeoutError(
          `rollout ${created.id} of ${release} is still ${r.status} after ${Math.round(rolloutTimeoutOf(o) / 1000)} s`,
        );
      }
      await sleep(o.refreshMs ?? 250, signal);
    }
    // Devices still finishing (a rolled-back canary reporting, stragglers past the gate) settle first.
    const settle = fleet.waitSettled(Math.max(10_000, deadline - Date.now()), signal);
    // Raced below; if the race ends on Ctrl-C first, this rejection is expected and must not go unhandled.
    settle.catch(() => {});
    for (;;) {
      const done = await Promise.race([
        settle.then(() => true),
        sleep(o.refreshMs ?? 250, signal).then(() => false),
      ]);
      view.frame(renderLive(r, title, fleet.snapshot(), columns));
      if (done) break;
    }
    r = await stableRollout(api, created.id, signal);
    view.frame(renderLive(r, title, fleet.snapshot(), columns));
    return r;
  } finally {
    view.done();
  }
}

/** Job events reach the API asynchronously; read until two reads a moment apart agree. */
async function stableRollout(api: RolloutApi, id: string, signal?: AbortSignal): Promise<RolloutView> {
  let last = JSON.stringify(await getRollout(api, id));
  for (let i = 0; i < 20; i++) {
    await sleep(300, signal);
    const now = await getRollout(api, id);
    const text = JSON.stringify(now);
    if (text === last) return now;
    last = text;
  }
  return getRollout(api, id);
}

/** Devices per version over several fleets. */
async function versionsOf(api: RolloutApi, fleets: string[]): Promise<Record<string, number>> {
  const total: Record<string, number> = {};
  for (const fleet of fleets)
    for (const [v, n] of Object.entries(await getFleetVersions(api, fleet))) total[v] = (total[v] ?? 0) + n;
  return total;
}

async function stableFleet(
  api: RolloutApi,
  fleets: string[],
  signal?: AbortSignal,
): Promise<Record<string, number>> {
  let last = await versionsOf(api, fleets);
  for (let i = 0; i < 20; i++) {
    await sleep(300, signal);
    const now = await versionsOf(api, fleets);
    if (JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
  }
  return last;
}

const pad = (s: string, n: number) => s.padEnd(n);

export function renderSummary(run: LastRun): string {
  const head = ["ROLLOUT", "RELEASE", "STATUS", "WAVES RUN", "SUCCEEDED", "FAILED", "ROLLED BACK"];
  const rows = run.rollouts.map((r) => [
    r.id,
    r.release,
    r.status,
    `${r.waves.filter((w) => w.jobCreated).length}/${r.waves.length}`,
    String(r.succeeded),
    String(r.failed),
    String(r.rolledBack),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const fmt = (row: string[]) =>
    row
      .map((c, i) => pad(c, widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const lines = ["", "Summary", fmt(head), ...rows.map(fmt)];
  for (const r of run.rollouts) if (r.reason) lines.push(`  ${r.release}: ${r.reason}`);
  const fleet = Object.entries(run.fleet)
    .sort()
    .map(([v, n]) => `${v} ×${n}`)
    .join(", ");
  lines.push(
    `Fleet ${run.fleetName}${run.realNodes?.length ? " and the real node's" : ""} (${run.devices} devices): ${fleet}`,
  );
  for (const n of run.realNodes ?? [])
    lines.push(`  ${n.thing} (fleet ${n.fleet}) is the real node, ${n.what}; it runs ${n.version}`);
  return `${lines.join("\n")}\n`;
}

export function renderTimeline(run: LastRun): string {
  const entries = run.rollouts.flatMap((r) => r.timeline.map((t) => ({ ...t, release: r.release })));
  entries.sort((a, b) => a.at.localeCompare(b.at));
  const t0 = Date.parse(entries[0]?.at ?? run.startedAt);
  const lines = ["", "Timeline"];
  for (const e of entries) {
    const dt = ((Date.parse(e.at) - t0) / 1000).toFixed(1).padStart(6);
    lines.push(`  +${dt}s  ${pad(e.release, 6)}  ${pad(e.event, 15)} ${e.detail ?? ""}`.trimEnd());
  }
  return `${lines.join("\n")}\n`;
}

// --- web console (docs/console.md) ---
/** Where to watch the demo in a browser; the console serves only while the demo runs. */
export function consoleLines(url: string): string {
  return `\nWatch the rollouts in a browser (keel console, served while the demo runs):\n  ${url}\n\n`;
}
// --- end web console ---

/** Runs the two rollouts, writes the report, prints the summary; `ok` says whether the outcome held. */
export async function runDemo(o: DemoOptions): Promise<LastRun> {
  const { env, out, signal } = o;
  const startedAt = new Date().toISOString();
  const api = env.tooling.api;
  const things = env.fleet.thingNames();
  const canary = things[0];
  if (!canary) throw new DemoOutcomeError("the fleet has no devices");
  if (o.consoleUrl) out.write(consoleLines(o.consoleUrl));
  const realNodes = o.realNodes ?? [];
  const realNote =
    realNodes.length > 0 ? "; the real node's jobs wait until it has booted and connected" : "";
  out.write(`waiting for ${things.length} simulated node(s) to boot and commit 1.0.0${realNote}…\n`);
  await env.fleet.waitSettled(60_000 + things.length * 100, signal);
  await publishDemoReleases(env, (l) => out.write(`  ${l}\n`));
  if (o.windowMinutes) out.write(await setDemoWindows(api, env.fleet.fleet, o.windowMinutes));
  const bake = o.bakeSeconds ?? 2;
  const fleets = [...new Set([env.fleet.fleet, ...realNodes.map((n) => n.fleet)])];
  const body = {
    fleets,
    waves: demoWaves(canary, bake, fleets.length),
    healthDeadlineSeconds: o.healthDeadlineSeconds ?? 20,
  };
  out.write("\n");
  // Measured from here on by watching the stand-in's objects, not from what the agents say they did.
  const cluster = env.cloud.kube?.cluster;
  cluster?.resetStats();
  const good = await followRollout(
    o,
    GOOD_RELEASE,
    body,
    `Rolling out ${GOOD_RELEASE} (canary ${canary}, then 25 %, then 100 %)`,
  );
  out.write("\n");
  const bad = await followRollout(
    o,
    BAD_RELEASE,
    body,
    `Rolling out ${BAD_RELEASE} (its kubelet never becomes healthy)`,
  );
  const fleet = await stableFleet(api, fleets, signal);
  const run: LastRun = {
    devices: things.length + realNodes.length,
    fleetName: env.fleet.fleet,
    startedAt,
    finishedAt: new Date().toISOString(),
    ok: false,
    problems: [],
    rollouts: [reportOf(good), reportOf(bad)],
    fleet,
  };
  if (realNodes.length > 0) {
    run.realNodes = [];
    for (const n of realNodes) {
      const versions = Object.entries(await getFleetVersions(api, n.fleet)).filter(([, c]) => c > 0);
      run.realNodes.push({ ...n, version: versions.map(([v]) => v).join(", ") || "nothing" });
    }
  }
  const budget = env.fleet.nodes[0]?.config.kubernetes?.maxUnavailable;
  if (cluster && budget !== undefined) {
    const { maxUnavailableObserved, pdbViolations, drains } = cluster.stats;
    run.kubernetes = { maxUnavailable: budget, maxUnavailableObserved, pdbViolations, drains };
  }
  run.problems = [...checkOutcome(run, canary), ...(run.kubernetes ? checkKubernetes(run.kubernetes) : [])];
  run.ok = run.problems.length === 0;
  if (o.resultFile) await writeFile(o.resultFile, `${JSON.stringify(run, null, 2)}\n`);
  out.write(renderSummary(run));
  if (run.kubernetes) out.write(renderKubernetes(run.kubernetes));
  out.write(renderTimeline(run));
  if (run.ok) {
    out.write(
      `\nOK: every node runs ${GOOD_RELEASE}; ${BAD_RELEASE} was stopped at the canary, which rolled itself back.\n`,
    );
  } else {
    out.write(`\nUNEXPECTED OUTCOME:\n${run.problems.map((p) => `  - ${p}`).join("\n")}\n`);
  }
  if (o.resultFile) out.write(`Report written to ${o.resultFile}\n`);
  return run;
}
