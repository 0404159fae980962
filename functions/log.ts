/**
 * Structured JSON logs, one object per line, as CloudWatch Logs Insights and metric filters expect.
 *
 * With `loggingFormat: JSON` the Lambda runtime wraps whatever console.log gets in its own object
 * ({timestamp, level, requestId, message}): a string stays a string (`$.message` would be our JSON as
 * text, which no filter can look into), an object becomes a nested object (`$.message.event`). So under
 * Lambda's JSON format the entry is passed as an object; anywhere else it is printed as one JSON line.
 */
import type { Logger } from "../core/logger.ts";
import type { Env } from "./env.ts";

/** The `event` of the line logged once whenever a rollout becomes ABORTED (the aborted-rollouts alarm). */
export const ROLLOUT_ABORTED_EVENT = "rollout.aborted";
/** The `event` of the line logged once whenever an AWS call of a rollout stalls (the stalled alarm). */
export const ROLLOUT_STALLED_EVENT = "rollout.stalled";

const ORDER = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = Exclude<keyof typeof ORDER, "silent">;

export type { Logger } from "../core/logger.ts";

/** Where log entries go: stdout for debug/info, stderr for warn/error. */
export type LogSink = (entry: Record<string, unknown>, toStderr: boolean) => void;

/** True inside a Lambda function configured with `loggingFormat: JSON` (the runtime sets this). */
export function lambdaJsonFormat(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === "JSON";
}

export function consoleSink(lambdaJson = lambdaJsonFormat()): LogSink {
  return (entry, toStderr) => {
    const out = lambdaJson ? entry : JSON.stringify(entry);
    if (toStderr) console.error(out);
    else console.log(out);
  };
}

export function createLogger(
  service: string,
  level: Env["LOG_LEVEL"],
  sink: LogSink = consoleSink(),
): Logger {
  const min = ORDER[level];
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    sink({ level: lvl, service, msg, time: new Date().toISOString(), ...fields }, ORDER[lvl] >= ORDER.warn);
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
