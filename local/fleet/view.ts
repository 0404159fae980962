/**
 * Live progress of a rollout on the simulated fleet: one line per wave (from the rollout API's view) and
 * the phase of every node (from the simulator). On a terminal the block is redrawn in place; elsewhere
 * only changes are printed, one plain line each, so logs and CI output stay readable.
 */

import { STATES } from "../../device/state-machine.ts";
import type { Wave } from "../../functions/rollout/model.ts";
import type { RolloutView } from "../../functions/rollout-api/contract.ts";
import { waveBar, waveLabel } from "../render.ts";
import type { NodePhase, NodeSnapshot } from "./node.ts";

const BAR = 24;

export function waveState(r: RolloutView, i: number): string {
  const w = r.waves[i];
  if (!w) return "";
  if (w.completedAt) return "done";
  if (!w.jobCreatedAt) return r.status === "ABORTED" && i > r.current ? "never started" : "pending";
  if (r.status === "ABORTED" && i === r.current) return "aborted";
  if (w.thresholdMetAt) return `baking ${w.bakeSeconds}s`;
  return "running";
}

function counts(w: Wave): string {
  const c = w.counts;
  if (!c) return "";
  const failed = c.failed + c.rejected + c.timedOut;
  return `${c.succeeded} ok${failed ? `, ${failed} failed` : ""}${c.inProgress ? `, ${c.inProgress} in progress` : ""}${c.queued ? `, ${c.queued} queued` : ""}`;
}

/** Phases grouped for the summary line, in life-cycle order: the agent's states between the simulator's own. */
const ORDER: readonly NodePhase[] = ["booting", ...STATES, "down", "off"];

export function phaseSummary(nodes: readonly NodeSnapshot[]): string {
  const by = new Map<NodePhase, number>();
  for (const n of nodes) by.set(n.phase, (by.get(n.phase) ?? 0) + 1);
  const versions = new Map<string, number>();
  for (const n of nodes) versions.set(n.version ?? "none", (versions.get(n.version ?? "none") ?? 0) + 1);
  const phases = [...by.entries()]
    .sort((a, b) => ORDER.indexOf(a[0]) - ORDER.indexOf(b[0]))
    .map(([p, n]) => `${p} ${n}`)
    .join(" · ");
  const running = [...versions.entries()]
    .sort()
    .map(([v, n]) => `${v} ×${n}`)
    .join(", ");
  return `nodes: ${phases}   running: ${running}`;
}

/** At most this many nodes are listed one by one; bigger fleets get the summary line only. */
export const NODE_TABLE_MAX = 36;

/** The block drawn on a terminal. */
export function renderLive(
  r: RolloutView | undefined,
  title: string,
  nodes: readonly NodeSnapshot[],
  /** Terminal width; 0 lists one node per line (plain output). */
  columns = 0,
): string[] {
  const lines = [title];
  if (r) {
    lines.push(`  rollout ${r.id}: ${r.status}${r.reason ? ` — ${r.reason}` : ""}`);
    if (r.waitingForWindow)
      lines.push(`  waiting for a maintenance window (next opens ${r.waitingForWindow.opensAt ?? "?"})`);
    r.waves.forEach((w, i) => {
      const marker = i === r.current && r.status !== "SUCCEEDED" ? ">" : " ";
      lines.push(
        `  ${marker} wave ${i + 1} ${waveLabel(w).padEnd(16)} ${waveBar(w.counts, BAR)} ${waveState(r, i).padEnd(13)} ${counts(w)}`,
      );
    });
  } else {
    lines.push("  starting…");
  }
  lines.push(`  ${phaseSummary(nodes)}`);
  if (nodes.length <= NODE_TABLE_MAX) {
    const width = Math.max(...nodes.map((n) => n.thing.length)) + 26;
    const cell = (n: NodeSnapshot) =>
      `${n.thing} ${(n.version ?? "-").padEnd(6)} ${n.booted ?? "-"} ${n.phase}`.padEnd(width);
    const perLine = columns > 0 ? Math.max(1, Math.floor((columns - 4) / width)) : 1;
    for (let i = 0; i < nodes.length; i += perLine) {
      lines.push(
        `    ${nodes
          .slice(i, i + perLine)
          .map(cell)
          .join("")
          .trimEnd()}`,
      );
    }
  }
  return lines;
}

/**
 * Draws successive frames. On a TTY it moves the cursor back over the previous frame and redraws it; off a
 * TTY it prints only the lines that changed since the previous frame (frames keep one line per wave and per
 * node in a fixed order, so a changed line is a new wave state or a node's new phase).
 */
export class LiveView {
  private previous: string[] = [];

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly tty = out.isTTY === true,
  ) {}

  frame(lines: string[]): void {
    if (this.tty) {
      // A line wider than the terminal wraps and the redraw would climb too few lines: cut it.
      const cols = (this.out as { columns?: number }).columns ?? 120;
      lines = lines.map((l) => (l.length >= cols ? `${l.slice(0, cols - 2)}…` : l));
      const up = this.previous.length > 0 ? `\x1b[${this.previous.length}F` : "";
      this.out.write(`${up}${lines.map((l) => `\x1b[2K${l}`).join("\n")}\n`);
      // A shorter frame leaves stale lines below: clear them.
      if (this.previous.length > lines.length) this.out.write("\x1b[J");
      this.previous = lines;
      return;
    }
    lines.forEach((l, i) => {
      if (this.previous[i] !== l) this.out.write(`${l}\n`);
    });
    this.previous = lines;
  }

  /** Ends the current block: the next frame starts below it. */
  done(): void {
    this.previous = [];
  }
}
