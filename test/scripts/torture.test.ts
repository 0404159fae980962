/**
 * The short power-cut torture run of `npm test` (scripts/torture/harness.ts): cuts at random file system
 * operations of standalone installs, in both file system models; not one node may end bricked, wrong or
 * unable to resume. `npm run torture -- --cuts N` is the long run (docs/guarantees.md).
 */
import { describe, expect, it } from "vitest";
import { torture } from "../../scripts/torture/harness.ts";

const CUTS = 26;

describe("power-cut torture (short run)", () => {
  it.each([
    ["write-through", false],
    ["lossy: unsynced writes are lost", true],
  ])("%s: no bricked node, no wrong outcome, no failed resume", async (_name, lossy) => {
    const seed = Math.floor(Math.random() * 2 ** 31);
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
