/** Semantic versions (semver 2.0.0 §2, §9–§11): parse and compare; build metadata is ignored. */
import { z } from "zod";

const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export const SemverSchema = z.string().max(128).regex(SEMVER, "must be a semantic version such as 1.2.3");

/**
 * Numeric identifiers are kept as digit strings and compared as BigInt: semver puts no bound on them, and
 * a Number loses precision above 2^53 (9007199254740993 would equal 9007199254740992).
 */
interface Parsed {
  core: [string, string, string];
  pre: string[];
}

function parse(v: string): Parsed {
  const m = SEMVER.exec(v);
  if (!m) throw new TypeError(`not a semantic version: ${JSON.stringify(v)}`);
  return { core: [m[1] ?? "0", m[2] ?? "0", m[3] ?? "0"], pre: m[4] ? m[4].split(".") : [] };
}

export function isSemver(v: string): boolean {
  return SEMVER.test(v);
}

/** -1, 0 or 1 as a sorts before, with or after b (semver §11). */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < 3; i++) {
    const order = compareNumeric(pa.core[i] ?? "0", pb.core[i] ?? "0");
    if (order !== 0) return order;
  }
  // A version without pre-release fields has higher precedence than one with them.
  if (pa.pre.length === 0 || pb.pre.length === 0) {
    if (pa.pre.length === pb.pre.length) return 0;
    return pa.pre.length === 0 ? 1 : -1;
  }
  const n = Math.max(pa.pre.length, pb.pre.length);
  for (let i = 0; i < n; i++) {
    const x = pa.pre[i];
    const y = pb.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn) return compareNumeric(x, y);
    if (xn !== yn) return xn ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** Two digit strings without leading zeros (the SEMVER pattern guarantees it), compared exactly. */
function compareNumeric(a: string, b: string): -1 | 0 | 1 {
  const x = BigInt(a);
  const y = BigInt(b);
  return x === y ? 0 : x < y ? -1 : 1;
}
