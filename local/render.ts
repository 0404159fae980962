/**
 * Plain-text pieces shared by the CLI's screens (`keel releases`, `keel rollout list|status`) and the
 * simulated fleet's live view, so the columns and bars look — and change — the same everywhere.
 */
import type { Wave } from "../functions/rollout/model.ts";

/** Left-aligned columns two spaces apart, sized to the widest cell; trailing blanks trimmed. */
export function renderTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const fmt = (row: readonly string[]) =>
    row
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return `${[fmt(head), ...rows.map(fmt)].join("\n")}\n`;
}

/**
 * A wave's progress as a text bar `width` cells wide inside brackets: succeeded as #, failed (failed,
 * rejected, timed out) as !, in progress as ~, queued and the rest as '.'; blank before any counts.
 */
export function waveBar(counts: Wave["counts"], width: number): string {
  const total = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : 0;
  if (!counts || total === 0) return `[${" ".repeat(width)}]`;
  const cells = (n: number) => Math.round((n / total) * width);
  const ok = cells(counts.succeeded);
  const bad = cells(counts.failed + counts.rejected + counts.timedOut);
  const run = cells(counts.inProgress);
  const rest = Math.max(0, width - ok - bad - run);
  return `[${"#".repeat(ok)}${"!".repeat(bad)}${"~".repeat(run)}${".".repeat(rest)}]`.slice(0, width + 2);
}

/** How a wave is named on screen: `canary t1+t2` or its cumulative percent (`50%`). */
export function waveLabel(w: Wave): string {
  if (w.kind === "things") return `${(w.things ?? []).length} device(s)`;
  return w.kind === "canary" ? `canary ${(w.things ?? []).join("+")}` : `${w.percent}%`;
}
