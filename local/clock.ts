/**
 * The local cloud's clock. `timeScale` makes minutes pass in seconds (`--time-scale 60`: one scaled minute
 * per real second) so job timeouts and rollout rates can be demonstrated; local mode only (issue 3).
 */
import type { Clock } from "./contracts.ts";

/** Node's setTimeout overflows above 2^31-1 ms; longer waits are chained. */
const MAX_NODE_DELAY_MS = 2 ** 31 - 1;

export interface ClockOptions {
  /** Scaled milliseconds per real millisecond; 1 = real time. */
  timeScale: number;
  /**
   * Scaled time at creation (default: the real time). A local cloud restarted with a time scale can pass
   * the last scaled time it saw, so stored deadlines and timestamps never lie in the clock's future.
   */
  startMs?: number;
}

export function createClock({ timeScale, startMs }: ClockOptions): Clock {
  if (!Number.isFinite(timeScale) || timeScale <= 0) {
    throw new RangeError(`timeScale must be a positive number, got ${timeScale}`);
  }
  // Scaled time starts at startMs (or the real time) when the clock is created and runs timeScale times faster.
  const origin = Date.now();
  const start = startMs ?? origin;
  const now = (): number => Math.floor(start + (Date.now() - origin) * timeScale);
  return {
    now,
    setTimeout(fn, ms) {
      const due = now() + Math.max(0, ms);
      let handle: NodeJS.Timeout | undefined;
      let canceled = false;
      const arm = (): void => {
        const realDelay = Math.min(MAX_NODE_DELAY_MS, Math.max(0, (due - now()) / timeScale));
        handle = setTimeout(() => {
          if (canceled) return;
          if (now() < due) arm();
          else fn();
        }, realDelay);
        // Pending job timers must not keep a finished process (a test, a CLI) alive.
        handle.unref();
      };
      arm();
      return {
        cancel() {
          canceled = true;
          if (handle) clearTimeout(handle);
        },
      };
    },
  };
}

/** A clock that moves only when told to: for tests of timeouts and rollout pacing without waiting. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing every timer that falls due, in due order. */
  advance(ms: number): void;
  /** Number of timers still pending. */
  pending(): number;
}

export function createManualClock(startMs = Date.UTC(2026, 0, 1)): ManualClock {
  let current = startMs;
  let seq = 0;
  const timers = new Map<number, { due: number; fn: () => void }>();
  const nextDue = (): [number, { due: number; fn: () => void }] | undefined => {
    let best: [number, { due: number; fn: () => void }] | undefined;
    for (const entry of timers) {
      if (!best || entry[1].due < best[1].due || (entry[1].due === best[1].due && entry[0] < best[0]))
        best = entry;
    }
    return best;
  };
  return {
    now: () => current,
    setTimeout(fn, ms) {
      const id = seq++;
      timers.set(id, { due: current + Math.max(0, ms), fn });
      return { cancel: () => void timers.delete(id) };
    },
    advance(ms) {
      const target = current + ms;
      for (let next = nextDue(); next && next[1].due <= target; next = nextDue()) {
        timers.delete(next[0]);
        current = Math.max(current, next[1].due);
        next[1].fn();
      }
      current = target;
    },
    pending: () => timers.size,
  };
}
