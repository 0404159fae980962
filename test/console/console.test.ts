/**
 * `keel console` in a real browser (Debian's chromium via playwright-core) against a local cloud that ran
 * the demo's two rollouts on a four-node fleet. What the page shows is checked against the rollout API;
 * what the page does (pause, resume, abort, start) is checked through the API too. Every request the
 * browser makes is recorded: none may leave the console. Screenshots of each view go to test-artifacts/
 * (KEEL_UPDATE_DOCS_IMAGES=1 also refreshes docs/images/console-rollout.png).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { symlink } from "node:fs/promises";
import { request } from "node:http";
import { join, resolve } from "node:path";
import { Writable } from "node:stream";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type ConsoleServer, startConsole } from "../../cli/console/server.ts";
import { type Rollout, RolloutSchema, RolloutViewSchema } from "../../functions/rollout-api/contract.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { BAD_RELEASE, GOOD_RELEASE, runDemo } from "../../local/demo.ts";
import { type E2E, startE2E, until } from "../e2e/helpers.ts";
import { ARTIFACTS, type Browser, launchBrowser } from "./browser.ts";

const FLEET = "consolefleet";
const DEVICES = 4;
const BOGUS_RELEASE = "9.9.9";
const KEEL = resolve(import.meta.dirname, "../../bin/keel.mjs");

interface RawAnswer {
  status: number;
  text: string;
}

/** A request as any local program could send it: every header (Host included) exactly as given. */
function raw(url: string, method: string, headers: Record<string, string>, body = ""): Promise<RawAnswer> {
  return new Promise((resolveAnswer, reject) => {
    const req = request(
      url,
      { method, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolveAnswer({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("keel console in chromium, on the demo's fleet", () => {
  let e: E2E;
  let server: ConsoleServer;
  let browser: Browser;
  let page: Page;
  let rollouts: Rollout[];
  /** What the demo printed; the console's log entries. */
  let printed = "";
  let cli: ChildProcess | undefined;
  let cliOut = "";
  const logs: Array<Record<string, unknown>> = [];
  const api = () => e.env.tooling.api;
  const getRollout = async (id: string) => RolloutViewSchema.parse(await api().get(`/rollouts/${id}`));
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    // Prepare: the demo's scenario (1.1.0 succeeds, 1.2.0 aborts at the canary), a manifest the cloud
    // must reject, the console on a free port, and one browser for the whole file.
    e = await startE2E(FLEET, DEVICES);
    // `keel console --local` as an operator runs it, next to this cloud (its .keel is the E2E's folder)
    await symlink(join(e.tmp, "keel"), join(e.tmp, ".keel"));
    cli = spawn(process.execPath, [KEEL, "console", "--local", "--port", "0"], {
      cwd: e.tmp,
      stdio: ["ignore", "pipe", "pipe"],
    });
    cli.stdout?.on("data", (c: Buffer) => {
      cliOut += c.toString();
    });
    cli.stderr?.on("data", (c: Buffer) => {
      cliOut += c.toString();
    });
    server = await startConsole({
      api: api(),
      port: 0,
      target: "local cloud (test)",
      pollMs: 500,
      log: (l) => logs.push(l),
    });
    const out = new Writable({
      write(chunk, _enc, cb) {
        printed += String(chunk);
        cb();
      },
    });
    const [demo, b] = await Promise.all([
      runDemo({ env: e.env, out, bakeSeconds: 1, consoleUrl: server.url }),
      launchBrowser(),
    ]);
    browser = b;
    expect(demo.ok, demo.problems.join("; ")).toBe(true);
    const s3 = new S3Client({
      region: e.env.info.region,
      endpoint: e.env.info.s3,
      forcePathStyle: true,
      credentials: LOCAL_CREDENTIALS,
    });
    await s3.send(
      new PutObjectCommand({
        Bucket: e.env.info.bucket,
        Key: `releases/${BOGUS_RELEASE}/release.json`,
        Body: '{"signed": "not a manifest"}',
      }),
    );
    s3.destroy();
    await until("the bogus release to be REJECTED", async () => {
      const r = z
        .object({ releases: z.array(z.object({ version: z.string() })) })
        .parse(await api().get("/releases"));
      return r.releases.some((x) => x.version === BOGUS_RELEASE) ? true : undefined;
    });
    rollouts = z.object({ rollouts: z.array(RolloutSchema) }).parse(await api().get("/rollouts")).rollouts;
    page = await browser.context.newPage();
  }, 150_000);

  afterAll(async () => {
    cli?.kill("SIGINT");
    await browser?.close();
    await server?.close();
    await e?.stop();
  });

  const idOf = (release: string) => rollouts.find((r) => r.release === release)?.id ?? "";

  it("the demo prints the console's URL", () => {
    expect(printed).toContain(
      `Watch the rollouts in a browser (keel console, served while the demo runs):\n  ${server.url}`,
    );
  });

  it("keel console --local prints its URL and serves the rollouts, signing as the CLI does", async () => {
    const url = await until(
      "keel console to print its URL",
      async () => /http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+/.exec(cliOut)?.[0],
    );
    expect(cliOut).toContain("Keel console for the local cloud");
    const origin = new URL(url).origin;
    const token = new URL(url).searchParams.get("token") ?? "";
    const res = await fetch(`${origin}/api/rollouts`, { headers: { "x-keel-console-token": token } });
    expect(res.status).toBe(200);
    const body = z.object({ rollouts: z.array(z.object({ release: z.string() })) }).parse(await res.json());
    expect(body.rollouts.map((r) => r.release).sort()).toEqual([GOOD_RELEASE, BAD_RELEASE]);
    // Its stdout is the URL and how to stop, nothing else (no SDK notice, no log lines).
    expect(cliOut).not.toContain("Warning");
  });

  it("lists the demo's two rollouts with their status", async () => {
    await page.goto(server.url);
    const rows = page.locator("tr[data-rollout]");
    await expect.poll(() => rows.count()).toBe(2);
    expect(await page.locator(`tr[data-rollout="${idOf(GOOD_RELEASE)}"]`).getAttribute("data-status")).toBe(
      "SUCCEEDED",
    );
    expect(await page.locator(`tr[data-rollout="${idOf(BAD_RELEASE)}"]`).getAttribute("data-status")).toBe(
      "ABORTED",
    );
    await shot("rollouts");
  });

  it("shows 1.1.0's three waves done and 1.2.0 stopped at its canary, which rolled back", async () => {
    await page.click(`a[href="#/rollouts/${idOf(GOOD_RELEASE)}"]`);
    const waves = page.locator("li[data-wave]");
    await expect.poll(() => waves.count()).toBe(3);
    expect(await waves.evaluateAll((ls) => ls.map((l) => l.getAttribute("data-state")))).toEqual([
      "done",
      "done",
      "done",
    ]);
    await shot("rollout-succeeded");

    await page.goto(`${server.url}#/rollouts/${idOf(BAD_RELEASE)}`);
    await expect.poll(() => page.locator("li[data-wave]").first().getAttribute("data-state")).toBe("aborted");
    expect(
      await page.locator("li[data-wave]").evaluateAll((ls) => ls.map((l) => l.getAttribute("data-state"))),
    ).toEqual(["aborted", "never", "never"]);
    // The canary's bar: one failed device, as the API counts it.
    const view = await getRollout(idOf(BAD_RELEASE));
    const failed = page.locator('li[data-wave="1"] .seg[data-part="failed"]');
    expect(Number(await failed.getAttribute("data-count"))).toBe(view.waves[0]?.counts?.failed);
    const canary = e.env.fleet.thingNames()[0] ?? "";
    const row = page.locator(`tr[data-device="${canary}"]`);
    expect(await row.getAttribute("data-status")).toBe("FAILED");
    expect(await row.textContent()).toMatch(/yes[\s\S]*health check/);
    // Filter: "Succeeded" hides the failed canary.
    await page.getByLabel("Outcome").selectOption("succeeded");
    await expect.poll(() => page.locator("tr[data-device]").count()).toBe(0);
    await page.getByLabel("Outcome").selectOption("all");
    await shot("rollout-aborted");
    if (process.env.KEEL_UPDATE_DOCS_IMAGES === "1") {
      await page.screenshot({
        path: resolve(import.meta.dirname, "../../docs/images/console-rollout.png"),
        fullPage: true,
      });
    }
  });

  it("the fleet chart shows the counts GET /fleets/{fleet} returns, at 1280 px and on a phone", async () => {
    await page.goto(`${server.url}#/fleets/${FLEET}`);
    const bars = page.locator("svg.chart g[data-version]");
    await expect.poll(() => bars.count()).toBeGreaterThan(0);
    const fleet = z
      .object({
        versions: z.record(z.string(), z.number()),
        things: z.array(z.object({ thingName: z.string() })),
      })
      .parse(await api().get(`/fleets/${FLEET}`));
    const shown = Object.fromEntries(
      await bars.evaluateAll((gs) =>
        gs.map((g) => [g.getAttribute("data-version"), Number(g.getAttribute("data-count"))]),
      ),
    );
    expect(shown).toEqual(fleet.versions);
    await expect.poll(() => page.locator("tr[data-device]").count()).toBe(fleet.things.length);
    await page.getByLabel("Search").fill(fleet.things[0]?.thingName ?? "");
    await expect.poll(() => page.locator("tr[data-device]").count()).toBe(1);
    await page.getByLabel("Search").fill("");
    await shot("fleet");
    // Every form control on the page has a label
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLInputElement | HTMLSelectElement>("input, select")]
        .filter((c) => (c.labels?.length ?? 0) === 0)
        .map((c) => c.outerHTML),
    );
    expect(unlabelled).toEqual([]);
    await page.setViewportSize({ width: 390, height: 844 });
    // Usable on a phone: nothing wider than the screen except inside the scrollable tables.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot("fleet-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("lists releases VERIFIED and REJECTED with the reason", async () => {
    await page.goto(`${server.url}#/releases`);
    const bogus = page.locator(`tr[data-release="${BOGUS_RELEASE}"]`);
    await expect.poll(() => bogus.getAttribute("data-status")).toBe("REJECTED");
    expect((await bogus.locator("td.reason").textContent())?.trim().length ?? 0).toBeGreaterThan(0);
    expect(await page.locator(`tr[data-release="${GOOD_RELEASE}"]`).getAttribute("data-status")).toBe(
      "VERIFIED",
    );
    await shot("releases");
  });

  it("the proxy refuses every request the page must not make, with a named reason, and changes nothing", async () => {
    // Prepare: a rollout that stays RUNNING (its canary bakes for an hour)
    const things = e.env.fleet.thingNames();
    const running = RolloutSchema.parse(
      await api().post("/rollouts", {
        release: GOOD_RELEASE,
        fleets: [FLEET],
        waves: [{ canary: [things[2] ?? ""], bakeSeconds: 3600 }, { percent: 100 }],
      }),
    );
    const before = await getRollout(running.id);
    const o = server.origin;
    const host = o.replace("http://", "");
    const token = { "x-keel-console-token": server.token };
    const json = { ...token, origin: o, "content-type": "application/json" };
    const pausePath = `/api/rollouts/${running.id}/pause`;
    const cases: Array<[string, () => Promise<RawAnswer>, number, RegExp]> = [
      ["page without the token", () => raw(`${o}/`, "GET", {}), 403, /full URL/],
      ["page with a wrong token", () => raw(`${o}/?token=x${server.token}`, "GET", {}), 403, /full URL/],
      ["API without the token", () => raw(`${o}/api/rollouts`, "GET", {}), 403, /x-keel-console-token/],
      [
        "another Host (DNS rebinding)",
        () => raw(`${o}/api/rollouts`, "GET", { ...token, host: "evil.example" }),
        403,
        /evil\.example.* is not this console's address/,
      ],
      [
        "POST from another origin",
        () => raw(`${o}${pausePath}`, "POST", { ...json, origin: "http://evil.example" }, "{}"),
        403,
        /cross-site/,
      ],
      [
        "POST with no Origin",
        () => raw(`${o}${pausePath}`, "POST", { ...token, "content-type": "application/json" }, "{}"),
        403,
        /cross-site/,
      ],
      [
        "POST marked cross-site",
        () => raw(`${o}${pausePath}`, "POST", { ...json, "sec-fetch-site": "cross-site" }, "{}"),
        403,
        /Sec-Fetch-Site/,
      ],
      [
        "POST as a form",
        () => raw(`${o}${pausePath}`, "POST", { ...json, "content-type": "text/plain" }, "{}"),
        415,
        /application\/json/,
      ],
      [
        "POST of malformed JSON",
        () => raw(`${o}${pausePath}`, "POST", json, "{"),
        400,
        /not valid UTF-8 JSON/,
      ],
      [
        "POST over 64 KiB",
        () => raw(`${o}${pausePath}`, "POST", json, JSON.stringify({ reason: "x".repeat(70_000) })),
        413,
        /over 65536 bytes/,
      ],
      [
        "an action body with an unknown field",
        () => raw(`${o}${pausePath}`, "POST", json, '{"force":true}'),
        400,
        /force/,
      ],
      [
        "device registration (its answer holds a private key)",
        () => raw(`${o}/api/fleets/${FLEET}/things`, "POST", json, '{"thingName":"x"}'),
        404,
        /does not proxy/,
      ],
      [
        "a method the route does not have",
        () => raw(`${o}/api/rollouts/${running.id}`, "DELETE", token),
        405,
        /not allowed/,
      ],
      [
        "a route the console does not proxy",
        () => raw(`${o}/api/audit`, "GET", token),
        404,
        /does not proxy/,
      ],
      ["a bad rollout id", () => raw(`${o}/api/rollouts/bad%20id!`, "GET", token), 400, /id in the path/],
      ["an unknown query parameter", () => raw(`${o}/api/rollouts?all=1`, "GET", token), 400, /query/],
      [
        "a bad rollout request",
        () => raw(`${o}/api/rollouts`, "POST", json, '{"release":"1.1.0","fleets":["x"],"waves":[]}'),
        400,
        /waves/,
      ],
      [
        "the API's own refusal",
        () => raw(`${o}/api/rollouts/r20990101000000-000000`, "GET", token),
        404,
        /no rollout/,
      ],
    ];
    try {
      for (const [what, answer, status, message] of cases) {
        const a = await answer();
        expect(a.status, what).toBe(status);
        expect(a.text, what).toMatch(message);
      }
      expect(host).toMatch(/^127\.0\.0\.1:\d+$/);
      // Nothing changed: still RUNNING, never paused or aborted
      const after = await getRollout(running.id);
      expect(after.status).toBe("RUNNING");
      expect(after.timeline.filter((t) => t.event === "paused" || t.event === "aborted")).toEqual([]);
      expect(after.timeline.length).toBeGreaterThanOrEqual(before.timeline.length);
      // Each refusal is logged as a structured entry with its status and reason.
      expect(logs).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            status: 403,
            path: pausePath,
            error: expect.stringMatching(/cross-site/),
          }),
          expect.objectContaining({ status: 405, method: "DELETE" }),
        ]),
      );
    } finally {
      // Frees the fleet for the next test's rollout.
      await api().post(`/rollouts/${running.id}/abort`, { reason: "proxy test done" });
    }
  });

  it("starts, pauses, resumes and (after a confirmation) aborts a rollout from the page", async () => {
    const canary = e.env.fleet.thingNames()[1] ?? "";
    await page.goto(`${server.url}#/rollouts`);
    await page.getByRole("button", { name: "Start a rollout…" }).click();
    const dialog = page.getByRole("dialog", { name: "Start a rollout" });
    await dialog.getByLabel("Release (VERIFIED only)").selectOption(GOOD_RELEASE);
    await dialog.getByLabel("Fleet", { exact: true }).fill(FLEET);
    await dialog.getByLabel("Canary devices").fill(canary);
    await dialog.getByLabel("Waves (% of the fleet)").fill("100");
    // A long bake keeps the rollout RUNNING after its canary, whatever the canary does.
    await dialog.getByLabel("Bake between waves (s)").fill("3600");
    expect(await dialog.locator(".start-summary").textContent()).toContain(
      `the canary ${canary}, then 100% of the fleet`,
    );
    await shot("start-dialog");
    await dialog.getByRole("button", { name: "Start rollout" }).click();
    await page.waitForURL(/#\/rollouts\/r/);
    const id = decodeURIComponent(page.url().split("#/rollouts/")[1] ?? "");
    expect((await getRollout(id)).status).toBe("RUNNING");
    // Live: the canary's success turns wave 1 to "baking" with a countdown, with no reload of the page
    await page.evaluate(() => {
      (window as unknown as { keelMarker: number }).keelMarker = 1;
    });
    const wave1 = page.locator('li[data-wave="1"]');
    await expect.poll(() => wave1.getAttribute("data-state"), { timeout: 30_000 }).toBe("baking");
    expect(await wave1.locator(".wave-state").textContent()).toMatch(/next wave in \d+:\d\d:\d\d/);
    expect(await page.evaluate(() => (window as unknown as { keelMarker?: number }).keelMarker)).toBe(1);

    // Pause, through the confirmation
    await page.getByRole("button", { name: "Pause…" }).click();
    const pause = page.getByRole("dialog", { name: "Pause this rollout?" });
    expect(await pause.textContent()).toContain("no new wave starts");
    await pause.getByRole("button", { name: "Pause rollout" }).click();
    await until("the API to say PAUSED", async () =>
      (await getRollout(id)).status === "PAUSED" ? true : undefined,
    );
    await expect.poll(() => page.getByRole("button", { name: "Resume…" }).isVisible()).toBe(true);
    await shot("rollout-paused");

    // Resume
    await page.getByRole("button", { name: "Resume…" }).click();
    await page
      .getByRole("dialog", { name: "Resume this rollout?" })
      .getByRole("button", { name: "Resume rollout" })
      .click();
    await until("the API to say RUNNING", async () =>
      (await getRollout(id)).status === "RUNNING" ? true : undefined,
    );

    // Abort asks first; cancelling changes nothing
    await expect.poll(() => page.getByRole("button", { name: "Abort…" }).isVisible()).toBe(true);
    // …by keyboard: Enter on the button opens it with Cancel focused; Escape closes it
    await page.getByRole("button", { name: "Abort…" }).focus();
    await page.keyboard.press("Enter");
    const abort = page.getByRole("dialog", { name: "Abort this rollout?" });
    expect(await abort.textContent()).toContain("cannot be undone");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Cancel");
    await shot("abort-dialog");
    await page.keyboard.press("Escape");
    await expect.poll(() => abort.count()).toBe(0);
    expect((await getRollout(id)).status).toBe("RUNNING");

    await page.getByRole("button", { name: "Abort…" }).click();
    await abort.getByLabel(/Reason/).fill("console test");
    await abort.getByRole("button", { name: "Abort rollout" }).click();
    const aborted = await until("the API to say ABORTED", async () => {
      const r = await getRollout(id);
      return r.status === "ABORTED" ? r : undefined;
    });
    expect(aborted.timeline.map((t) => t.event)).toEqual(expect.arrayContaining(["paused", "resumed"]));
    expect(JSON.stringify(aborted.timeline)).toContain("console test");
  });

  it("the page requested nothing from any host but the console", () => {
    expect(browser.requests.length).toBeGreaterThan(10);
    const elsewhere = browser.requests.filter((u) => !u.startsWith(`${server.origin}/`));
    expect(elsewhere).toEqual([]);
  });
});
