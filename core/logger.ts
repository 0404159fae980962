/**
 * The one logging shape of the tree: the agent (JSON lines to journald), the Lambda functions (JSON for
 * CloudWatch) and the local cloud all log through these four methods with structured fields. Each area
 * keeps its own sink (device/logger.ts, functions/log.ts); code that only logs depends on this.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}
