/**
 * Convergence benchmark (docs/fleets.md#target-release-and-convergence): a fleet of 1,000 real agents on
 * the local cloud takes 1.1.0 in a one-wave rollout, which makes 1.1.0 the fleet's target and starts its
 * CONTINUOUS convergence job. Then 10 nodes join, then 100 more: each batch is registered, powered on from
 * the 1.0.0 factory image, and timed until every new node runs 1.1.0 committed. Printed per batch: the
 * job-side IoT control-plane calls (job operations and bucket-group lookups, counted by the stand-in),
 * which must not grow with the nodes added, beside registration's calls, which do by nature (the
 * baseline, measured in the same run). Not part of `npm test`.
 * `KEEL_BENCH_CONVERGENCE_NODES` sets the fleet's size (default 1000) for a quicker look.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetStatusSchema, RolloutSchema } from "../functions/rollout-api/contract.ts";
import { publishDemoReleases } from "../local/fleet/environment.ts";
import type { SimulatedFleet } from "../local/fleet/fleet.ts";
import { startMoreNodes } from "../local/fleet/join.ts";
import { jobSideCalls, totalCalls } from "../local/iot/call-counts.ts";
import { BENCH_TIME_SCALE, startBenchFleet } from "./bench-fleet.ts";

const BATCHES = [10, 100] as const;

interface Batch {
  added: number;
  seconds: number;
  jobSide: Record<string, number>;
  registration: number;
  mqttIn: number;
}

async function poll<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Resolves once every node of `f` runs `version` on a committed slot. */
async function allOn(f: SimulatedFleet, version: string, timeoutMs: number): Promise<void> {
  await poll(`${f.nodes.length} node(s) on ${version}`, timeoutMs, async () => {
    const settled = await Promise.all(f.nodes.map((n) => n.settled()));
    const done = f.nodes.every((n, i) => settled[i] && n.snapshot().version === version);
    return done ? true : undefined;
  });
}

export async function run(): Promise<void> {
  const devices = Number(process.env.KEEL_BENCH_CONVERGENCE_NODES ?? 1000);
  const tmp = await mkdtemp(join(tmpdir(), "keel-bench-convergence-"));
  const dir = join(tmp, "keel");
  const joined: SimulatedFleet[] = [];
  console.log(
    `${devices} real agents take 1.1.0 in one wave; then ${BATCHES.join(" and ")} nodes join; IoT clock ×${BENCH_TIME_SCALE}`,
  );
  const t0 = performance.now();
  const env = await startBenchFleet(dir, devices);
  try {
    await env.fleet.waitSettled(900_000);
    await publishDemoReleases(env, () => {});
    console.log(`setup: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const api = env.tooling.api;
    const t1 = performance.now();
    const created = RolloutSchema.parse(
      await api.post("/rollouts", {
        release: "1.1.0",
        fleets: ["bench"],
        waves: [{ percent: 100, successThresholdPercent: 100 }],
        healthDeadlineSeconds: 60,
      }),
    );
    await poll("the rollout and the convergence job", 1_800_000, async () => {
      const r = RolloutSchema.parse(await api.get(`/rollouts/${created.id}`));
      if (r.status === "ABORTED") throw new Error(`rollout aborted: ${r.reason}`);
      const t = FleetStatusSchema.parse(await api.get("/fleets/bench?limit=1")).target;
      return r.status === "SUCCEEDED" && t?.convergence.phase === "running" ? t : undefined;
    });
    await allOn(env.fleet, "1.1.0", 900_000);
    console.log(
      `rollout to ${devices} nodes and the convergence job: ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );

    const batches: Batch[] = [];
    for (const added of BATCHES) {
      const before = env.cloud.iot.stats();
      const t = performance.now();
      const f = await startMoreNodes(env, { thingPrefix: `join${added}`, devices: added });
      joined.push(f);
      await allOn(f, "1.1.0", 900_000);
      const after = env.cloud.iot.stats();
      const jobSide = jobSideCalls(before.apiCalls, after.apiCalls);
      batches.push({
        added,
        seconds: (performance.now() - t) / 1000,
        jobSide,
        registration: totalCalls(after.apiCalls) - totalCalls(before.apiCalls) - totalCalls(jobSide),
        mqttIn: after.mqttMessagesIn - before.mqttMessagesIn,
      });
      console.log(`+${added}: all on 1.1.0 in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    console.log(table(batches));
    const [small, big] = batches;
    if (!small || !big || totalCalls(big.jobSide) > totalCalls(small.jobSide)) process.exitCode = 1;
  } finally {
    for (const f of joined) await f.stop();
    await env.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

function table(batches: Batch[]): string {
  const head = ["", ...batches.map((b) => `+${b.added} nodes`)];
  const rows: Array<[string, (b: Batch) => string]> = [
    ["until all on target (s)", (b) => b.seconds.toFixed(1)],
    ["IoT calls for convergence", (b) => String(totalCalls(b.jobSide))],
    ["IoT calls for registration", (b) => String(b.registration)],
    ["MQTT messages in", (b) => String(b.mqttIn)],
  ];
  const ops = [...new Set(batches.flatMap((b) => Object.keys(b.jobSide)))].sort();
  for (const op of ops) rows.push([`  of which ${op}`, (b) => String(b.jobSide[op] ?? 0)]);
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(28) : c.padStart(14))).join("");
  return [line(head), ...rows.map(([name, get]) => line([name, ...batches.map(get)]))].join("\n");
}
