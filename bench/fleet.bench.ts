/**
 * Fleet benchmark: a three-wave rollout (1 %, 10 %, 100 %) of a small image to a simulated fleet of real
 * agents on the local cloud, at 1,000 nodes, printed beside the same run at 100 nodes (the baseline,
 * measured in the same process). Figures: wall time of the rollout, IoT control-plane calls made while it
 * ran (by the functions: nothing else calls IoT then), MQTT messages through the stand-in, peak RSS, and
 * the image bytes the devices fetched from S3 (their `bytesFetched` status details: delta updates, see
 * docs/delta.md) beside what full downloads would have fetched (`imageBytes` summed).
 * Registration (thing, certificate, bucket group per device) is measured apart: it grows with the fleet by
 * nature. Not part of `npm test`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { transferTotals } from "../cli/transfer-summary.ts";
import { RolloutSchema, RolloutViewSchema } from "../functions/rollout-api/contract.ts";
import { publishDemoReleases } from "../local/fleet/environment.ts";
import { callsBetween, totalCalls } from "../local/iot/call-counts.ts";
import { BENCH_TIME_SCALE, startBenchFleet } from "./bench-fleet.ts";

interface Figures {
  devices: number;
  setupSeconds: number;
  registrationCalls: number;
  rolloutSeconds: number;
  rolloutCalls: number;
  callsByOp: Record<string, number>;
  mqttIn: number;
  mqttOut: number;
  peakRssMiB: number;
  /** Image bytes the devices fetched (delta where the release allows) and what full downloads would. */
  fetchedMB: number;
  fullMB: number;
  status: string;
}

async function measure(devices: number): Promise<Figures> {
  const tmp = await mkdtemp(join(tmpdir(), `keel-bench-fleet-${devices}-`));
  const dir = join(tmp, "keel");
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 100);
  const t0 = performance.now();
  const env = await startBenchFleet(dir, devices);
  try {
    await env.fleet.waitSettled(600_000);
    const setupSeconds = (performance.now() - t0) / 1000;
    const registrationCalls = totalCalls(env.cloud.iot.stats().apiCalls);
    await publishDemoReleases(env, () => {});
    const before = env.cloud.iot.stats();
    const api = env.tooling.api;
    const t1 = performance.now();
    const created = RolloutSchema.parse(
      await api.post("/rollouts", {
        release: "1.1.0",
        fleets: ["bench"],
        waves: [
          { percent: 1, successThresholdPercent: 100 },
          { percent: 10, successThresholdPercent: 100 },
          { percent: 100, successThresholdPercent: 100 },
        ],
        healthDeadlineSeconds: 60,
      }),
    );
    let view = RolloutViewSchema.parse(await api.get(`/rollouts/${created.id}`));
    while (view.status !== "SUCCEEDED" && view.status !== "ABORTED") {
      await new Promise((r) => setTimeout(r, 500));
      view = RolloutViewSchema.parse(await api.get(`/rollouts/${created.id}`));
      if (performance.now() - t1 > 900_000) throw new Error(`rollout still ${view.status} after 15 minutes`);
    }
    await env.fleet.waitSettled(300_000);
    const rolloutSeconds = (performance.now() - t1) / 1000;
    const after = env.cloud.iot.stats();
    const callsByOp = callsBetween(before.apiCalls, after.apiCalls);
    const transfer = transferTotals(view.devices);
    return {
      devices,
      setupSeconds,
      registrationCalls,
      rolloutSeconds,
      rolloutCalls: totalCalls(callsByOp),
      callsByOp,
      mqttIn: after.mqttMessagesIn - before.mqttMessagesIn,
      mqttOut: after.mqttMessagesOut - before.mqttMessagesOut,
      peakRssMiB: peak / 1024 / 1024,
      fetchedMB: transfer.fetched / 1e6,
      fullMB: transfer.imageBytes / 1e6,
      status: view.status,
    };
  } finally {
    clearInterval(sampler);
    await env.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

function table(base: Figures, big: Figures): string {
  const rows: Array<[string, (f: Figures) => number, number]> = [
    ["setup: register + boot (s)", (f) => f.setupSeconds, 1],
    ["IoT calls for registration", (f) => f.registrationCalls, 0],
    ["rollout wall time (s)", (f) => f.rolloutSeconds, 1],
    ["IoT calls during rollout", (f) => f.rolloutCalls, 0],
    ["MQTT messages in", (f) => f.mqttIn, 0],
    ["MQTT messages out", (f) => f.mqttOut, 0],
    ["peak RSS (MiB)", (f) => f.peakRssMiB, 0],
    ["image MB fetched from S3", (f) => f.fetchedMB, 2],
    ["image MB if all full", (f) => f.fullMB, 2],
  ];
  const lines = [
    `${"".padEnd(28)}${`${base.devices} nodes`.padStart(12)}${`${big.devices} nodes`.padStart(13)}${"ratio".padStart(9)}`,
  ];
  for (const [name, get, digits] of rows) {
    const a = get(base);
    const b = get(big);
    lines.push(
      `${name.padEnd(28)}${a.toFixed(digits).padStart(12)}${b.toFixed(digits).padStart(13)}${(a === 0 ? "-" : `${(b / a).toFixed(2)}×`).padStart(9)}`,
    );
  }
  const ops = [...new Set([...Object.keys(base.callsByOp), ...Object.keys(big.callsByOp)])].sort();
  lines.push("", "IoT calls during the rollout, by operation:");
  for (const op of ops) {
    lines.push(
      `  ${op.padEnd(26)}${String(base.callsByOp[op] ?? 0).padStart(12)}${String(big.callsByOp[op] ?? 0).padStart(13)}`,
    );
  }
  return lines.join("\n");
}

export async function run(sizes: [number, number] = [100, 1000]): Promise<void> {
  console.log(
    `three-wave rollout (1 %, 10 %, 100 %) of a ~135 KB SquashFS image to real agents; IoT clock ×${BENCH_TIME_SCALE}`,
  );
  const base = await measure(sizes[0]);
  console.log(
    `baseline done: ${sizes[0]} nodes, rollout ${base.status} in ${base.rolloutSeconds.toFixed(1)} s`,
  );
  const big = await measure(sizes[1]);
  console.log(`done: ${sizes[1]} nodes, rollout ${big.status} in ${big.rolloutSeconds.toFixed(1)} s\n`);
  console.log(table(base, big));
  if (base.status !== "SUCCEEDED" || big.status !== "SUCCEEDED") process.exitCode = 1;
}
