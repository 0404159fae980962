/**
 * Persistence of the stand-in: one JSON snapshot under dataDir, written atomically (temp file, fsync,
 * rename, fsync of the directory) so a crash leaves either the old or the new state, never half of one.
 * Writes are batched for a few milliseconds; flush() writes whatever is pending (stop() calls it).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { open, rename } from "node:fs/promises";
import { join } from "node:path";
import { describeError } from "../../core/errors.ts";
import { parseJsonText, parseWith } from "../../core/parse.ts";
import { IotStoreError } from "./errors.ts";
import { type PersistedState, PersistedStateSchema } from "./model.ts";

const FILE = "iot-state.json";
/** Batch window: many registry/engine changes in one tick become one write. */
const BATCH_MS = 15;
/**
 * Under sustained load (a 1,000-device rollout) the gap between writes grows with the cost of the last
 * write, so persisting takes at most about a fifth of the time; stop() still flushes everything.
 */
const WRITE_SHARE_FACTOR = 4;

export interface StateStore {
  /** The state saved last time, or undefined on first start. */
  load(): PersistedState | undefined;
  /** Marks the state dirty; `snapshot` is called when the batched write happens. */
  markDirty(): void;
  flush(): Promise<void>;
}

export function createStateStore(dataDir: string, snapshot: () => PersistedState): StateStore {
  const path = join(dataDir, FILE);
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();
  let dirty = false;
  let lastError: unknown;
  let lastWriteMs = 0;

  const writeNow = async (): Promise<void> => {
    if (!dirty) return;
    dirty = false;
    const started = performance.now();
    const text = JSON.stringify(snapshot());
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dir = await open(dataDir, "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    lastWriteMs = performance.now() - started;
  };
  const schedule = (): void => {
    // Writes are chained so two never interleave on the temp file.
    writing = writing.then(writeNow).catch((err: unknown) => {
      lastError = err;
    });
  };

  return {
    load() {
      mkdirSync(dataDir, { recursive: true });
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new IotStoreError(path, "cannot read the saved IoT state", { cause: err });
      }
      try {
        return parseWith(PersistedStateSchema, parseJsonText(text, "IoT state"), "IoT state");
      } catch (err) {
        throw new IotStoreError(path, `saved IoT state is unreadable: ${describeError(err)}`, {
          cause: err,
        });
      }
    },
    markDirty() {
      dirty = true;
      if (timer) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          schedule();
        },
        Math.max(BATCH_MS, WRITE_SHARE_FACTOR * lastWriteMs),
      );
    },
    async flush() {
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
      }
      schedule();
      await writing;
      if (lastError) {
        const err = lastError;
        lastError = undefined;
        throw new IotStoreError(path, "cannot write the IoT state", { cause: err });
      }
    },
  };
}
