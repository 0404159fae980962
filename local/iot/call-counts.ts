/**
 * Which of the stand-in's counted control-plane calls (stats().apiCalls) belong to rollouts and
 * convergence rather than to registration: job operations and the bucket-group lookup that feeds a job's
 * targets. Registration's calls (things, certificates, policies, group membership) grow with the devices
 * registered by nature; these must not (bench/convergence.bench.ts, docs/fleets.md).
 */
const JOB_SIDE_OPERATIONS = new Set(["ListThingGroups"]);

export function isJobSideOperation(op: string): boolean {
  return /Job/.test(op) || JOB_SIDE_OPERATIONS.has(op);
}

/** The calls made between two stats() readings, by operation (only those made; `keep` filters them). */
export function callsBetween(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
  keep: (op: string) => boolean = () => true,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, n] of Object.entries(after)) {
    const d = n - (before[op] ?? 0);
    if (d > 0 && keep(op)) out[op] = d;
  }
  return out;
}

/** The job-side calls made between two stats() readings, by operation. */
export function jobSideCalls(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
): Record<string, number> {
  return callsBetween(before, after, isJobSideOperation);
}

/** All the calls in a by-operation count. */
export const totalCalls = (calls: Readonly<Record<string, number>>): number =>
  Object.values(calls).reduce((a, b) => a + b, 0);
