/// <reference lib="dom" />
/**
 * Pause, resume and abort: each says exactly what it will do to this rollout in a confirmation, then goes
 * through the API (and so into the audit log). The result or the API's refusal is announced.
 */
import { apiPost } from "./api.ts";
import { confirmDialog } from "./confirm.ts";
import { announce, h } from "./dom.ts";
import type { Rollout, RolloutView } from "./types.ts";

export type RolloutAction = "pause" | "resume" | "abort";

const target = (r: Rollout) =>
  r.fleets.length > 0 ? `fleet ${r.fleets.join(", ")}` : `thing group(s) ${r.thingGroups.join(", ")}`;

/** What the confirmation says will happen, in terms of this rollout's waves. */
export function consequences(r: RolloutView, action: RolloutAction): string[] {
  const wave = r.current + 1;
  const later = r.waves.length - wave;
  if (action === "pause") {
    return [
      `Rollout ${r.id} of ${r.release} to ${target(r)} stops advancing: no new wave starts while it is paused.`,
      `Devices already in wave ${wave} carry on and finish their update (pausing does not cancel them).`,
      "You can resume it later.",
    ];
  }
  if (action === "resume") {
    return [
      `Rollout ${r.id} of ${r.release} continues from wave ${wave} of ${r.waves.length}.`,
      later > 0
        ? `Once wave ${wave} meets its success threshold and bake time, the next wave starts.`
        : "This is the last wave; the rollout succeeds once it meets its success threshold.",
    ];
  }
  return [
    `Rollout ${r.id} of ${r.release} to ${target(r)} is ABORTED. This cannot be undone.`,
    `Wave ${wave}'s devices that have not started yet are canceled; devices already installing finish and report.`,
    later > 0 ? `The remaining ${later} wave(s) never start.` : "No wave is left to start.",
    "Devices that already run the new release keep it (abort does not roll back).",
  ];
}

const TITLE: Record<RolloutAction, string> = {
  pause: "Pause this rollout?",
  resume: "Resume this rollout?",
  abort: "Abort this rollout?",
};

const CONFIRM: Record<RolloutAction, string> = {
  pause: "Pause rollout",
  resume: "Resume rollout",
  abort: "Abort rollout",
};

/** Asks, then acts: true when the API accepted the change, false when cancelled; throws the API's refusal. */
export async function runAction(r: RolloutView, action: RolloutAction): Promise<boolean> {
  const answer = await confirmDialog({
    title: TITLE[action],
    body: consequences(r, action).map((line) => h("p", {}, line)),
    confirm: CONFIRM[action],
    danger: action === "abort",
    reason: action === "abort",
  });
  if (!answer) {
    announce(`${action} cancelled; nothing changed`);
    return false;
  }
  const body = answer.reason ? { reason: answer.reason } : {};
  const next = await apiPost<Rollout>(`/rollouts/${encodeURIComponent(r.id)}/${action}`, body);
  announce(`rollout ${next.id} is now ${next.status}`);
  return true;
}
