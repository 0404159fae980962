import { createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentClock } from "../../device/clock.ts";
import { HealthCheckSchema, runHealthChecks } from "../../device/health.ts";

/** A manual clock: sleeps advance virtual time at once; the deadline is checked against it. */
function manualClock(): AgentClock & { t: number } {
  const c = {
    t: 1_000_000,
    now: () => c.t,
    sleep: (ms: number) => {
      c.t += ms;
      return new Promise<void>((r) => setImmediate(r));
    },
  };
  return c;
}

const check = (v: unknown) => HealthCheckSchema.parse(v);

describe("health checks", () => {
  let http: Server;
  let body = "ok";
  let status = 200;
  let url = "";
  beforeAll(async () => {
    http = createServer((_req, res) => res.writeHead(status).end(body));
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/healthz`;
  });
  afterAll(() => new Promise<void>((r) => http.close(() => r())));

  const ctx = (clock = manualClock(), connected = true) => ({ clock, brokerConnected: () => connected });

  it("passes when kubelet's healthz answers ok", async () => {
    body = "ok";
    status = 200;
    expect(await runHealthChecks([check({ type: "http", url })], 60_000, ctx())).toEqual({ ok: true });
  });

  it("fails on another body or a 500, naming the check and what it saw", async () => {
    body = "[-]etcd failed";
    status = 200;
    const r = await runHealthChecks(
      [check({ type: "http", url, retries: 2, intervalSeconds: 1 })],
      60_000,
      ctx(),
    );
    expect(r).toEqual({
      ok: false,
      reason: expect.stringMatching(/http .*healthz.*3 attempts failed.*etcd failed/),
    });
    status = 500;
    body = "down";
    const r2 = await runHealthChecks([check({ type: "http", url, retries: 0 })], 60_000, ctx());
    expect(r2).toMatchObject({ ok: false, reason: expect.stringMatching(/HTTP 500: down/) });
  });

  it("stops retrying at the deadline on the injected clock", async () => {
    status = 500;
    const clock = manualClock();
    const start = clock.t;
    const r = await runHealthChecks(
      [check({ type: "http", url, retries: 1000, intervalSeconds: 5 })],
      30_000,
      ctx(clock),
    );
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/deadline of 30 s passed/) });
    expect(clock.t - start).toBe(30_000);
  });

  it("checks tcp ports, commands and the broker connection", async () => {
    const tcp = createTcpServer((s) => s.end());
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
    const port = (tcp.address() as AddressInfo).port;
    const ok = await runHealthChecks(
      [
        check({ type: "tcp", port }),
        check({ type: "command", command: "test 1 -eq 1" }),
        check({ type: "broker" }),
      ],
      60_000,
      ctx(),
    );
    expect(ok).toEqual({ ok: true });
    await new Promise<void>((r) => tcp.close(() => r()));
    const closed = await runHealthChecks([check({ type: "tcp", port, retries: 0 })], 60_000, ctx());
    expect(closed).toMatchObject({ ok: false, reason: expect.stringMatching(/ECONNREFUSED/) });
    const cmd = await runHealthChecks(
      [check({ type: "command", command: "echo boom >&2; exit 3", retries: 0 })],
      60_000,
      ctx(),
    );
    expect(cmd).toMatchObject({ ok: false, reason: expect.stringMatching(/exit 3: boom/) });
    const broker = await runHealthChecks(
      [check({ type: "broker", retries: 0 })],
      60_000,
      ctx(manualClock(), false),
    );
    expect(broker).toMatchObject({ ok: false, reason: expect.stringMatching(/not connected/) });
  });
});
