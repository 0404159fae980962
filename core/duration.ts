/** Durations as operators type them: `30s`, `10m`, `2h`, `90d`, `1w`, or a bare number of seconds. */
import { DurationError } from "./errors.ts";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

export function parseDurationSeconds(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw]?)$/.exec(text.trim());
  if (!m)
    throw new DurationError(`invalid duration ${JSON.stringify(text)}: use a number with s, m, h, d or w`);
  const seconds = Number(m[1]) * (UNIT_SECONDS[m[2] || "s"] ?? 1);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new DurationError(`duration ${text} must be positive`);
  return seconds;
}
