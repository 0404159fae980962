/** The local clock: scaled time for `--time-scale`, and the manual clock the conformance suite uses. */
import { describe, expect, test } from "vitest";
import { createClock, createManualClock } from "../../local/clock.ts";

describe("createClock", () => {
  test("a scaled timer fires once scaled time has reached its due time", async () => {
    // Prepare: one scaled minute passes in 10 real ms.
    const clock = createClock({ timeScale: 6000 });
    const due = clock.now() + 60_000;
    // Act
    const firedAt = await new Promise<number>((resolve) =>
      clock.setTimeout(() => resolve(clock.now()), 60_000),
    );
    // Assess
    expect(firedAt).toBeGreaterThanOrEqual(due);
  });

  test("a canceled timer never fires", async () => {
    const clock = createClock({ timeScale: 6000 });
    let fired = false;
    clock
      .setTimeout(() => {
        fired = true;
      }, 1_000)
      .cancel();
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 60_000));
    expect(fired).toBe(false);
  });

  test("startMs sets the scaled time the clock starts from", () => {
    const clock = createClock({ timeScale: 1, startMs: Date.UTC(2030, 0, 1) });
    expect(clock.now()).toBeGreaterThanOrEqual(Date.UTC(2030, 0, 1));
    expect(clock.now()).toBeLessThan(Date.UTC(2030, 0, 2));
  });

  test("refuses a time scale that is not a positive number", () => {
    expect(() => createClock({ timeScale: 0 })).toThrow(/positive/);
    expect(() => createClock({ timeScale: Number.NaN })).toThrow(/positive/);
  });
});

describe("createManualClock", () => {
  test("advance fires due timers in due order and moves now()", () => {
    const clock = createManualClock(1_000);
    const order: string[] = [];
    clock.setTimeout(() => order.push("b"), 200);
    clock.setTimeout(() => order.push("a"), 100);
    clock.setTimeout(() => order.push("c"), 300);
    clock.advance(250);
    expect(order).toEqual(["a", "b"]);
    expect(clock.now()).toBe(1_250);
    expect(clock.pending()).toBe(1);
  });

  test("timers set by a firing timer fire in the same advance when due", () => {
    const clock = createManualClock(0);
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 50);
    }, 50);
    clock.advance(100);
    expect(seen).toEqual([50, 100]);
  });
});
