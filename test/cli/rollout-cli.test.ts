/**
 * The operator's cloud commands end to end against the local cloud with the Lambda wiring: publish a
 * signed release (and a bad one), register a device and connect it with the files the CLI wrote, start a
 * canary rollout and watch it finish, pause and abort another; plus the pure parts (waves spec, rendering).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { renderAudit } from "../../cli/commands/audit.ts";
import { minutesOption, parseWavesSpec, renderRollout } from "../../cli/commands/rollout.ts";
import { SchemaError } from "../../core/errors.ts";
import { startLocalCloud } from "../../local/cloud.ts";
import type { LocalCloud } from "../../local/contracts.ts";
import { type FunctionsWiring, startFunctionsWiring } from "../../local/functions-wiring.ts";
import { SimDevice } from "../functions/devices.ts";
import { type Flags, flags, keel, rolloutViewFixture, rootInit, tempDir, writeKey } from "./helpers.ts";

describe("parseWavesSpec", () => {
  it("reads canaries, percents and fills defaults; the last wave gets no bake", () => {
    expect(parseWavesSpec("canary:t1+t2,25,100", { bakeSeconds: 30, failureThresholdPercent: 5 })).toEqual([
      { canary: ["t1", "t2"], bakeSeconds: 30, failureThresholdPercent: 5 },
      { percent: 25, bakeSeconds: 30, failureThresholdPercent: 5 },
      { percent: 100, failureThresholdPercent: 5 },
    ]);
  });

  it("takes a JSON array of API wave objects; their own fields win over defaults", () => {
    expect(
      parseWavesSpec('[{"percent": 10, "bakeMinutes": 5}, {"percent": 100}]', { bakeSeconds: 30 }),
    ).toEqual([{ percent: 10, bakeMinutes: 5 }, { percent: 100 }]);
  });

  it("names the bad item", () => {
    expect(() => parseWavesSpec("10,half,100")).toThrow(/--waves item 2 "half"/);
    expect(() => parseWavesSpec("canary:bad name,100")).toThrow(SchemaError);
    expect(() => parseWavesSpec('[{"percent": 10, "bake": 1}]')).toThrow(
      /invalid --waves: waves\[0\]: Unrecognized key: "bake"/,
    );
  });

  it("names the field and what was expected in a JSON item of the wrong type", () => {
    expect(() => parseWavesSpec('[{"percent":"x"}]')).toThrow(
      /invalid --waves: waves\[0\]\.percent: Invalid input: expected number, received string/,
    );
    expect(() => parseWavesSpec('[{"percent":10},{"canary":[1]},{"percent":100}]')).toThrow(
      /waves\[1\]\.canary\[0\]: Invalid input: expected string, received number/,
    );
  });
});

describe("minutesOption (--timeout)", () => {
  it("takes whole minutes in any unit", () => {
    expect(minutesOption("1m")).toBe(1);
    expect(minutesOption("2h")).toBe(120);
    expect(minutesOption("120s")).toBe(2);
  });

  it("refuses what is not a whole number of minutes instead of rounding it", () => {
    expect(() => minutesOption("30s")).toThrow(/30s is not a whole number of minutes/);
    expect(() => minutesOption("90s")).toThrow(/not a whole number of minutes/);
    expect(() => minutesOption("0m")).toThrow(/not a whole number of minutes|positive/);
  });
});

describe("renderRollout", () => {
  it("draws one bar per wave and a device table", () => {
    const view = rolloutViewFixture();
    const text = renderRollout(view);
    expect(text).toContain("rollout r1: release 1.2.0 to fleet edge — RUNNING");
    expect(text).toMatch(/ {2}wave 1 canary t1 +\[#{30}\] done/);
    // 6 of 10 succeeded = 18 cells, 2 failed = 6, 1 in progress = 3, 1 queued = 3.
    expect(text).toMatch(
      /> wave 2 100% +\[#{18}!{6}~{3}\.{3}\] running {2}6 ok, 2 failed, 1 in progress, 1 queued/,
    );
    expect(text).toMatch(/t1 +1 +SUCCEEDED +version=1\.2\.0/);
    expect(text).not.toContain("devices:");
  });

  it("prints the totals, each device once", () => {
    const text = renderRollout({
      ...rolloutViewFixture(),
      totals: { devices: 3, succeeded: 1, failed: 2, rolledBack: 2, other: 0 },
    });
    expect(text).toContain("  devices: 3 — 1 succeeded, 2 failed (2 rolled back)\n");
  });

  it("shows a stalled rollout, the failing call and what the operator can do", () => {
    const text = renderRollout({
      ...rolloutViewFixture(),
      status: "STALLED",
      reason: "wave 2: create-job failed 5 time(s): CloudCallError: CreateJob failed: throttled",
      effectFailure: {
        effect: "create-job",
        attempts: 5,
        error: "CloudCallError: CreateJob failed: throttled",
        firstAt: "2026-01-01T00:00:00.000Z",
        lastAt: "2026-01-01T00:04:00.000Z",
        stalled: true,
      },
    });
    expect(text).toContain("— STALLED (wave 2: create-job failed 5 time(s)");
    expect(text).toContain(
      "! create-job failed 5 time(s) since 2026-01-01T00:00:00.000Z (stalled: `keel rollout resume` retries, `keel rollout abort` stops); last error: CloudCallError: CreateJob failed: throttled",
    );
  });
});

describe("renderAudit", () => {
  it("one row per entry with its detail; an empty log says so", () => {
    expect(renderAudit([])).toBe("no audit entries\n");
    const text = renderAudit([
      {
        at: "2026-01-01T00:00:00.000Z",
        who: "arn:aws:iam::1:user/op",
        action: "rollout.abort",
        target: "r1",
        detail: { reason: "bad" },
      },
    ]);
    expect(text).toMatch(/AT +ACTION +TARGET +WHO +DETAIL/);
    expect(text).toMatch(
      /2026-01-01T00:00:00.000Z +rollout.abort +r1 +arn:aws:iam::1:user\/op +\{"reason":"bad"\}/,
    );
  });
});

// Each test runs several CLI processes (each loads the AWS SDK): give them room on a busy machine.
describe("keel release publish / releases / fleet / rollout against the local cloud", {
  timeout: 180_000,
}, () => {
  let dir: string;
  let cloud: LocalCloud;
  let wiring: FunctionsWiring;
  const devices: SimDevice[] = [];
  const run = (...args: string[]) => keel(dir, ...args);
  /** `keel rollout start FLAGS --local`. */
  const startRollout = (f: Flags) => run("rollout", "start", ...flags(f), "--local");

  beforeAll(async () => {
    dir = await tempDir("rollout-cli");
    cloud = await startLocalCloud({ dir: join(dir, ".keel") });
    wiring = await startFunctionsWiring(cloud, {
      tickSeconds: 1,
      logLevel: "silent",
      infoFile: join(dir, ".keel", "local.json"),
    });
    await writeKey(dir, "k", 7);
    await writeKey(dir, "other", 8);
    await writeFile(join(dir, "image.squashfs"), Buffer.alloc(300_000, 5));
    const init = await rootInit(dir, { keys: "k.pub", threshold: "1", sign: "k.key", out: "root.json" });
    expect(init.stderr).toBe("");
    for (const [v, c, key] of [
      ["1.0.0", "1", "k.key"],
      ["1.1.0", "2", "k.key"],
      ["6.6.6", "9", "other.key"],
    ] as const) {
      const s = await run(
        "release",
        "sign",
        "image.squashfs",
        ...flags({ version: v, counter: c, compatible: "x86_64-sim", key, out: `release-${v}.json` }),
      );
      expect(s.stderr).toBe("");
    }
  }, 180_000);

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.stop()));
    await wiring?.stop();
    await cloud?.stop();
  });

  it("publishes a release with its trust root and waits for VERIFIED", async () => {
    const r = await run(
      "release",
      "publish",
      "image.squashfs",
      "release-1.0.0.json",
      "--root",
      "root.json",
      "--local",
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("uploaded trust/root.1.json");
    expect(r.stdout).toContain("uploaded releases/1.0.0/image.squashfs (300000 bytes)");
    expect(r.stdout).toMatch(/release 1.0.0 VERIFIED \(counter 1, signed by 1 key\(s\) under root v1\)/);
    expect(r.code).toBe(0);
    expect((await run("release", "publish", "image.squashfs", "release-1.1.0.json", "--local")).code).toBe(0);
  });

  it("prints why a release was REJECTED and exits non-zero", async () => {
    const r = await run("release", "publish", "image.squashfs", "release-6.6.6.json", "--local");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/release 6.6.6 was REJECTED: release role .*0 valid signature\(s\) of 1 needed/);
    const list = await run("releases", "--local");
    expect(list.stdout).toMatch(/1\.0\.0 +VERIFIED +1 +300000/);
    expect(list.stdout).toMatch(/6\.6\.6 +REJECTED .*not trusted for release/);
  });

  it("refuses to upload an image that is not the one the manifest signs", async () => {
    await writeFile(join(dir, "other.squashfs"), Buffer.alloc(10, 1));
    const r = await run("release", "publish", "other.squashfs", "release-1.0.0.json", "--local");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /other.squashfs: is not the image release-1.0.0.json signs: image size mismatch/,
    );
  });

  it("registers a device whose written files connect to the broker, and rolls out to it", async () => {
    const reg = await run(
      "fleet",
      "register",
      "dev-1",
      ...flags({ fleet: "edge", out: "dev-1", version: "1.0.0" }),
      "--local",
    );
    expect(reg.stderr).toBe("");
    expect(reg.stdout).toMatch(/registered dev-1 in fleet edge \(bucket group edge-b\d\d\)/);
    const snippet = JSON.parse(await readFile(join(dir, "dev-1", "agent.snippet.json"), "utf8"));
    const info = JSON.parse(await readFile(join(dir, ".keel", "local.json"), "utf8"));
    expect(snippet).toEqual({
      thingName: "dev-1",
      mqtt: { endpoint: info.mqtt, cert: "cert.pem", key: "key.pem", ca: "ca.pem" },
    });
    const read = (f: string) => readFile(join(dir, "dev-1", f), "utf8");
    const device = new SimDevice(
      { thingName: "dev-1", certificatePem: await read("cert.pem"), privateKey: await read("key.pem") },
      snippet.mqtt.endpoint,
      await read("ca.pem"),
      "SUCCEEDED",
    );
    await device.connect();
    devices.push(device);
    expect(
      (await run("fleet", "register", "dev-1", "--fleet", "edge", "--out", "dev-1b", "--local")).stderr,
    ).toMatch(/409 thing dev-1 is already registered/);

    const start = await startRollout({
      release: "1.1.0",
      fleet: "edge",
      waves: "canary:dev-1,100",
      bake: "0s",
    });
    expect(start.stderr).toBe("");
    const id = /started rollout (\S+)/.exec(start.stdout)?.[1] ?? "";
    const watch = await run("rollout", "status", id, "--watch", "--interval", "0.2", "--local");
    expect(watch.stdout).toContain(`rollout ${id}: release 1.1.0 to fleet edge — SUCCEEDED`);
    // The canary is also in its bucket group, so wave 2 reached it again; the table shows it under wave 1,
    // which updated it (wave 2 found it on 1.1.0 already).
    expect(watch.stdout).toMatch(/dev-1 +1 +SUCCEEDED +version=1\.1\.0/);
    expect(watch.stdout).toMatch(/ {2}wave 1 canary dev-1 +\[#{30}\] done {2}1 ok/);
    // Both waves count it; the rollout's totals count it once.
    expect(watch.stdout).toContain("  devices: 1 — 1 succeeded, 0 failed (0 rolled back)\n");
    // The fleet's versions follow the device events and the rollout's last effect: allow them to land.
    await vi.waitFor(
      async () => {
        const fleet = await run("fleet", "status", "edge", "--local");
        expect(fleet.stdout).toContain("fleet edge: 1 device(s), reached 1.1.0");
        expect(fleet.stdout).toMatch(/1\.1\.0 +1/);
      },
      { timeout: 20_000, interval: 200 },
    );
    expect((await run("rollout", "list", "--local")).stdout).toMatch(
      new RegExp(`${id} +1\\.1\\.0 +edge +SUCCEEDED +2/2`),
    );
  });

  it("pauses, resumes and aborts a rollout; a change that does not apply fails with the API's reason", async () => {
    // lab-1 never connects, so its canary wave keeps the rollout running.
    expect(
      (await run("fleet", "register", "lab-1", "--fleet", "lab", "--out", "lab-1", "--local")).code,
    ).toBe(0);
    const start = await startRollout({ release: "1.1.0", fleet: "lab", waves: "canary:lab-1,50,100" });
    const id = /started rollout (\S+)/.exec(start.stdout)?.[1] ?? "";
    expect((await run("rollout", "pause", id, "--local")).stdout).toBe(`rollout ${id} is PAUSED\n`);
    expect((await run("rollout", "resume", id, "--local")).stdout).toBe(`rollout ${id} is RUNNING\n`);
    const abort = await run("rollout", "abort", id, "--reason", "wrong build", "--local");
    expect(abort.stdout).toMatch(
      new RegExp(
        `rollout ${id} is ABORTED: aborted by arn:aws:iam::000000000000:user/keel-local: wrong build`,
      ),
    );
    const again = await run("rollout", "abort", id, "--local");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/409 rollout .* is already ABORTED/);
  });

  it("reports a bad rollout request with the field the API named", async () => {
    const r = await startRollout({ release: "1.1.0", fleet: "edge", waves: "50,20,100" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /400 invalid rollout request: waves\[1\]\.percent: must be more than the previous wave's 50/,
    );
    const timeout = await startRollout({ release: "1.1.0", fleet: "edge", waves: "100", timeout: "30s" });
    expect(timeout.code).not.toBe(0);
    expect(timeout.stderr).toMatch(/--timeout.*30s is not a whole number of minutes/);
  });
});
