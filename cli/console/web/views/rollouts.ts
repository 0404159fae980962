/// <reference lib="dom" />
/** All rollouts, newest first, with their status and progress, filterable by status; "Start a rollout…". */
import { apiGet, apiGetAll, describeError } from "../api.ts";
import { dataTable, errorBox, field, h, statusBadge, time } from "../dom.ts";
import { startDialog } from "../start.ts";
import type { ReleaseRecord, Rollout } from "../types.ts";
import { fill, type View, type ViewContext } from "../view.ts";

interface RolloutsAnswer {
  rollouts: Rollout[];
  nextCursor?: string;
}

/** Fleet names the console has seen in rollouts: the API has no fleet list, so these are the suggestions. */
export function knownFleets(rollouts: readonly Rollout[]): string[] {
  return [...new Set(rollouts.flatMap((r) => r.fleets))].sort();
}

export function rolloutsView(ctx: ViewContext): View {
  let rollouts: Rollout[] = [];
  const errors = h("div");
  const rows = h("tbody");
  const count = h("p", { className: "muted" });
  const status = h(
    "select",
    {},
    ...["all", "RUNNING", "PAUSED", "SUCCEEDED", "ABORTED"].map((s) =>
      h("option", { value: s }, s === "all" ? "All statuses" : s),
    ),
  );
  const start = h("button", { type: "button", className: "primary" }, "Start a rollout…");

  const render = () => {
    const shown = rollouts.filter((r) => status.value === "all" || r.status === status.value);
    fill(
      rows,
      ...shown.map((r) => {
        const done = r.waves.filter((w) => w.completedAt).length;
        return h(
          "tr",
          { "data-rollout": r.id, "data-status": r.status },
          h("th", { scope: "row" }, h("a", { href: `#/rollouts/${encodeURIComponent(r.id)}` }, r.id)),
          h("td", {}, r.release),
          h("td", {}, r.fleets.join(", ") || r.thingGroups.join(", ")),
          h("td", {}, statusBadge(r.status)),
          h("td", {}, `${done} of ${r.waves.length} done`),
          h("td", {}, time(r.createdAt, r.createdAt.replace("T", " ").slice(0, 16))),
        );
      }),
    );
    fill(count, `${shown.length} of ${rollouts.length} rollout(s)`);
  };
  status.addEventListener("change", render);

  start.addEventListener("click", async () => {
    fill(errors);
    try {
      const { releases } = await apiGet<{ releases: ReleaseRecord[] }>("/releases");
      const started = await startDialog(releases, knownFleets(rollouts));
      if (started) ctx.navigate(`#/rollouts/${encodeURIComponent(started.id)}`);
      else start.focus();
    } catch (err) {
      fill(errors, errorBox(describeError(err)));
    }
  });

  const el = h(
    "section",
    { className: "view rollouts", "aria-labelledby": "rollouts-h" },
    h("h1", { id: "rollouts-h" }, "Rollouts"),
    errors,
    h("div", { className: "toolbar" }, field("Status", status), start),
    count,
    dataTable("Rollouts, newest first", ["Rollout", "Release", "Target", "Status", "Waves", "Created"], rows),
  );

  return {
    el,
    async refresh() {
      try {
        const first = await apiGetAll<RolloutsAnswer>("/rollouts", "rollouts");
        rollouts = [...first.rollouts].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
        fill(errors);
        render();
      } catch (err) {
        fill(errors, errorBox(describeError(err)));
      }
    },
  };
}
