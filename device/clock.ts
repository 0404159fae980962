/**
 * Time for the agent, injected (docs/style.md#tests): backoff, health-check deadlines and timeouts all go
 * through it, so tests can run a fast clock and many agents share no timers of their own.
 */
import { AbortedError } from "./errors.ts";

export interface AgentClock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves after `ms`; rejects with AbortedError as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export function abortReason(signal: AbortSignal): AbortedError {
  return signal.reason instanceof AbortedError
    ? signal.reason
    : new AbortedError("aborted", { cause: signal.reason });
}

/** Real time; `scale` > 1 makes waits shorter (a fleet simulator running faster than real time). */
export function systemClock(scale = 1): AgentClock {
  return {
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(abortReason(signal));
          return;
        }
        const onAbort = () => {
          clearTimeout(timer);
          reject(abortReason(signal as AbortSignal));
        };
        const timer = setTimeout(
          () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          },
          Math.max(0, ms / scale),
        );
        signal?.addEventListener("abort", onAbort, { once: true });
      }),
  };
}

/** Capped exponential backoff: initial, 2×, 4× … up to max (docs/iot-jobs.md §6.5). */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
}
