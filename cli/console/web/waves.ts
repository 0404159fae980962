/// <reference lib="dom" />
/**
 * Where a wave stands, in words the operator reads at a glance (done, running, baking with the time left,
 * waiting, aborted, never started), worked out from the rollout the API returned and the current time.
 */
import { clock } from "./dom.ts";
import type { RolloutView } from "./types.ts";

export type WaveStateKind = "done" | "running" | "baking" | "paused" | "pending" | "aborted" | "never";

export interface WaveState {
  kind: WaveStateKind;
  text: string;
}

export function waveState(r: RolloutView, i: number, now: number): WaveState {
  const w = r.waves[i];
  if (!w) return { kind: "pending", text: "" };
  if (w.completedAt) return { kind: "done", text: "done" };
  if (!w.jobCreatedAt) {
    if (r.status === "ABORTED") return { kind: "never", text: "never started" };
    return { kind: "pending", text: i === r.current ? "starting" : "waiting for earlier waves" };
  }
  if (r.status === "ABORTED") return { kind: "aborted", text: "aborted" };
  if (w.thresholdMetAt) {
    const left = (Date.parse(w.thresholdMetAt) + w.bakeSeconds * 1000 - now) / 1000;
    const after = i === r.waves.length - 1 ? "finishing" : "next wave";
    if (r.status === "PAUSED")
      return {
        kind: "paused",
        text: `paused while baking (${left > 0 ? `${clock(left)} of bake left` : "bake over"})`,
      };
    return left > 0
      ? { kind: "baking", text: `baking: ${after} in ${clock(left)}` }
      : { kind: "baking", text: `bake over: ${after} at the next check` };
  }
  if (r.status === "PAUSED") return { kind: "paused", text: "paused: devices in this wave carry on" };
  return {
    kind: "running",
    text: `running: needs ${w.successThresholdPercent}% succeeded, aborts over ${w.failureThresholdPercent}% failed`,
  };
}

export function waveTitle(r: RolloutView, i: number): string {
  const w = r.waves[i];
  if (!w) return "";
  const what =
    w.kind === "things"
      ? `retry of ${(w.things ?? []).length} device(s)`
      : w.kind === "canary"
        ? `canary ${(w.things ?? []).join(", ")}`
        : `${w.percent}% of the fleet`;
  return `Wave ${i + 1}: ${what}`;
}
