import { describe, expect, it } from "vitest";
import { IllegalTransitionError } from "../../device/errors.ts";
import {
  canTransition,
  EVENTS,
  PRE_ACTIVATION_STATES,
  STATES,
  TERMINAL_STATES,
  TRANSITIONS,
  transition,
} from "../../device/state-machine.ts";

describe("transition table", () => {
  it.each(TRANSITIONS.map(([from, event, to]) => ({ from, event, to })))(
    "$from --$event--> $to",
    ({ from, event, to }) => {
      expect(transition(from, event)).toBe(to);
    },
  );

  it("refuses every (state, event) pair the table does not list", () => {
    // Prepare
    const listed = new Set(TRANSITIONS.map(([f, e]) => `${f}|${e}`));
    let refused = 0;
    // Act / Assess
    for (const s of STATES) {
      for (const e of EVENTS) {
        if (listed.has(`${s}|${e}`)) continue;
        expect(canTransition(s, e)).toBe(false);
        expect(() => transition(s, e)).toThrow(IllegalTransitionError);
        refused++;
      }
    }
    expect(refused).toBe(STATES.length * EVENTS.length - TRANSITIONS.length);
  });

  it("has one row per (state, event)", () => {
    const keys = TRANSITIONS.map(([f, e]) => `${f}|${e}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("lets every terminal state report its way back to Idle and nothing else leave Idle but a job", () => {
    for (const s of TERMINAL_STATES) expect(transition(s, "reported")).toBe("Idle");
    expect(TRANSITIONS.filter(([f]) => f === "Idle").map(([, e]) => e)).toEqual(["job"]);
  });

  it("abandons on cancel only before activation", () => {
    for (const s of STATES) {
      expect(canTransition(s, "cancel")).toBe(PRE_ACTIVATION_STATES.has(s));
    }
  });

  it("reaches every state from Idle", () => {
    const seen = new Set<string>(["Idle"]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [f, , t] of TRANSITIONS) {
        if (seen.has(f) && !seen.has(t)) {
          seen.add(t);
          grew = true;
        }
      }
    }
    expect([...seen].sort()).toEqual([...STATES].sort());
  });
});
