/**
 * Post-boot health checks (docs/architecture.md#health-checks): HTTP (kubelet healthz must answer "ok"), TCP,
 * a command, and "connected to the broker". Each check retries until it passes, runs out of retries or
 * the overall deadline passes; all of them must pass. Time comes from the injected clock.
 */
import { spawn } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { connect } from "node:net";
import { z } from "zod";
import type { AgentClock } from "./clock.ts";
import { AbortedError } from "./errors.ts";
import type { Logger } from "./logger.ts";

export const KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz";

const common = {
  /** One attempt may take this long. */
  timeoutSeconds: z.number().positive().max(3600).default(5),
  /** Attempts after the first failure. */
  retries: z.number().int().min(0).max(1000).default(10),
  /** Wait between attempts. */
  intervalSeconds: z.number().min(0).max(3600).default(5),
};

export const HealthCheckSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("http"),
    url: z.url({ protocol: /^https?$/ }).default(KUBELET_HEALTHZ),
    /** The body, trimmed, must equal this (kubelet answers "ok"); null accepts any 2xx body. */
    expect: z.string().nullable().default("ok"),
    ...common,
  }),
  z.strictObject({
    type: z.literal("tcp"),
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(1).max(65535),
    ...common,
  }),
  z.strictObject({
    type: z.literal("command"),
    /** Run with /bin/sh -c; exit status 0 is healthy. */
    command: z.string().min(1),
    ...common,
  }),
  z.strictObject({ type: z.literal("broker"), ...common }),
]);
export type HealthCheck = z.infer<typeof HealthCheckSchema>;

export interface HealthContext {
  clock: AgentClock;
  /** Whether the agent's MQTT connection is up (the `broker` check). */
  brokerConnected: () => boolean;
  logger?: Logger;
  signal?: AbortSignal;
}

export type HealthResult = { ok: true } | { ok: false; reason: string };

export function describeCheck(c: HealthCheck): string {
  switch (c.type) {
    case "http":
      return `http ${c.url}`;
    case "tcp":
      return `tcp ${c.host}:${c.port}`;
    case "command":
      return `command ${JSON.stringify(c.command)}`;
    case "broker":
      return "broker connection";
  }
}

/** One attempt; resolves to null when healthy, else what was wrong. */
function attempt(c: HealthCheck, ctx: HealthContext, signal: AbortSignal): Promise<string | null> {
  switch (c.type) {
    case "http":
      return new Promise((resolve) => {
        const mod = c.url.startsWith("https:") ? https : http;
        const req = mod.get(c.url, { signal }, (res) => {
          const parts: Buffer[] = [];
          let size = 0;
          res.on("data", (d: Buffer) => {
            size += d.length;
            if (size <= 4096) parts.push(d);
          });
          res.on("end", () => {
            const body = Buffer.concat(parts).toString("utf8").trim();
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299)
              resolve(`HTTP ${status}${body ? `: ${body.slice(0, 200)}` : ""}`);
            else if (c.expect !== null && body !== c.expect)
              resolve(`answered ${JSON.stringify(body.slice(0, 200))}`);
            else resolve(null);
          });
          res.on("error", (err) => resolve(err.message));
        });
        req.on("error", (err) => resolve(err.message));
      });
    case "tcp":
      return new Promise((resolve) => {
        const sock = connect({ host: c.host, port: c.port });
        const done = (r: string | null) => {
          sock.destroy();
          resolve(r);
        };
        signal.addEventListener("abort", () => done("timed out"), { once: true });
        sock.once("connect", () => done(null));
        sock.once("error", (err) => done(err.message));
      });
    case "command":
      return new Promise((resolve) => {
        const child = spawn("/bin/sh", ["-c", c.command], { stdio: ["ignore", "ignore", "pipe"], signal });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => {
          stderr = (stderr + d.toString("utf8")).slice(-500);
        });
        child.on("error", (err) => resolve(err.message));
        child.on("close", (code) =>
          resolve(code === 0 ? null : `exit ${code}${stderr.trim() ? `: ${stderr.trim()}` : ""}`),
        );
      });
    case "broker":
      return Promise.resolve(ctx.brokerConnected() ? null : "not connected to the broker");
  }
}

/**
 * One attempt bounded by timeoutSeconds. This is an I/O timeout on the socket or child process, so it
 * uses a real timer; the retry intervals and the overall deadline run on the injected clock.
 */
async function timedAttempt(c: HealthCheck, ctx: HealthContext): Promise<string | null> {
  const timeout = AbortSignal.timeout(c.timeoutSeconds * 1000);
  const signal = ctx.signal ? AbortSignal.any([timeout, ctx.signal]) : timeout;
  const r = await attempt(c, ctx, signal);
  if (r !== null && timeout.aborted) return `timed out after ${c.timeoutSeconds} s`;
  return r;
}

/** All checks, in order, each retried; fails on the first check that cannot pass before `deadlineMs`. */
export async function runHealthChecks(
  checks: ReadonlyArray<HealthCheck>,
  deadlineMs: number,
  ctx: HealthContext,
): Promise<HealthResult> {
  const deadline = ctx.clock.now() + deadlineMs;
  for (const c of checks) {
    let last = "not run";
    let passed = false;
    for (let i = 0; i <= c.retries; i++) {
      if (ctx.signal?.aborted) throw new AbortedError("health checks abandoned");
      if (ctx.clock.now() >= deadline) break;
      const r = await timedAttempt(c, ctx);
      if (r === null) {
        passed = true;
        break;
      }
      last = r;
      ctx.logger?.info("health check failed; will retry", {
        check: describeCheck(c),
        attempt: i + 1,
        error: r,
      });
      if (i < c.retries) {
        const wait = Math.min(c.intervalSeconds * 1000, Math.max(0, deadline - ctx.clock.now()));
        await ctx.clock.sleep(wait, ctx.signal);
      }
    }
    if (!passed) {
      const why =
        ctx.clock.now() >= deadline
          ? `deadline of ${Math.round(deadlineMs / 1000)} s passed`
          : `${c.retries + 1} attempts failed`;
      return { ok: false, reason: `health check ${describeCheck(c)} failed (${why}): ${last}` };
    }
  }
  return { ok: true };
}
