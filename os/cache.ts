/**
 * Build steps cached by the hash of their inputs: each step's output is a directory named
 * `<step>-<sha256 of the inputs>` under the cache root. A step builds into a temp directory and renames it
 * into place, so an interrupted build never leaves a half-filled entry that a later run would trust.
 */
import { createHash } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";

export function inputHash(parts: ReadonlyArray<string | Buffer>): string {
  const h = createHash("sha256");
  for (const p of parts) {
    // Length-prefix each part so ["ab","c"] and ["a","bc"] differ.
    const b = typeof p === "string" ? Buffer.from(p, "utf8") : p;
    h.update(`${b.length}:`);
    h.update(b);
  }
  return h.digest("hex").slice(0, 32);
}

export interface CachedStep {
  dir: string;
  /** False when the step ran in this call. */
  hit: boolean;
}

export async function cachedStep(
  cacheRoot: string,
  step: string,
  parts: ReadonlyArray<string | Buffer>,
  produce: (dir: string) => Promise<void>,
): Promise<CachedStep> {
  const dir = join(cacheRoot, `${step}-${inputHash(parts)}`);
  try {
    if ((await stat(dir)).isDirectory()) return { dir, hit: true };
  } catch {
    // not built yet
  }
  await mkdir(cacheRoot, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await produce(tmp);
    await rename(tmp, dir).catch(async (err: unknown) => {
      // Another build (a parallel test file, the lead's warm-up) finished the same entry first: same
      // inputs, same bytes, so keep theirs.
      if (
        !(await stat(dir).then(
          (s) => s.isDirectory(),
          () => false,
        ))
      )
        throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { dir, hit: false };
}
