/**
 * How many cases each property runs. The defaults keep the whole fuzz suite well under 30 s in
 * `npm test`; KEEL_FUZZ_RUNS=N multiplies them by N for a longer run (`npm run fuzz`).
 */
export function fuzzRuns(base: number): number {
  const factor = Number(process.env.KEEL_FUZZ_RUNS ?? "1");
  return Number.isFinite(factor) && factor > 0 ? Math.ceil(base * factor) : base;
}
