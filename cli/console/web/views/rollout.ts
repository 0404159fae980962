/// <reference lib="dom" />
/**
 * One rollout: its settings, the actions its status allows, each wave with a progress bar and its state
 * (bake countdown included), the devices' outcomes with failure and rollback reasons (filterable), and the
 * whole timeline. Refreshed in place, so filters and focus survive every poll.
 */
import { type RolloutAction, runAction } from "../actions.ts";
import { apiGetAll, describeError } from "../api.ts";
import { legend, waveBar } from "../charts.ts";
import { ago, dataTable, errorBox, field, h, statusBadge, time } from "../dom.ts";
import type { DeviceOutcome, RolloutView } from "../types.ts";
import { fill, type View, type ViewContext } from "../view.ts";
import { waveState, waveTitle } from "../waves.ts";

const FAILED = new Set(["FAILED", "REJECTED", "TIMED_OUT"]);

export type OutcomeFilter = "all" | "succeeded" | "failed" | "rolled-back" | "active";

export function matchesOutcome(d: DeviceOutcome, f: OutcomeFilter, text: string): boolean {
  if (text && !d.thingName.toLowerCase().includes(text.toLowerCase())) return false;
  switch (f) {
    case "all":
      return true;
    case "succeeded":
      return d.status === "SUCCEEDED";
    case "failed":
      return FAILED.has(d.status);
    case "rolled-back":
      return d.statusDetails?.rolledBack === "true";
    case "active":
      return d.status === "QUEUED" || d.status === "IN_PROGRESS";
  }
}

function versions(d: DeviceOutcome): string {
  const s = d.statusDetails ?? {};
  const from = s.fromVersion;
  const to = s.toVersion ?? s.version;
  if (from && to) return `${from} → ${to}`;
  return to ?? from ?? "–";
}

export function rolloutView(ctx: ViewContext, id: string): View {
  let current: RolloutView | undefined;
  const errors = h("div");
  const heading = h("h1", {}, `Rollout ${id}`);
  const summary = h("dl", { className: "summary" });
  const buttons: Record<RolloutAction, HTMLButtonElement> = {
    pause: h("button", { type: "button", className: "secondary", "data-action": "pause" }, "Pause…"),
    resume: h("button", { type: "button", className: "primary", "data-action": "resume" }, "Resume…"),
    abort: h("button", { type: "button", className: "danger", "data-action": "abort" }, "Abort…"),
  };
  const waves = h("ol", { className: "waves" });
  const totals = h("p", { className: "totals" });
  const search = h("input", { type: "search", placeholder: "device name", autocomplete: "off" });
  const filter = h(
    "select",
    {},
    h("option", { value: "all" }, "All outcomes"),
    h("option", { value: "succeeded" }, "Succeeded"),
    h("option", { value: "failed" }, "Failed, rejected or timed out"),
    h("option", { value: "rolled-back" }, "Rolled back"),
    h("option", { value: "active" }, "Queued or in progress"),
  );
  const deviceRows = h("tbody");
  const deviceCount = h("p", { className: "muted", "aria-live": "polite" });
  const timeline = h("ol", { className: "timeline" });

  for (const [action, button] of Object.entries(buttons) as Array<[RolloutAction, HTMLButtonElement]>) {
    button.addEventListener("click", async () => {
      if (!current) return;
      fill(errors);
      try {
        if (await runAction(current, action)) ctx.refreshNow();
      } catch (err) {
        fill(errors, errorBox(describeError(err)));
      }
      button.focus();
    });
  }

  const renderDevices = () => {
    const all = current?.devices ?? [];
    const shown = [...all]
      .filter((d) => matchesOutcome(d, filter.value as OutcomeFilter, search.value.trim()))
      .sort((a, b) => a.wave - b.wave || a.thingName.localeCompare(b.thingName));
    fill(
      deviceRows,
      ...shown.map((d) =>
        h(
          "tr",
          { "data-device": d.thingName, "data-status": d.status },
          h("th", { scope: "row" }, d.thingName),
          h("td", {}, d.wave),
          h("td", {}, statusBadge(d.status)),
          h("td", {}, versions(d)),
          h("td", {}, d.statusDetails?.slot ?? "–"),
          h(
            "td",
            {},
            d.statusDetails?.rolledBack === "true"
              ? "yes"
              : d.statusDetails?.rolledBack === "false"
                ? "no"
                : "–",
          ),
          h("td", { className: "reason" }, d.statusDetails?.reason ?? d.statusDetails?.phase ?? ""),
          h("td", {}, time(d.at, ago(d.at, Date.now()))),
        ),
      ),
    );
    fill(deviceCount, `${shown.length} of ${all.length} device(s) shown`);
  };
  search.addEventListener("input", renderDevices);
  filter.addEventListener("change", renderDevices);

  const renderWaves = (r: RolloutView, now: number) => {
    fill(
      waves,
      ...r.waves.map((w, i) => {
        const st = waveState(r, i, now);
        return h(
          "li",
          {
            className: `wave wave-${st.kind}`,
            "data-wave": i + 1,
            "data-state": st.kind,
            "aria-current": i === r.current && r.status !== "SUCCEEDED" ? "step" : undefined,
          },
          h(
            "div",
            { className: "wave-head" },
            h("h3", {}, waveTitle(r, i)),
            h("span", { className: "wave-state" }, st.text),
          ),
          waveBar(w.counts),
          legend(w.counts),
        );
      }),
    );
  };

  const render = (r: RolloutView) => {
    const target =
      r.fleets.length > 0 ? `fleet ${r.fleets.join(", ")}` : `groups ${r.thingGroups.join(", ")}`;
    fill(heading, `Rollout of ${r.release} to ${target} `, statusBadge(r.status));
    const rows: Array<[string, Node | string]> = [
      ["Rollout", r.id],
      ["Status", `${r.status}${r.reason ? `: ${r.reason}` : ""}`],
      ["Wave", `${Math.min(r.current + 1, r.waves.length)} of ${r.waves.length}`],
      [
        "Created",
        h(
          "span",
          {},
          time(r.createdAt, r.createdAt.replace("T", " ").slice(0, 19)),
          ` by ${r.createdBy}${r.forced ? " (forced)" : ""}`,
        ),
      ],
      [
        "Pace",
        `${r.maximumPerMinute}/min, device timeout ${r.inProgressTimeoutMinutes} min, health deadline ${r.healthDeadlineSeconds} s`,
      ],
    ];
    fill(summary, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    buttons.pause.hidden = r.status !== "RUNNING";
    buttons.resume.hidden = r.status !== "PAUSED";
    buttons.abort.hidden = r.status !== "RUNNING" && r.status !== "PAUSED";
    renderWaves(r, Date.now());
    const t = r.totals;
    fill(
      totals,
      t && t.devices > 0
        ? `Devices: ${t.devices}, ${t.succeeded} succeeded, ${t.failed} failed (${t.rolledBack} rolled back)${t.other ? `, ${t.other} queued, in progress or canceled` : ""}.`
        : "No device has reported yet.",
    );
    renderDevices();
    fill(
      timeline,
      ...[...r.timeline]
        .reverse()
        .map((e) =>
          h(
            "li",
            {},
            time(e.at, e.at.replace("T", " ").slice(0, 19)),
            " ",
            h("strong", {}, e.event),
            e.detail ? `: ${e.detail}` : "",
            e.by ? h("span", { className: "muted" }, ` (${e.by})`) : "",
          ),
        ),
    );
  };

  const el = h(
    "article",
    { className: "view rollout", "aria-labelledby": "rollout-title" },
    h("p", {}, h("a", { href: "#/rollouts" }, "← All rollouts")),
    heading,
    errors,
    h("div", { className: "actions" }, buttons.pause, buttons.resume, buttons.abort),
    summary,
    h("section", { "aria-labelledby": "waves-h" }, h("h2", { id: "waves-h" }, "Waves"), waves, totals),
    h(
      "section",
      { "aria-labelledby": "devices-h" },
      h("h2", { id: "devices-h" }, "Devices"),
      h("div", { className: "filters" }, field("Search", search), field("Outcome", filter)),
      deviceCount,
      dataTable(
        "Each device's last outcome in this rollout",
        ["Device", "Wave", "Status", "Version", "Slot", "Rolled back", "Reason / phase", "Reported"],
        deviceRows,
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "timeline-h" },
      h("h2", { id: "timeline-h" }, "Timeline (newest first)"),
      timeline,
    ),
  );
  heading.id = "rollout-title";

  return {
    el,
    async refresh() {
      try {
        current = await apiGetAll<RolloutView>(`/rollouts/${encodeURIComponent(id)}`, "devices");
        fill(errors);
        render(current);
      } catch (err) {
        fill(errors, errorBox(describeError(err)));
      }
    },
    tick(now) {
      if (current) renderWaves(current, now);
    },
  };
}
