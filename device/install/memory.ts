/**
 * Keeps the agent's memory flat while it streams gigabytes. A Buffer that arrived from the socket is
 * freed only when its small JS wrapper is garbage-collected, and V8 lets tens of MB of such external
 * memory pile up before it bothers; a minor GC (tens of microseconds) every few MiB streamed returns it
 * at once. Where the runtime does not allow exposing gc, this does nothing.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = (options?: { type?: "minor" | "major" }) => void;
let gc: Gc | null | undefined;

export function releaseDeadBuffers(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      const fn: unknown = runInNewContext("gc");
      gc = typeof fn === "function" ? (fn as Gc) : null;
    } catch {
      gc = null;
    }
  }
  gc?.({ type: "minor" });
}
