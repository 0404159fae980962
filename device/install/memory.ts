/**
 * Keeps the agent's memory flat while it streams gigabytes (issue 4: peak RSS < 100 MB for any image
 * size). Node's HTTP client hands over every socket read (≤ 64 KiB) in a freshly allocated Buffer, and
 * the fs stream of a local image one per 1 MiB read; the pipeline copies each into its block and drops
 * it at once. The bytes live outside the V8 heap, behind a wrapper of ~100 bytes, so neither a full
 * young generation (the wrappers hardly fill it) nor external-memory pressure (V8 waits for tens of MB)
 * frees them soon: measured, that backlog was 25–40 MB of the agent's RSS. A minor GC (scavenge: its
 * cost follows the few live young objects, tens of microseconds) every MiB streamed returns it at once.
 *
 * Getting `gc` without starting node with --expose-gc: the flag is read only when a context is created,
 * so it is switched on for exactly one throwaway vm context and switched off again before anything else
 * runs; the process's own global never gains a `gc`. Where the runtime refuses, this does nothing
 * (memory is then only bounded by V8's own heuristics, still flat, just higher).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = (options?: { type?: "minor" | "major" }) => void;
let gc: Gc | null | undefined;

function obtainGc(): Gc | null {
  try {
    setFlagsFromString("--expose-gc");
    try {
      const fn: unknown = runInNewContext("gc");
      return typeof fn === "function" ? (fn as Gc) : null;
    } finally {
      setFlagsFromString("--no-expose-gc");
    }
  } catch {
    return null;
  }
}

export function releaseDeadBuffers(): void {
  if (gc === undefined) gc = obtainGc();
  gc?.({ type: "minor" });
}
