/**
 * `npm run torture:vm -- --cuts N [--seed S]`: power cuts on real KeelOS nodes under QEMU (one at a
 * time): SIGKILL at seeded random moments during download/write, activation and the trial boot, with a
 * disk that loses what the guest did not flush (test/vm/power-cuts.ts; docs/guarantees.md). Each round
 * is a fresh node updating 1.0.0 → 2.0.0 through a real rollout; rounds go on until N cuts have landed.
 * Prints cuts (by phase), bricked, wrong outcomes, resumed and redone downloads, and exits 1 if any node
 * was bricked or any job ended wrong. Builds are cached (.keel/os-cache), so only a first run pays for them.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startVmCloud } from "../test/vm/helpers.ts";
import { type Phase, powerCuts } from "../test/vm/power-cuts.ts";

const { values } = parseArgs({
  options: {
    cuts: { type: "string", default: "10" },
    seed: { type: "string" },
  },
});
const cuts = Number(values.cuts);
if (!Number.isInteger(cuts) || cuts < 1) {
  console.error(`torture:vm: --cuts must be a positive whole number, got ${values.cuts}`);
  process.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) {
  console.error(`torture:vm: --seed must be a whole number, got ${values.seed}`);
  process.exit(2);
}
console.log(`seed ${seed}`);

const tmp = await mkdtemp(join(tmpdir(), "keel-torture-vm-"));
const started = performance.now();
let failed = true;
try {
  const cloud = await startVmCloud(tmp);
  try {
    await cloud.release("2.0.0", 10);
    const t = await powerCuts({
      cloud,
      version: "2.0.0",
      cuts,
      seed,
      perRound: { download: 2, activation: 1, trial: 1 },
      log: (l) => console.error(l),
    });
    const seconds = (performance.now() - started) / 1000;
    const phase = (p: Phase) => String(t.byPhase[p]).padStart(5);
    console.log(`seed ${seed}`);
    console.log(
      "rounds  cuts  download  activation  trial  bricked  wrong  resumed  redone  succeeded  rolled-back  s/cut",
    );
    console.log(
      `${String(t.rounds).padStart(6)} ${String(t.cuts).padStart(5)} ${phase("download").padStart(9)} ${phase("activation").padStart(11)} ${phase("trial").padStart(6)} ${String(t.bricked).padStart(8)} ${String(t.wrong).padStart(6)} ${String(t.resumed).padStart(8)} ${String(t.redone).padStart(7)} ${String(t.succeeded).padStart(10)} ${String(t.rolledBack).padStart(12)} ${(seconds / Math.max(1, t.cuts)).toFixed(0).padStart(6)}`,
    );
    for (const f of t.failures.slice(0, 20)) console.log(`  ${f}`);
    failed = t.bricked + t.wrong > 0;
  } finally {
    await cloud.stop();
  }
} finally {
  // A failed run keeps the node disks its kept overlays are based on, for fsck.vfat / debugfs.
  if (failed) console.log(`disks kept in ${tmp}`);
  else await rm(tmp, { recursive: true, force: true });
}
// Pending serial watchers hold timers; the verdict is in.
process.exit(failed ? 1 : 0);
