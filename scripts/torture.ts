/**
 * `npm run torture -- --cuts N [--lossy] [--seed S]`: power cuts at random moments of standalone installs
 * (scripts/torture/harness.ts; docs/guarantees.md). Prints cuts / bricked / wrong outcomes / failed
 * resumes, and the rate, for both file system models unless --lossy or --write-through picks one.
 * Exits 1 if any node was bricked, ended wrong, or could not resume.
 */
import { parseArgs } from "node:util";
import { type TortureTotals, torture } from "./torture/harness.ts";

const { values } = parseArgs({
  options: {
    cuts: { type: "string", default: "100" },
    seed: { type: "string" },
    replay: { type: "string" },
    lossy: { type: "boolean", default: false },
    "write-through": { type: "boolean", default: false },
  },
});
const cuts = Number(values.cuts);
if (!Number.isInteger(cuts) || cuts < 1) {
  console.error(`torture: --cuts must be a positive whole number, got ${values.cuts}`);
  process.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`torture: --seed must be a whole number, got ${values.seed}`);
  process.exit(2);
}
const models = values.lossy ? [true] : values["write-through"] ? [false] : [false, true];

const rows: Array<{ model: string; t: TortureTotals; seconds: number }> = [];
for (const lossy of models) {
  const model = lossy ? "lossy (unsynced writes lost)" : "write-through";
  const start = performance.now();
  let lastCuts = 0;
  const t = await torture({
    cuts: Math.ceil(cuts / models.length),
    lossy,
    seed,
    ...(values.replay !== undefined ? { replay: Number(values.replay) } : {}),
    onProgress: (p) => {
      // A live line on a terminal; otherwise one line per 100 cuts (logs, CI).
      if (process.stderr.isTTY) process.stderr.write(`\r${model}: ${p.cuts} cuts, ${p.installs} installs`);
      else if (Math.floor(p.cuts / 100) > Math.floor(lastCuts / 100)) {
        const bad = p.bricked + p.wrong + p.failedResumes;
        process.stderr.write(
          `${model}: ${p.cuts} cuts, ${p.installs} installs, ${bad} failures, ${((performance.now() - start) / 1000).toFixed(0)} s\n`,
        );
      }
      lastCuts = p.cuts;
    },
  });
  if (process.stderr.isTTY) process.stderr.write("\n");
  rows.push({ model, t, seconds: (performance.now() - start) / 1000 });
}
console.log(`seed ${seed}`);
console.log("model                          cuts  second  installs  bricked  wrong  failed-resumes  cuts/s");
for (const { model, t, seconds } of rows) {
  console.log(
    `${model.padEnd(30)} ${String(t.cuts).padStart(5)} ${String(t.secondCuts).padStart(7)} ${String(t.installs).padStart(9)} ${String(t.bricked).padStart(8)} ${String(t.wrong).padStart(6)} ${String(t.failedResumes).padStart(15)} ${(t.cuts / seconds).toFixed(1).padStart(7)}`,
  );
  for (const f of t.failures.slice(0, 20)) console.log(`  ${f}`);
}
if (rows.some(({ t }) => t.bricked + t.wrong + t.failedResumes > 0)) process.exit(1);
