/**
 * One progress bar for every long-running CLI step (hashing, uploads). It draws on stderr and only when
 * stderr is a terminal, so pipes, logs and tests see clean output; off a terminal it is a no-op.
 */
import cliProgress from "cli-progress";

export interface Progress {
  /** Sets the absolute amount done so far. */
  update(done: number): void;
  stop(): void;
}

export interface ProgressOptions {
  /** "bytes" shows MiB; "items" shows plain counts. */
  unit?: "bytes" | "items";
  /** Draw even when stderr is not a terminal (never used by commands; for demos). */
  force?: boolean;
}

const MIB = 1024 * 1024;

function formatAmount(n: number, unit: "bytes" | "items"): string {
  return unit === "bytes" ? `${(n / MIB).toFixed(1)} MiB` : String(n);
}

export function progressBar(label: string, total: number, options: ProgressOptions = {}): Progress {
  const unit = options.unit ?? "bytes";
  if (!(options.force || process.stderr.isTTY) || total <= 0) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {done} / {all} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: false,
      // Redraw at most ~10 times a second; hashing calls update() per chunk.
      fps: 10,
      // cli-progress itself stays silent off a terminal; `force` overrides that too.
      noTTYOutput: options.force === true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { done: formatAmount(0, unit), all: formatAmount(total, unit) });
  let stopped = false;
  return {
    update(done: number) {
      if (!stopped) bar.update(done, { done: formatAmount(done, unit) });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
