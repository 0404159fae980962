/**
 * Console benchmark: what the console's proxy adds to a rollout API call. GET /fleets/{fleet} and
 * GET /rollouts on a local cloud with a 20-node fleet, each sent 60 times straight through the CLI's
 * signed ApiClient (the baseline, same run) and 60 times through `keel console`'s proxy (token and
 * origin checks, allow-list and zod on the way in, the API's schemas on the way out). Prints medians and
 * p95 in ms and the ratio; also the cold esbuild bundle of the web app and its size. Not part of `npm test`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliTooling } from "../cli/commands/dev.ts";
import { webBundle } from "../cli/console/bundle.ts";
import { startConsole } from "../cli/console/server.ts";
import { startDevEnvironment } from "../local/fleet/environment.ts";

const DEVICES = 20;
const ROUNDS = 60;

function stats(ms: number[]): { median: number; p95: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { median: at(0.5), p95: at(0.95) };
}

async function time(fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

export async function run(): Promise<void> {
  const t0 = performance.now();
  const bundle = await webBundle();
  const bundleMs = performance.now() - t0;
  console.log(
    `web app bundle (cold, esbuild): ${bundleMs.toFixed(0)} ms; ${(bundle.js.length / 1024).toFixed(1)} KiB JS, ${(bundle.css.length / 1024).toFixed(1)} KiB CSS`,
  );

  const tmp = await mkdtemp(join(tmpdir(), "keel-bench-console-"));
  const dir = join(tmp, "keel");
  const env = await startDevEnvironment({ dir, fleet: "bench", devices: DEVICES, tooling: cliTooling(dir) });
  const server = await startConsole({ api: env.tooling.api, port: 0, target: "bench", log: () => {} });
  try {
    await env.fleet.waitSettled(120_000);
    const headers = { "x-keel-console-token": server.token };
    console.log(
      `${"route".padEnd(18)}  ${"direct (baseline)".padEnd(22)}  ${"via console".padEnd(22)}  ratio`,
    );
    for (const path of ["/fleets/bench", "/rollouts"]) {
      // Warm both paths (connections, JIT) before measuring.
      await env.tooling.api.get(path);
      await (await fetch(`${server.origin}/api${path}`, { headers })).json();
      const direct = stats(await time(() => env.tooling.api.get(path)));
      const proxied = stats(
        await time(async () => {
          const res = await fetch(`${server.origin}/api${path}`, { headers });
          if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
          return res.json();
        }),
      );
      const fmt = (s: { median: number; p95: number }) =>
        `${s.median.toFixed(1)} ms (p95 ${s.p95.toFixed(1)})`.padEnd(22);
      console.log(
        `GET ${path.padEnd(14)}  ${fmt(direct)}  ${fmt(proxied)}  ${(proxied.median / direct.median).toFixed(2)}×`,
      );
    }
  } finally {
    await server.close();
    await env.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
