/**
 * fast-check generators for the fuzz suite: a valid document mutated the way an attacker or a broken
 * producer would (a field replaced by any JSON value, removed, an unknown member added, `__proto__` and
 * other special names included), then its text mutated (a member repeated, truncated, a byte flipped,
 * bytes that are not UTF-8), plus arbitrary JSON and arbitrary bytes.
 */
import fc from "fast-check";
import { expect } from "vitest";
import { KeelError } from "../../core/errors.ts";

type Json = unknown;
type Path = Array<string | number>;

/** Every path to a value inside `v` (the root included), so a mutation can reach any depth. */
function paths(v: Json, at: Path = []): Path[] {
  const out: Path[] = [at];
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]));
  } else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  }
  return out;
}

/** A member set as an own property whatever its name (`__proto__` included). */
function put(obj: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

type Op = { kind: "replace"; value: Json } | { kind: "delete" } | { kind: "add"; key: string; value: Json };

/** A copy of `base` with `op` applied at `path` (arrays and objects copied along the way). */
function apply(base: Json, path: Path, op: Op): Json {
  if (path.length === 0) {
    if (op.kind === "replace") return op.value;
    if (op.kind === "add" && typeof base === "object" && base !== null && !Array.isArray(base)) {
      const copy = { ...(base as Record<string, Json>) };
      put(copy, op.key, op.value);
      return copy;
    }
    return op.kind === "delete" ? undefined : base;
  }
  const [head, ...rest] = path;
  if (Array.isArray(base)) {
    const copy = [...base];
    const next = apply(copy[head as number], rest, op);
    if (next === undefined) copy.splice(head as number, 1);
    else copy[head as number] = next;
    return copy;
  }
  const copy = { ...(base as Record<string, Json>) };
  const next = apply(copy[head as string], rest, op);
  if (next === undefined) delete copy[head as string];
  else put(copy, head as string, next);
  return copy;
}

export const specialKey = fc.constantFrom("__proto__", "constructor", "toString", "prototype", "extra", "");

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ kind: fc.constant("delete" as const) }),
  fc.record({
    kind: fc.constant("add" as const),
    key: fc.oneof(specialKey, fc.string({ maxLength: 8 })),
    value: fc.jsonValue({ maxDepth: 2 }),
  }),
);

/** `base` with one to three mutations at random paths. */
export function mutated(base: Json): fc.Arbitrary<Json> {
  return fc.array(fc.tuple(fc.nat(), op), { minLength: 1, maxLength: 3 }).map((ops) => {
    let v = base;
    for (const [i, o] of ops) {
      const all = paths(v);
      v = apply(v, all[i % all.length] as Path, o);
    }
    return v;
  });
}

/** Text-level damage JSON.stringify can never produce. */
const textOp = fc.oneof(
  fc.constant((t: string) => t),
  fc.constant((t: string) => t.replace(/\{"([^"]+)":/, '{"$1":null,"$1":')), // first member repeated
  fc.nat().map((n) => (t: string) => t.slice(0, n % (t.length + 1))), // truncated
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 127 })).map(
    ([n, c]) =>
      (t: string) =>
        `${t.slice(0, n % (t.length + 1))}${String.fromCharCode(c)}${t.slice((n % (t.length + 1)) + 1)}`,
  ),
);

/** Bytes on the wire: mostly damaged variants of `base`, sometimes anything at all. */
export function documentBytes(base: Json): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(mutated(base), textOp).map(([v, f]) => utf8(f(JSON.stringify(v) ?? ""))),
    },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => utf8(JSON.stringify(v) ?? "null")) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

const utf8 = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));

/**
 * The fuzz property every edge parser must meet: `parse` either returns a value that survives a JSON
 * round trip unchanged (`again` parses the re-serialised value), or throws a named Keel error with a
 * message. Anything else (a TypeError, a RangeError, an unnamed Error) fails the property.
 */
export function refusedOrRoundTrips<T>(parse: () => T, again: (text: string) => T): T | undefined {
  let value: T;
  try {
    value = parse();
  } catch (err) {
    expectNamed(err);
    return undefined;
  }
  expect(again(JSON.stringify(value))).toEqual(value);
  return value;
}

export function expectNamed(err: unknown): void {
  if (!(err instanceof KeelError)) throw err; // shows the unexpected error itself
  expect(err.name).not.toBe("Error");
  expect(err.name).not.toBe("KeelError");
  expect(err.message.length).toBeGreaterThan(0);
}
