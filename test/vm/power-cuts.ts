/**
 * Power cuts on a real KeelOS node (docs/guarantees.md#power-cuts-on-a-real-node): QEMU is killed
 * host-side (SIGKILL, no guest shutdown) at seeded random moments while the agent downloads and writes
 * slot B, while it activates it, and while B boots on trial; then powered on again, until the job ends.
 * The disk is a qcow2 overlay with cache=writeback: what the guest did not flush (its page cache, QEMU's
 * unflushed qcow2 metadata) is lost, what it flushed is kept. Each round is a fresh node (its own thing,
 * fleet and disk) updating 1.0.0 → the healthy release, so every round starts from the same state.
 * Used by test/vm/node.test.ts (a few cuts per CI run) and `npm run torture:vm` (as many as asked).
 */

import type { Boot } from "../../os/qemu.ts";
import { prng } from "../../scripts/torture/harness.ts";
import { BOOT_TIMEOUT_MS, bootedFrom, guestView, machine, reach, type VmCloud } from "./helpers.ts";

export type Phase = "download" | "activation" | "trial";
export const PHASES: readonly Phase[] = ["download", "activation", "trial"];

/** What shows that a boot has reached a phase: the agent's own transition logs, or the trial slot's initramfs. */
const PHASE_MARK: Record<Phase, RegExp> = {
  download: /"to":"Downloading"|"msg":"agent starting".*"state":"Downloading"/,
  activation: /"to":"Activating"/,
  trial: /KEEL-INITRAMFS: root keel-b/,
};
/** How long after a phase begins a cut may land (uniformly): past it, the cut lands in a later step. */
const WINDOW_MS: Record<Phase, number> = { download: 20_000, activation: 3_000, trial: 60_000 };
/** A round that needs more power-ons than this has not converged: counted as a wrong outcome. */
const MAX_POWER_ONS = 12;

export interface CutOptions {
  cloud: VmCloud;
  /** The healthy release every round installs (published at a counter above the factory's). */
  version: string;
  cuts: number;
  seed: number;
  /** The most cuts in one round per phase; default: 2 during download, 1 during activation, 1 in the trial. */
  perRound?: Record<Phase, number>;
  log?: (line: string) => void;
}

export interface CutTotals {
  rounds: number;
  cuts: number;
  byPhase: Record<Phase, number>;
  /** A power-on (not cut) that never reached a booted system. */
  bricked: number;
  /** A job that ended other than the node shows, a rollout that disagrees, or a round that never ended. */
  wrong: number;
  /** Download cuts after which the next boot went on from the bytes already written. */
  resumed: number;
  /** Download cuts after which the download started over. */
  redone: number;
  succeeded: number;
  rolledBack: number;
  failures: string[];
}

type Seen =
  | { kind: "phase"; phase: Phase }
  | { kind: "rescue" }
  | { kind: "exit" }
  | { kind: "terminal"; job: { status: string; details: Record<string, string> } }
  | { kind: "timeout" };

const never = new Promise<never>(() => undefined);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The agent's state when the power went: its last transition (or the state it started in) this boot. */
function agentState(text: string): string {
  const all = [...text.matchAll(/"to":"(\w+)"|"msg":"agent starting".*?"state":"(\w+)"/g)];
  const last = all[all.length - 1];
  return last ? (last[1] ?? last[2] ?? "?") : "not started";
}

/** Waits for whichever comes first in this boot: a phase still to cut, QEMU exiting, or the job ending. */
async function watch(
  b: Boot,
  phases: Phase[],
  terminal: () => Promise<{ status: string; details: Record<string, string> } | undefined>,
): Promise<Seen> {
  let done = false;
  const marks = phases.map((phase) =>
    b.waitFor(PHASE_MARK[phase], 2 * BOOT_TIMEOUT_MS).then(
      (): Seen => ({ kind: "phase", phase }),
      () => never,
    ),
  );
  const poll = (async (): Promise<Seen> => {
    const deadline = Date.now() + 2 * BOOT_TIMEOUT_MS;
    while (!done && Date.now() < deadline) {
      const job = await terminal();
      if (job) return { kind: "terminal", job };
      await sleep(2000);
    }
    return done ? never : { kind: "timeout" };
  })();
  const exit = b.exited.then((): Seen => ({ kind: "exit" }));
  // GRUB found no good slot and booted the rescue entry: the promise "always a good slot" is broken.
  const rescue = b.waitFor(/KEEL-MARK booted .*keel\.rescue=1/, 2 * BOOT_TIMEOUT_MS).then(
    (): Seen => ({ kind: "rescue" }),
    () => never,
  );
  try {
    return await Promise.race([rescue, ...marks, exit, poll]);
  } finally {
    done = true;
  }
}

/** One fresh node through one update with up to `want` cuts; adds what happened to `t`. */
async function round(o: CutOptions, index: number, rng: () => number, want: number, t: CutTotals) {
  const say = o.log ?? ((l: string) => console.log(l));
  const tag = `${o.seed}-${index}`;
  const thing = `vm-cut-${tag}`;
  const fleet = `vmcut-${tag}`;
  const node = await o.cloud.node(fleet, thing);
  const m = await machine(node.disk, "bios", "writeback");
  const budget = { ...(o.perRound ?? { download: 2, activation: 1, trial: 1 }) };
  let keepLog = false;
  const fail = (kind: "bricked" | "wrong", why: string) => {
    keepLog = true;
    t[kind] += 1;
    t.failures.push(`${kind}: round ${tag} (seed ${o.seed}): ${why}; serial log ${m.serialLog}`);
  };
  let left = want;
  let trialCut = false;
  let classify = false; // the boot after a download cut tells whether the download resumed or restarted
  let b = await m.powerOn();
  try {
    await reach(b, /booted slot is healthy; marked good.*"slot":"A"/, `${thing}: factory slot A committed`);
    const { rolloutId, jobId } = await o.cloud.rollout(o.version, fleet);
    for (let powerOns = 1; ; powerOns++) {
      const phases = left > 0 ? PHASES.filter((p) => budget[p] > 0) : [];
      const seen = await watch(b, phases, () => o.cloud.terminalJob(jobId, thing));
      const text = b.output();
      if (classify && /"msg":"agent starting"/.test(text)) {
        classify = false;
        // Started over: the agent went through Downloading from offset 0 again instead of resuming.
        const restarted = /"to":"Downloading"/.test(text) && !/"msg":"resuming download"/.test(text);
        if (restarted) t.redone += 1;
        else t.resumed += 1;
      }
      if (seen.kind === "rescue") {
        fail("bricked", "GRUB found no good slot and booted the rescue slot");
        return;
      }
      if (seen.kind === "terminal") {
        await checkTruth(o, b, seen.job, rolloutId, trialCut, fail);
        if (seen.job.status === "SUCCEEDED") t.succeeded += 1;
        else t.rolledBack += 1;
        return;
      }
      if (seen.kind === "timeout") {
        if (/KEEL-MARK booted/.test(text))
          fail("wrong", `the job did not end (agent state ${agentState(text)})`);
        else fail("bricked", "a power-on never reached a booted system and never reset");
        return;
      }
      if (seen.kind === "phase") {
        const delay = Math.round(rng() * WINDOW_MS[seen.phase]);
        budget[seen.phase] -= 1;
        const reset = await Promise.race([sleep(delay).then(() => false), b.exited.then(() => true)]);
        if (!reset) {
          const state = agentState(b.output());
          const at = ((Date.now() - b.startedAt) / 1000).toFixed(1);
          b.kill();
          await b.exited;
          left -= 1;
          t.cuts += 1;
          t.byPhase[seen.phase] += 1;
          if (seen.phase === "trial") trialCut = true;
          if (seen.phase === "download") classify = true;
          say(
            `cut ${t.cuts}: ${thing} in ${seen.phase} +${delay} ms (agent ${state}, ${at} s into the boot)`,
          );
        }
      } else if (!/KEEL-MARK booted/.test(text)) {
        // QEMU exited on its own (a reset) before the system came up, and no cut caused it.
        fail("bricked", "a power-on reset before the system came up");
        return;
      }
      await b.exited;
      if (powerOns >= MAX_POWER_ONS) {
        fail("wrong", `no end after ${MAX_POWER_ONS} power-ons (agent state ${agentState(b.output())})`);
        return;
      }
      b = await m.powerOn();
    }
  } finally {
    b.kill();
    await b.exited;
    // A failed round keeps its serial log (and overlay) for a look; others free their disk space.
    if (!keepLog) await m.dispose();
  }
}

/**
 * The truth: a SUCCEEDED job means the node runs the release from B, committed, and the rollout
 * SUCCEEDED; a FAILED one means it rolled back to A (1.0.0, committed), the rollout is ABORTED, and a
 * cut hit the trial boot (the release is healthy: only a cut trial may fail it). Anything else is wrong.
 */
async function checkTruth(
  o: CutOptions,
  b: Boot,
  job: { status: string; details: Record<string, string> },
  rolloutId: string,
  trialCut: boolean,
  fail: (kind: "wrong", why: string) => void,
): Promise<void> {
  const booted = bootedFrom(await b.waitFor(/KEEL-MARK booted .*\n/, BOOT_TIMEOUT_MS));
  // The job may have ended in an earlier boot: on this one GRUB has spent the slot's try again, and the
  // agent re-marks it good (or commits, or finishes the rollback) only once it runs. Judge after that.
  await b.waitFor(/booted slot is healthy; marked good|"to":"Idle"/, BOOT_TIMEOUT_MS);
  const { env, status } = await guestView(b);
  const rollout = await o.cloud.rolloutEnd(rolloutId);
  const ok = job.status === "SUCCEEDED";
  const expect = ok
    ? { slot: "B", version: o.version, rollout: "SUCCEEDED" }
    : { slot: "A", version: "1.0.0", rollout: "ABORTED" };
  const problems: string[] = [];
  if (!ok && !(job.status === "FAILED" && job.details.rolledBack === "true"))
    problems.push(`job ${job.status} ${JSON.stringify(job.details)}`);
  if (!ok && !trialCut) problems.push("a healthy release rolled back without a cut in its trial boot");
  if (booted.slot !== expect.slot || booted.version !== expect.version)
    problems.push(`node booted ${booted.slot} ${booted.version}`);
  if (status.booted !== expect.slot) problems.push(`keel-agent status says booted ${status.booted}`);
  if (env[`${expect.slot}_OK`] !== "1" || env[`${expect.slot}_TRY`] !== "0")
    problems.push(`slot ${expect.slot} not committed in grubenv ${JSON.stringify(env)}`);
  if (rollout !== expect.rollout) problems.push(`rollout ${rollout}`);
  if (problems.length > 0) fail("wrong", `job ${job.status} but ${problems.join("; ")}`);
}

/** Rounds of fresh nodes until at least `o.cuts` cuts have landed. */
export async function powerCuts(o: CutOptions): Promise<CutTotals> {
  const rng = prng(o.seed);
  const t: CutTotals = {
    rounds: 0,
    cuts: 0,
    byPhase: { download: 0, activation: 0, trial: 0 },
    bricked: 0,
    wrong: 0,
    resumed: 0,
    redone: 0,
    succeeded: 0,
    rolledBack: 0,
    failures: [],
  };
  const most = Object.values(o.perRound ?? { download: 2, activation: 1, trial: 1 }).reduce(
    (a, n) => a + n,
    0,
  );
  while (t.cuts < o.cuts) {
    const before = t.cuts;
    try {
      await round(o, t.rounds, rng, Math.min(most, o.cuts - t.cuts), t);
    } catch (err) {
      // A round that could not even be checked (a boot or a shell that never answered) is a failure too.
      t.wrong += 1;
      t.failures.push(
        `wrong: round ${o.seed}-${t.rounds} (seed ${o.seed}) stopped: ${(err as Error).message}`,
      );
    }
    t.rounds += 1;
    // A round that could not cut at all (every boot ended first) would loop forever.
    if (t.cuts === before && t.rounds > o.cuts) break;
  }
  return t;
}
