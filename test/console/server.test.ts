/**
 * The console server without a cloud: the page and its assets (with their security headers), answers
 * from an API that does not keep its contract (502 naming the field, nothing forwarded), a port already
 * in use, and the --port option. The API here is a plain object standing in for a broken deployment;
 * the real API is exercised in console.test.ts.
 */
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portOption } from "../../cli/commands/console.ts";
import { type ConsoleServer, startConsole } from "../../cli/console/server.ts";

describe("console server", () => {
  let server: ConsoleServer;
  const logs: Array<Record<string, unknown>> = [];
  const sent: string[] = [];

  beforeAll(async () => {
    server = await startConsole({
      port: 0,
      target: "a broken API",
      log: (l) => logs.push(l),
      api: {
        async get(path) {
          sent.push(`GET ${path}`);
          if (path === "/releases") return { releases: [{ version: "1.0.0", status: "MAYBE" }] };
          return { rollouts: "not a list" };
        },
        async post(path) {
          sent.push(`POST ${path}`);
          return {};
        },
      },
    });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  const get = (path: string) =>
    fetch(`${server.origin}${path}`, { headers: { "x-keel-console-token": server.token } });

  it("serves the page with the token, the bundled app, and strict security headers", async () => {
    const page = await fetch(server.url);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`<meta name="keel-console-token" content="${server.token}">`);
    expect(html).toContain("a broken API");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const js = await fetch(`${server.origin}/app.js`);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    // Bundled: no import of anything, from anywhere, is left for the browser to fetch.
    expect(await js.text()).not.toMatch(/\bimport\s*[("{]|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect((await fetch(`${server.origin}/app.css`)).status).toBe(200);
    expect((await fetch(`${server.origin}/nothing-here`)).status).toBe(404);
  });

  it("answers 502 naming the field when the API's answer breaks its contract", async () => {
    const rollouts = await get("/api/rollouts");
    expect(rollouts.status).toBe(502);
    expect(((await rollouts.json()) as { error: string }).error).toMatch(
      /API answer to GET \/rollouts.*rollouts/,
    );
    const releases = await get("/api/releases");
    expect(releases.status).toBe(502);
    expect(((await releases.json()) as { error: string }).error).toMatch(/releases\[0\]\.status/);
    expect(logs).toEqual(
      expect.arrayContaining([expect.objectContaining({ status: 502, errorName: "ConsoleUpstreamError" })]),
    );
  });

  it("refuses a port in use with a named error, and --port values out of range", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as { port: number }).port;
    await expect(
      startConsole({ port, target: "x", api: { get: async () => ({}), post: async () => ({}) } }),
    ).rejects.toMatchObject({
      name: "ConsoleListenError",
      message: expect.stringContaining("the port is in use"),
    });
    taken.close();
    expect(portOption("8080")).toBe(8080);
    expect(portOption("0")).toBe(0);
    for (const bad of ["65536", "-1", "80a", ""]) expect(() => portOption(bad), bad).toThrow(/port number/);
  });

  it("sent the API only allow-listed, well-formed calls", () => {
    expect(sent).toEqual(["GET /rollouts", "GET /releases"]);
  });
});
