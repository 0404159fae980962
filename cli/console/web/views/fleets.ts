/// <reference lib="dom" />
/**
 * A fleet: how many devices run which version (chart), its target release when the API gives one, its
 * active rollout, and the devices table (version, slot, last status, last seen) with search and filters.
 * The fleet API has no slot or report time per device yet; those come from the device's latest outcome in
 * the fleet's recent rollouts (and from the API itself once it returns them).
 */
import { apiGetAll, describeError } from "../api.ts";
import { sortVersions, versionChart } from "../charts.ts";
import { ago, dataTable, errorBox, field, h, statusBadge, time } from "../dom.ts";
import type { DeviceOutcome, FleetAnswer, FleetThing, Rollout, RolloutView } from "../types.ts";
import { fill, type View, type ViewContext } from "../view.ts";
import { knownFleets } from "./rollouts.ts";

/** How many of the fleet's newest rollouts are read for slots and report times. */
const RECENT_ROLLOUTS = 5;

interface Seen {
  slot?: string | undefined;
  at: number;
}

/** Each device's latest outcome across rollouts: the slot it reported and when. */
export function latestOutcomes(views: readonly RolloutView[]): Map<string, Seen> {
  const out = new Map<string, Seen>();
  const all: DeviceOutcome[] = views.flatMap((v) => v.devices);
  for (const d of all) {
    const prev = out.get(d.thingName);
    if (!prev || d.at > prev.at) out.set(d.thingName, { slot: d.statusDetails?.slot, at: d.at });
  }
  return out;
}

export function targetOf(f: FleetAnswer): string | undefined {
  const t = f.targetRelease;
  return typeof t === "string" ? t : t?.version;
}

export function fleetsView(ctx: ViewContext, initial: string | undefined): View {
  const fleetName = initial;
  let fleet: FleetAnswer | undefined;
  let seen = new Map<string, Seen>();
  /** Finished rollouts never change: read once. */
  const finished = new Map<string, RolloutView>();
  const errors = h("div");
  const picker = h("input", { list: "fleet-names", autocomplete: "off", value: initial ?? "" });
  const names = h("datalist", { id: "fleet-names" });
  const show = h("button", { type: "button", className: "secondary" }, "Show");
  const heading = h("h1", { id: "fleet-h" }, initial ? `Fleet ${initial}` : "Fleets");
  const facts = h("dl", { className: "summary" });
  const chart = h("figure", { className: "chart-wrap" });
  const search = h("input", { type: "search", placeholder: "device name", autocomplete: "off" });
  const version = h("select", {}, h("option", { value: "" }, "All versions"));
  const status = h("select", {}, h("option", { value: "" }, "Any last status"));
  const rows = h("tbody");
  const count = h("p", { className: "muted", "aria-live": "polite" });

  const open = () => {
    const name = picker.value.trim();
    if (name) ctx.navigate(`#/fleets/${encodeURIComponent(name)}`);
  };
  show.addEventListener("click", open);
  picker.addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Enter") open();
  });

  /** Keeps a select's options in step with the data without losing the operator's choice. */
  const options = (select: HTMLSelectElement, values: string[], all: string) => {
    const chosen = select.value;
    fill(select, h("option", { value: "" }, all), ...values.map((v) => h("option", { value: v }, v)));
    select.value = values.includes(chosen) ? chosen : "";
  };

  const renderThings = () => {
    if (!fleet) return;
    const text = search.value.trim().toLowerCase();
    const shown = fleet.things.filter(
      (t) =>
        (!text || t.thingName.toLowerCase().includes(text)) &&
        (!version.value || (t.version ?? "unknown") === version.value) &&
        (!status.value || (t.lastStatus ?? "none") === status.value),
    );
    const now = Date.now();
    const lastSeen = (t: FleetThing) => t.lastSeen ?? t.updatedAt ?? seen.get(t.thingName)?.at;
    fill(
      rows,
      ...shown.map((t) => {
        const at = lastSeen(t);
        return h(
          "tr",
          { "data-device": t.thingName },
          h("th", { scope: "row" }, t.thingName),
          h("td", {}, t.version ?? "unknown"),
          h("td", {}, t.slot ?? seen.get(t.thingName)?.slot ?? "–"),
          h("td", {}, t.lastStatus ? statusBadge(t.lastStatus) : "–"),
          h("td", {}, at === undefined ? "–" : time(at, ago(at, now))),
          h("td", {}, t.bucket),
        );
      }),
    );
    fill(count, `${shown.length} of ${fleet.things.length} device(s) shown`);
  };
  for (const c of [search, version, status])
    c.addEventListener(c === search ? "input" : "change", renderThings);

  const render = (f: FleetAnswer) => {
    const target = targetOf(f);
    fill(heading, `Fleet ${f.fleet}`);
    const rows: Array<[string, Node | string]> = [
      ["Devices", String(f.devices ?? f.things.length)],
      ["Highest version reached", f.highestVersion ?? "–"],
      ["Target release", target ?? "none set"],
      [
        "Active rollout",
        f.activeRollout
          ? h(
              "span",
              {},
              h("a", { href: `#/rollouts/${encodeURIComponent(f.activeRollout.id)}` }, f.activeRollout.id),
              ` (${f.activeRollout.status}, release ${f.activeRollout.release})`,
            )
          : "none",
      ],
    ];
    fill(facts, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    fill(
      chart,
      versionChart(f.versions ?? {}, target),
      h("figcaption", {}, `Devices per version (${f.devices ?? f.things.length} in all)`),
    );
    options(version, sortVersions(Object.keys(f.versions ?? {})), "All versions");
    options(status, [...new Set(f.things.map((t) => t.lastStatus ?? "none"))].sort(), "Any last status");
    renderThings();
  };

  const readOutcomes = async (rollouts: Rollout[], name: string) => {
    const recent = rollouts
      .filter((r) => r.fleets.includes(name))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, RECENT_ROLLOUTS);
    const views = await Promise.all(
      recent.map(async (r) => {
        const cached = finished.get(r.id);
        if (cached) return cached;
        const v = await apiGetAll<RolloutView>(`/rollouts/${encodeURIComponent(r.id)}`, "devices");
        if (v.status === "SUCCEEDED" || (v.status === "ABORTED" && v.settled)) finished.set(r.id, v);
        return v;
      }),
    );
    seen = latestOutcomes(views);
  };

  const el = h(
    "section",
    { className: "view fleets", "aria-labelledby": "fleet-h" },
    heading,
    errors,
    h("div", { className: "toolbar" }, field("Fleet", picker), show, names),
    facts,
    chart,
    h(
      "section",
      { "aria-labelledby": "fleet-devices-h" },
      h("h2", { id: "fleet-devices-h" }, "Devices"),
      h(
        "div",
        { className: "filters" },
        field("Search", search),
        field("Version", version),
        field("Last status", status),
      ),
      count,
      dataTable(
        "The fleet's devices",
        ["Device", "Version", "Slot", "Last status", "Last seen", "Bucket"],
        rows,
      ),
    ),
  );

  return {
    el,
    async refresh() {
      try {
        const { rollouts } = await apiGetAll<{ rollouts: Rollout[] }>("/rollouts", "rollouts");
        const known = knownFleets(rollouts);
        fill(names, ...known.map((f) => h("option", { value: f })));
        if (!fleetName && known[0]) {
          ctx.navigate(`#/fleets/${encodeURIComponent(known[0])}`);
          return;
        }
        if (!fleetName) {
          fill(errors, h("p", {}, "No rollout names a fleet yet: type a fleet name above."));
          return;
        }
        const name = fleetName;
        const [f] = await Promise.all([
          apiGetAll<FleetAnswer>(`/fleets/${encodeURIComponent(name)}`, "things"),
          readOutcomes(rollouts, name),
        ]);
        fleet = f;
        fill(errors);
        render(f);
      } catch (err) {
        fill(errors, errorBox(describeError(err)));
      }
    },
    tick() {
      renderThings();
    },
  };
}
