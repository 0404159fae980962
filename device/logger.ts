/**
 * Structured JSON-lines logging for the agent: one object per line with time, level, msg and fields, so
 * journald and log shippers can parse it. Child loggers add fields (thing, jobId) without global state,
 * so hundreds of agents can log from one process.
 */
import type { Logger as BaseLogger, LogFields } from "../core/logger.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** The tree's one logging shape (core/logger.ts), plus child loggers that carry fields (thing, jobId). */
export interface Logger extends BaseLogger {
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Where each line goes; default stderr (stdout stays clean for CLI output such as `status --json`). */
  write?: (line: string) => void;
  level?: LogLevel;
  now?: () => number;
  fields?: Record<string, unknown>;
}

function plain(v: unknown): unknown {
  if (v instanceof Error) {
    return { name: v.name, message: v.message, ...(v.cause !== undefined ? { cause: plain(v.cause) } : {}) };
  }
  return v;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const min = ORDER[options.level ?? "info"];
  const now = options.now ?? Date.now;
  const base = options.fields ?? {};
  const log =
    (level: LogLevel) =>
    (msg: string, fields: Record<string, unknown> = {}): void => {
      if (ORDER[level] < min) return;
      const out: Record<string, unknown> = { time: new Date(now()).toISOString(), level, msg, ...base };
      for (const [k, v] of Object.entries(fields)) out[k] = plain(v);
      write(JSON.stringify(out));
    };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** For tests and library callers that do not want output. */
export const silentLogger: Logger = createLogger({ write: () => {} });
