/**
 * The short power-cut torture run of `npm test` (scripts/torture/harness.ts): cuts at random file system
 * operations of standalone installs, in both file system models; not one node may end bricked, wrong or
 * unable to resume. `npm run torture -- --cuts N` is the long run (docs/guarantees.md).
 */
import { describe, expect, it } from "vitest";
import { torture } from "../../scripts/torture/harness.ts";

const CUTS = 26;

describe("power-cut torture (short run)", () => {
  // Fixed seeds: the suite must not flake on the rare corner docs/guarantees.md lists as not promised;
  // random seeds are the long run's (`npm run torture`).
  it.each([
    ["write-through", false, 3],
    ["lossy: unsynced writes are lost", true, 2],
  ])("%s: no bricked node, no wrong outcome, no failed resume", async (_name, lossy, seed) => {
    const t = await torture({ cuts: CUTS, lossy, seed });
    // The seed and each failure's own seed are in the message: `npm run torture -- --replay S` replays one.
    expect({
      seed,
      bricked: t.bricked,
      wrong: t.wrong,
      failedResumes: t.failedResumes,
      failures: t.failures,
    }).toEqual({
      seed,
      bricked: 0,
      wrong: 0,
      failedResumes: 0,
      failures: [],
    });
    expect(t.cuts).toBe(CUTS);
    expect(t.installs).toBeGreaterThan(0);
  });
});
