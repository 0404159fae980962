/**
 * The transition table, checked against chains and refusals written out by hand: nothing here is derived
 * from TRANSITIONS, so a changed row shows up as a failing test.
 */
import { describe, expect, it } from "vitest";
import { IllegalTransitionError } from "../../device/errors.ts";
import {
  type AgentEvent,
  canTransition,
  isFailedTrial,
  type State,
  TRANSITIONS,
  transition,
} from "../../device/state-machine.ts";

interface Chain {
  name: string;
  from: State;
  events: AgentEvent[];
  states: State[];
}

const CHAINS: Chain[] = [
  {
    name: "a healthy install",
    from: "Idle",
    events: ["job", "accepted", "downloaded", "verified", "activated", "booted-trial", "healthy", "reported"],
    states: [
      "Validating",
      "Downloading",
      "Verifying",
      "Activating",
      "Rebooting",
      "HealthChecking",
      "Committed",
      "Idle",
    ],
  },
  {
    name: "health fails on the new slot",
    from: "Idle",
    events: [
      "job",
      "accepted",
      "downloaded",
      "verified",
      "activated",
      "booted-trial",
      "unhealthy",
      "booted-old",
      "reported",
    ],
    states: [
      "Validating",
      "Downloading",
      "Verifying",
      "Activating",
      "Rebooting",
      "HealthChecking",
      "RollingBack",
      "RolledBack",
      "Idle",
    ],
  },
  {
    name: "the firmware falls back before the agent runs on the new slot",
    from: "Rebooting",
    events: ["booted-old", "reported"],
    states: ["RolledBack", "Idle"],
  },
  {
    name: "the firmware falls back during the health checks",
    from: "HealthChecking",
    events: ["booted-old", "reported"],
    states: ["RolledBack", "Idle"],
  },
  {
    name: "a pre-reboot hook fails",
    from: "Rebooting",
    events: ["fail", "booted-old", "reported"],
    states: ["RollingBack", "RolledBack", "Idle"],
  },
  {
    name: "the operator rolls back a pending trial",
    from: "Rebooting",
    events: ["operator-rollback", "booted-old", "reported"],
    states: ["RollingBack", "RolledBack", "Idle"],
  },
  {
    name: "the operator rolls back during the health checks",
    from: "HealthChecking",
    events: ["operator-rollback", "booted-old", "reported"],
    states: ["RollingBack", "RolledBack", "Idle"],
  },
  {
    name: "the release already runs here",
    from: "Idle",
    events: ["job", "already", "reported"],
    states: ["Validating", "Committed", "Idle"],
  },
  {
    name: "a refused job",
    from: "Idle",
    events: ["job", "refused", "reported"],
    states: ["Validating", "Rejected", "Idle"],
  },
  {
    name: "unreachable manifest",
    from: "Idle",
    events: ["job", "fail", "reported"],
    states: ["Validating", "Failed", "Idle"],
  },
  {
    name: "download fails",
    from: "Downloading",
    events: ["fail", "reported"],
    states: ["Failed", "Idle"],
  },
  {
    name: "read-back fails",
    from: "Verifying",
    events: ["fail", "reported"],
    states: ["Failed", "Idle"],
  },
  {
    name: "cancelled while validating",
    from: "Validating",
    events: ["cancel", "reported"],
    states: ["Cancelled", "Idle"],
  },
  {
    name: "cancelled while downloading",
    from: "Downloading",
    events: ["cancel", "reported"],
    states: ["Cancelled", "Idle"],
  },
  {
    name: "cancelled while verifying",
    from: "Verifying",
    events: ["cancel", "reported"],
    states: ["Cancelled", "Idle"],
  },
  { name: "crash loop while validating", from: "Validating", events: ["loop"], states: ["Failed"] },
  { name: "crash loop while downloading", from: "Downloading", events: ["loop"], states: ["Failed"] },
  { name: "crash loop while verifying", from: "Verifying", events: ["loop"], states: ["Failed"] },
  {
    name: "the reboot never happens",
    from: "Rebooting",
    events: ["loop", "booted-old"],
    states: ["RollingBack", "RolledBack"],
  },
  {
    name: "the new slot crashes the agent",
    from: "HealthChecking",
    events: ["loop"],
    states: ["RollingBack"],
  },
  { name: "a failed job reports", from: "Failed", events: ["reported"], states: ["Idle"] },
  {
    name: "a cut standalone install abandoned while validating",
    from: "Validating",
    events: ["abandon", "reported"],
    states: ["Cancelled", "Idle"],
  },
  { name: "abandoned while downloading", from: "Downloading", events: ["abandon"], states: ["Cancelled"] },
  { name: "abandoned while verifying", from: "Verifying", events: ["abandon"], states: ["Cancelled"] },
  { name: "abandoned while activating", from: "Activating", events: ["abandon"], states: ["Cancelled"] },
  {
    name: "a cut after arming the trial, and the firmware fell back: never armed again",
    from: "Activating",
    events: ["booted-old", "reported"],
    states: ["RolledBack", "Idle"],
  },
  {
    name: "a healthy install on a Kubernetes node",
    from: "Idle",
    events: [
      "job",
      "accepted",
      "downloaded",
      "verified-in-cluster",
      "slot-taken",
      "drained",
      "activated",
      "booted-trial",
      "healthy",
      "reported",
    ],
    states: [
      "Validating",
      "Downloading",
      "Verifying",
      "AcquiringRebootSlot",
      "Draining",
      "Activating",
      "Rebooting",
      "HealthChecking",
      "Committed",
      "Idle",
    ],
  },
  { name: "the drain times out", from: "Draining", events: ["drain-timeout"], states: ["Failed"] },
  { name: "the drain fails", from: "Draining", events: ["fail"], states: ["Failed"] },
  { name: "cancelled while draining", from: "Draining", events: ["cancel"], states: ["Cancelled"] },
  { name: "crash loop while draining", from: "Draining", events: ["loop"], states: ["Failed"] },
  { name: "the cluster cannot be asked", from: "AcquiringRebootSlot", events: ["fail"], states: ["Failed"] },
  {
    name: "cancelled while waiting for a reboot slot",
    from: "AcquiringRebootSlot",
    events: ["cancel", "reported"],
    states: ["Cancelled", "Idle"],
  },
  {
    name: "crash loop while waiting for a slot",
    from: "AcquiringRebootSlot",
    events: ["loop"],
    states: ["Failed"],
  },
  {
    name: "download and reboot each wait for a maintenance window",
    from: "Idle",
    events: [
      "job",
      "outside-window",
      "window-open",
      "downloaded",
      "outside-window",
      "window-open",
      "activated",
    ],
    states: [
      "Validating",
      "WaitingToDownload",
      "Downloading",
      "Verifying",
      "WaitingToReboot",
      "Activating",
      "Rebooting",
    ],
  },
  {
    name: "a cluster node takes its reboot slot once the window opens",
    from: "Verifying",
    events: ["outside-window", "window-open-in-cluster", "slot-taken"],
    states: ["WaitingToReboot", "AcquiringRebootSlot", "Draining"],
  },
  {
    name: "cancelled while waiting to download",
    from: "WaitingToDownload",
    events: ["cancel", "reported"],
    states: ["Cancelled", "Idle"],
  },
  {
    name: "cancelled while waiting to reboot",
    from: "WaitingToReboot",
    events: ["cancel"],
    states: ["Cancelled"],
  },
];

/** Pairs the table must refuse: each would be a bug or a message that makes no sense in that state. */
const REFUSED: Array<[State, AgentEvent]> = [
  ["Idle", "accepted"],
  ["Idle", "cancel"],
  ["Idle", "reported"],
  ["Idle", "operator-rollback"],
  ["Validating", "job"],
  ["Validating", "downloaded"],
  ["Downloading", "accepted"],
  ["Downloading", "operator-rollback"],
  ["Verifying", "activated"],
  ["Rebooting", "abandon"], // after activation the trial is the daemon's, or `rollback`'s
  ["HealthChecking", "abandon"],
  ["Idle", "abandon"],
  ["Verifying", "drained"], // a drain never skips the reboot slot
  ["AcquiringRebootSlot", "activated"], // nor does activation skip the drain
  ["AcquiringRebootSlot", "drained"],
  ["Draining", "slot-taken"],
  ["Draining", "booted-old"],
  ["Activating", "cancel"], // from activation on a cancel finishes the boot decision
  ["Activating", "fail"],
  ["Activating", "operator-rollback"],
  ["Rebooting", "cancel"],
  ["Rebooting", "healthy"],
  ["HealthChecking", "cancel"],
  ["HealthChecking", "fail"],
  ["RollingBack", "cancel"],
  ["RollingBack", "healthy"],
  ["RollingBack", "operator-rollback"],
  ["Committed", "job"],
  ["Committed", "operator-rollback"],
  ["RolledBack", "booted-old"],
  ["Cancelled", "cancel"],
  ["WaitingToDownload", "loop"], // waiting touches nothing: restarts while waiting are no crash loop
  ["WaitingToReboot", "loop"],
  ["WaitingToDownload", "downloaded"], // the wait never skips the download
  ["WaitingToReboot", "activated"], // nor the activation
  ["Downloading", "outside-window"], // a download under way finishes; only its start waits
];

describe("transition table", () => {
  it.each(CHAINS)("$name", ({ from, events, states }) => {
    let s = from;
    const walked: State[] = [];
    for (const e of events) {
      s = transition(s, e);
      walked.push(s);
    }
    expect(walked).toEqual(states);
  });

  it.each(REFUSED.map(([state, event]) => ({ state, event })))(
    "refuses $event in $state with IllegalTransitionError",
    ({ state, event }) => {
      expect(canTransition(state, event)).toBe(false);
      expect(() => transition(state, event)).toThrow(IllegalTransitionError);
      expect(() => transition(state, event)).toThrow(`event ${event} is not allowed in state ${state}`);
    },
  );

  it("has exactly the rows the chains above walk, one per (state, event)", () => {
    const walked = new Set<string>();
    for (const c of CHAINS) {
      let s = c.from;
      for (const e of c.events) {
        walked.add(`${s}|${e}`);
        s = transition(s, e);
      }
    }
    const rows = TRANSITIONS.map(([f, e]) => `${f}|${e}`);
    expect(new Set(rows).size).toBe(rows.length);
    expect([...walked].sort()).toEqual([...rows].sort());
  });

  it("judges a release only on a trial that really failed, never on an operator's rollback", () => {
    expect(isFailedTrial("HealthChecking", "unhealthy")).toBe(true);
    expect(isFailedTrial("Activating", "booted-old")).toBe(true);
    expect(isFailedTrial("Downloading", "abandon")).toBe(false);
    expect(isFailedTrial("HealthChecking", "booted-old")).toBe(true);
    expect(isFailedTrial("Rebooting", "booted-old")).toBe(true);
    expect(isFailedTrial("Rebooting", "loop")).toBe(true);
    expect(isFailedTrial("HealthChecking", "loop")).toBe(true);
    expect(isFailedTrial("Rebooting", "operator-rollback")).toBe(false);
    expect(isFailedTrial("HealthChecking", "operator-rollback")).toBe(false);
    expect(isFailedTrial("Rebooting", "fail")).toBe(false);
    expect(isFailedTrial("RollingBack", "booted-old")).toBe(false);
  });
});
