/**
 * The fleet the fleet-scale benchmarks share: a local cloud with `devices` real agents, the IoT clock 10×
 * so the rollout rate (≤ 1000 executions/minute) does not dominate, one schedule tick per real second, and
 * no Kubernetes cluster (its own cost is bench/k8s.bench.ts; keeping it out keeps the figures comparable).
 */
import { cliTooling } from "../cli/commands/dev.ts";
import { type DevEnvironment, startDevEnvironment } from "../local/fleet/environment.ts";

export const BENCH_TIME_SCALE = 10;

export function startBenchFleet(dir: string, devices: number): Promise<DevEnvironment> {
  return startDevEnvironment({
    dir,
    fleet: "bench",
    devices,
    timeScale: BENCH_TIME_SCALE,
    tickSeconds: 10, // one schedule tick per real second
    kubernetes: false,
    tooling: cliTooling(dir),
  });
}
