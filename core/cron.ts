/**
 * A small five-field cron parser (`minute hour day-of-month month day-of-week`), for maintenance windows
 * (docs/fleets.md#maintenance-windows). Each field takes `*`, a number, a range `a-b`, a step `*\/n` or
 * `a-b/n`, and comma lists of those; months and weekdays also take three-letter English names. As in
 * Vixie cron, when both day fields are restricted a day matches if either does; weekday 7 is Sunday.
 * Written here rather than taken from a package: the whole grammar is this file, and the time-zone
 * arithmetic (core/maintenance-window.ts) is ours to test.
 */
import { CronError } from "./errors.ts";

export interface CronSpec {
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  days: ReadonlySet<number>;
  months: ReadonlySet<number>;
  weekdays: ReadonlySet<number>;
  /** Whether the day-of-month / day-of-week field was `*` (changes how the two combine). */
  anyDay: boolean;
  anyWeekday: boolean;
}

interface FieldDef {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly FieldDef[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day-of-month", min: 1, max: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
  },
  { name: "day-of-week", min: 0, max: 7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] },
];

function fieldValue(text: string, f: FieldDef, expr: string): number {
  const named = f.names?.indexOf(text.toUpperCase()) ?? -1;
  // Month names count from 1, weekday names from 0 (SUN).
  if (named >= 0) return f.name === "month" ? named + 1 : named;
  if (!/^\d{1,2}$/.test(text)) {
    throw new CronError(
      expr,
      `${f.name} field: ${JSON.stringify(text)} is not a number${f.names ? " or name" : ""}`,
    );
  }
  const n = Number(text);
  if (n < f.min || n > f.max) throw new CronError(expr, `${f.name} field: ${n} is outside ${f.min}-${f.max}`);
  return n;
}

function parseField(text: string, f: FieldDef, expr: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^([^/]+)(?:\/(\d{1,2}))?$/.exec(part);
    if (!m?.[1])
      throw new CronError(expr, `${f.name} field: ${JSON.stringify(part)} is not a value, range or step`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw new CronError(expr, `${f.name} field: step must be at least 1`);
    let lo: number;
    let hi: number;
    if (m[1] === "*") {
      lo = f.min;
      hi = f.max;
    } else {
      const [a, b, ...rest] = m[1].split("-");
      if (a === undefined || rest.length > 0) {
        throw new CronError(expr, `${f.name} field: ${JSON.stringify(m[1])} is not a value or range`);
      }
      lo = fieldValue(a, f, expr);
      hi = b === undefined ? (m[2] === undefined ? lo : f.max) : fieldValue(b, f, expr);
      if (hi < lo) throw new CronError(expr, `${f.name} field: range ${m[1]} runs backwards`);
    }
    for (let v = lo; v <= hi; v += step) out.add(f.name === "day-of-week" && v === 7 ? 0 : v);
  }
  return out;
}

/** Parses a five-field cron expression; a CronError names the field at fault. */
export function parseCron(expr: string): CronSpec {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw new CronError(
      expr,
      `has ${fields.length} field(s); expected 5 (minute hour day-of-month month day-of-week)`,
    );
  }
  const [minutes, hours, days, months, weekdays] = FIELDS.map((f, i) => parseField(fields[i] ?? "", f, expr));
  if (!minutes || !hours || !days || !months || !weekdays) throw new CronError(expr, "is incomplete");
  return { minutes, hours, days, months, weekdays, anyDay: fields[2] === "*", anyWeekday: fields[4] === "*" };
}

/** Whether a calendar day (month 1–12, weekday 0 = Sunday) matches the spec's day fields. */
export function cronMatchesDay(spec: CronSpec, day: number, month: number, weekday: number): boolean {
  if (!spec.months.has(month)) return false;
  const byDay = spec.days.has(day);
  const byWeekday = spec.weekdays.has(weekday);
  if (spec.anyDay && spec.anyWeekday) return true;
  if (spec.anyDay) return byWeekday;
  if (spec.anyWeekday) return byDay;
  return byDay || byWeekday;
}
