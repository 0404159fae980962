/// <reference lib="dom" />
/**
 * "Start a rollout": a form in a modal dialog whose summary says, as the operator types, exactly what the
 * rollout will do (which release, which devices in which order, bake and thresholds). The console server
 * and the API check the request again; their field errors show inside the dialog.
 */
import { apiPost, describeError } from "./api.ts";
import { field, h } from "./dom.ts";
import type { ReleaseRecord, Rollout } from "./types.ts";

export interface StartInput {
  release: string;
  fleet: string;
  canary: string[];
  percents: number[];
  bakeSeconds: number;
  failureThresholdPercent: number;
  successThresholdPercent: number;
  force: boolean;
}

/** The API body for the form's values: a canary wave first (if any), then the percent waves; no bake after the last. */
export function rolloutBody(i: StartInput): Record<string, unknown> {
  const gate = {
    failureThresholdPercent: i.failureThresholdPercent,
    successThresholdPercent: i.successThresholdPercent,
  };
  const waves: Array<Record<string, unknown>> = [
    ...(i.canary.length > 0 ? [{ canary: i.canary }] : []),
    ...i.percents.map((percent) => ({ percent })),
  ].map((w, n, all) => ({ ...w, ...gate, ...(n < all.length - 1 ? { bakeSeconds: i.bakeSeconds } : {}) }));
  return { release: i.release, fleets: [i.fleet], waves, ...(i.force ? { force: true } : {}) };
}

export function describeStart(i: StartInput): string {
  const steps = [
    ...(i.canary.length > 0 ? [`the canary ${i.canary.join(", ")}`] : []),
    ...i.percents.map((p) => `${p}% of the fleet`),
  ];
  return [
    `Release ${i.release || "(choose one)"} goes to fleet ${i.fleet || "(name one)"} in ${steps.length} wave(s): ${steps.join(", then ") || "(none)"}.`,
    `Each wave must reach ${i.successThresholdPercent}% succeeded, then bakes ${i.bakeSeconds} s before the next starts;`,
    `the rollout aborts if more than ${i.failureThresholdPercent}% of a wave fails. Devices install, reboot into the new slot and roll back on their own if unhealthy.`,
    i.force ? "Force: starts even if the fleet already has a rollout running." : "",
  ]
    .filter(Boolean)
    .join(" ");
}

const numbers = (s: string) =>
  s
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);

/** Opens the dialog; resolves with the started rollout, or null when cancelled. */
export function startDialog(releases: ReleaseRecord[], fleets: string[]): Promise<Rollout | null> {
  return new Promise((resolve) => {
    const verified = releases.filter((r) => r.status === "VERIFIED");
    const release = h(
      "select",
      { name: "release", required: true },
      ...verified.map((r) => h("option", { value: r.version }, r.version)),
    );
    const fleet = h("input", {
      name: "fleet",
      required: true,
      list: "known-fleets",
      autocomplete: "off",
      value: fleets[0] ?? "",
    });
    const list = h("datalist", { id: "known-fleets" }, ...fleets.map((f) => h("option", { value: f })));
    const canary = h("input", { name: "canary", autocomplete: "off" });
    const percents = h("input", { name: "percents", value: "25, 100", autocomplete: "off" });
    const bake = h("input", { name: "bake", type: "number", min: 0, value: 60 });
    const failure = h("input", { name: "failure", type: "number", min: 0, max: 100, value: 10 });
    const success = h("input", { name: "success", type: "number", min: 0, max: 100, value: 90 });
    const force = h("input", { name: "force", type: "checkbox" });
    const summary = h("p", { className: "start-summary", "aria-live": "polite" });
    const problems = h("div");
    const cancel = h("button", { type: "button", className: "secondary" }, "Cancel");
    const ok = h("button", { type: "button", className: "primary" }, "Start rollout");
    const input = (): StartInput => ({
      release: release.value,
      fleet: fleet.value.trim(),
      canary: canary.value.split(/[\s,]+/).filter(Boolean),
      percents: numbers(percents.value),
      bakeSeconds: Number(bake.value),
      failureThresholdPercent: Number(failure.value),
      successThresholdPercent: Number(success.value),
      force: force.checked,
    });
    const update = () => {
      summary.textContent = describeStart(input());
    };
    const dialog = h(
      "dialog",
      { className: "confirm start", "aria-labelledby": "start-title" },
      h("h2", { id: "start-title" }, "Start a rollout"),
      verified.length === 0
        ? h("p", { className: "error" }, "No VERIFIED release yet: publish one first.")
        : null,
      h(
        "div",
        { className: "grid" },
        field("Release (VERIFIED only)", release),
        field("Fleet", fleet),
        field("Canary devices", canary, "optional; thing names, comma-separated; they go first"),
        field("Waves (% of the fleet)", percents, "cumulative, increasing, the last one 100"),
        field("Bake between waves (s)", bake),
        field("Abort above this % failed", failure),
        field("Advance at this % succeeded", success),
        field("Force (fleet already has a rollout)", force),
      ),
      list,
      h("h3", {}, "What will happen"),
      summary,
      problems,
      h("div", { className: "actions" }, cancel, ok),
    );
    dialog.addEventListener("input", update);
    dialog.addEventListener("change", update);
    let result: Rollout | null = null;
    cancel.addEventListener("click", () => dialog.close());
    ok.addEventListener("click", async () => {
      problems.replaceChildren();
      ok.disabled = true;
      try {
        result = await apiPost<Rollout>("/rollouts", rolloutBody(input()));
        dialog.close();
      } catch (err) {
        problems.replaceChildren(h("pre", { className: "error", role: "alert" }, describeError(err)));
      } finally {
        ok.disabled = false;
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    update();
    document.body.append(dialog);
    dialog.showModal();
    release.focus();
  });
}
