/** Structured JSON logs, one object per line, as CloudWatch Logs Insights expects from Lambda. */
import type { Env } from "./env.ts";

const ORDER = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = Exclude<keyof typeof ORDER, "silent">;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(service: string, level: Env["LOG_LEVEL"]): Logger {
  const min = ORDER[level];
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const line = JSON.stringify({ level: lvl, service, msg, time: new Date().toISOString(), ...fields });
    if (ORDER[lvl] >= ORDER.warn) console.error(line);
    else console.log(line);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
  };
}

/** An error as log fields: name, message and the cause chain, never the raw object. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const causes: string[] = [];
  let c: unknown = err.cause;
  while (c instanceof Error && causes.length < 5) {
    // Capped: a ZodError's message is the whole issue list, already summarized in ours.
    causes.push(`${c.name}: ${c.message}`.slice(0, 500));
    c = c.cause;
  }
  return { error: `${err.name}: ${err.message}`, ...(causes.length ? { causes } : {}) };
}
