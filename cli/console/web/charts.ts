/// <reference lib="dom" />
/**
 * The two pictures: a wave's progress as a stacked bar (succeeded / failed / in progress / queued), and a
 * fleet's version distribution as an SVG bar chart. Both carry their numbers as text for screen readers
 * and as data attributes, so what the picture shows can be checked against the API.
 */
import { h, svg } from "./dom.ts";
import type { WaveCounts } from "./types.ts";

export interface BarParts {
  succeeded: number;
  failed: number;
  inProgress: number;
  queued: number;
  other: number;
}

export function barParts(c: WaveCounts): BarParts {
  return {
    succeeded: c.succeeded,
    failed: c.failed + c.rejected + c.timedOut,
    inProgress: c.inProgress,
    queued: c.queued,
    other: c.canceled + c.removed,
  };
}

const PART_LABEL: Record<keyof BarParts, string> = {
  succeeded: "succeeded",
  failed: "failed",
  inProgress: "in progress",
  queued: "queued",
  other: "canceled",
};

export function describeParts(p: BarParts): string {
  const total = Object.values(p).reduce((a, b) => a + b, 0);
  const parts = (Object.keys(PART_LABEL) as Array<keyof BarParts>)
    .filter((k) => p[k] > 0 || k !== "other")
    .map((k) => `${p[k]} ${PART_LABEL[k]}`);
  return `${parts.join(", ")} of ${total}`;
}

/** The stacked progress bar of one wave; an empty track before the wave has any counts. */
export function waveBar(counts: WaveCounts | undefined): HTMLElement {
  if (!counts) return h("div", { className: "bar bar-empty", role: "img", "aria-label": "no devices yet" });
  const p = barParts(counts);
  const total = Object.values(p).reduce((a, b) => a + b, 0);
  const bar = h("div", { className: "bar", role: "img", "aria-label": describeParts(p) });
  for (const k of Object.keys(PART_LABEL) as Array<keyof BarParts>) {
    if (p[k] === 0 || total === 0) continue;
    const seg = h("span", { className: `seg seg-${k}`, "data-part": k, "data-count": p[k] });
    seg.style.width = `${(p[k] / total) * 100}%`;
    bar.append(seg);
  }
  return bar;
}

export function legend(counts: WaveCounts | undefined): HTMLElement {
  const p = counts ? barParts(counts) : undefined;
  return h(
    "ul",
    { className: "legend" },
    ...(Object.keys(PART_LABEL) as Array<keyof BarParts>)
      .filter((k) => k !== "other" || (p?.other ?? 0) > 0)
      .map((k) =>
        h(
          "li",
          { "data-part": k },
          h("span", { className: `swatch seg-${k}`, "aria-hidden": "true" }),
          `${p ? p[k] : 0} ${PART_LABEL[k]}`,
        ),
      ),
  );
}

/** Versions newest first (numeric semver order; "unknown" and other text last). */
export function sortVersions(versions: string[]): string[] {
  const key = (v: string) => v.split(/[.+-]/).map((x) => (/^\d+$/.test(x) ? Number(x) : Number.NaN));
  return [...versions].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
      const x = ka[i] ?? -1;
      const y = kb[i] ?? -1;
      if (Number.isNaN(x) !== Number.isNaN(y)) return Number.isNaN(x) ? 1 : -1;
      if (x !== y && !Number.isNaN(x)) return y - x;
    }
    return a.localeCompare(b);
  });
}

const ROW = 34;
const LABEL_W = 120;
const WIDTH = 640;

/** Horizontal bars, one per version, longest = most devices; the target release is marked. */
export function versionChart(versions: Record<string, number>, target?: string): SVGSVGElement {
  const names = sortVersions(Object.keys(versions));
  const max = Math.max(1, ...Object.values(versions));
  const height = Math.max(1, names.length) * ROW + 8;
  const summary = names.map((v) => `${v}: ${versions[v]} device(s)`).join("; ") || "no devices";
  const chart = svg(
    "svg",
    {
      className: "chart",
      viewBox: `0 0 ${WIDTH} ${height}`,
      role: "img",
      "aria-label": `Devices per version: ${summary}`,
      preserveAspectRatio: "xMinYMin meet",
    },
    svg("title", {}, `Devices per version: ${summary}`),
  );
  names.forEach((v, i) => {
    const n = versions[v] ?? 0;
    const y = 4 + i * ROW;
    const w = ((WIDTH - LABEL_W - 60) * n) / max;
    chart.append(
      svg(
        "g",
        { className: `chart-row${v === target ? " chart-target" : ""}`, "data-version": v, "data-count": n },
        svg("text", { x: 0, y: y + ROW / 2 + 5, className: "chart-label" }, v === target ? `${v} ★` : v),
        svg("rect", { x: LABEL_W, y: y + 4, width: Math.max(2, w), height: ROW - 10, rx: 3 }),
        svg("text", { x: LABEL_W + Math.max(2, w) + 8, y: y + ROW / 2 + 5, className: "chart-count" }, n),
      ),
    );
  });
  return chart;
}
