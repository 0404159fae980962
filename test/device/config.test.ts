import { link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError } from "../../core/errors.ts";
import { loadAgentConfig } from "../../device/config.ts";
import { AgentConfigError, SameSlotError } from "../../device/errors.ts";

describe("agent config", () => {
  let dir: string;
  const base = {
    thingName: "edge-1",
    hardware: "rpi4",
    slots: { A: "/dev/disk/by-partlabel/keel-a", B: "/dev/disk/by-partlabel/keel-b" },
    bootloader: { type: "grub", envFile: "/boot/efi/EFI/keel/grubenv" },
    mqtt: {
      endpoint: "mqtts://iot.example.com:8883",
      cert: "certs/device.pem",
      key: "certs/device.key",
      ca: "/etc/keel/ca.pem",
    },
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function write(value: unknown): Promise<string> {
    const p = join(dir, `agent-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(p, typeof value === "string" ? value : JSON.stringify(value));
    return p;
  }

  it("applies the documented defaults and resolves relative paths against the file", async () => {
    const c = await loadAgentConfig(await write(base), {}, {});
    expect(c).toMatchObject({
      stateDir: "/var/lib/keel",
      cmdline: "/proc/cmdline",
      trustRoot: "/usr/share/keel/root.json",
      reboot: { command: "systemctl reboot" },
      hooks: { preReboot: [], postCommit: [] },
    });
    expect(c.mqtt?.cert).toBe(join(dir, "certs/device.pem"));
    expect(c.health.map((h) => h.type)).toEqual(["http", "broker"]);
    expect(c.health[0]).toMatchObject({ url: "http://127.0.0.1:10248/healthz", expect: "ok" });
  });

  it("has deadlines for every network read and a bound on trusted time, all overridable", async () => {
    const c = await loadAgentConfig(await write(base), {}, {});
    expect(c.download).toMatchObject({
      headersTimeoutMs: 30_000,
      idleTimeoutMs: 30_000,
      documentTimeoutMs: 120_000,
      imageTimeoutMs: 24 * 3600_000,
    });
    expect(c.trustedTime).toEqual({ maxAheadHours: 24 });
    const set = await loadAgentConfig(
      await write({ ...base, trustedTime: { maxAheadHours: 0 }, download: { headersTimeoutMs: 500 } }),
      {},
      {},
    );
    expect(set.trustedTime.maxAheadHours).toBe(0);
    expect(set.download.headersTimeoutMs).toBe(500);
    for (const [bad, path] of [
      [{ download: { headersTimeoutMs: 0 } }, "download.headersTimeoutMs"],
      [{ download: { imageTimeoutMs: 1.5 } }, "download.imageTimeoutMs"],
      [{ trustedTime: { maxAheadHours: -1 } }, "trustedTime.maxAheadHours"],
      [{ trustedTime: { maxAheadHours: 1, extra: 1 } }, "trustedTime"],
    ] as const) {
      const err = await loadAgentConfig(await write({ ...base, ...bad }), {}, {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentConfigError);
      expect(describeError(err)).toContain(path);
    }
  });

  it("refuses a config file with a member given twice (which one wins would be a guess)", async () => {
    const text = JSON.stringify(base).replace('"hardware":', '"hardware":"x86","hardware":');
    const err = await loadAgentConfig(await write(text), {}, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentConfigError);
    expect(describeError(err)).toMatch(/hardware: .*member "hardware" appears twice/);
  });

  it("layers file, then flags, then environment", async () => {
    const file = await write(base);
    const c = await loadAgentConfig(
      file,
      { thingName: "from-flag", stateDir: "/flag/state" },
      { KEEL_STATE_DIR: "/env/state" },
    );
    expect(c.thingName).toBe("from-flag");
    expect(c.stateDir).toBe("/env/state");
  });

  it.each([
    [{ ...base, thingName: "bad name" }, /thingName: may contain only/],
    [
      { ...base, mqtt: { ...base.mqtt, endpoint: "http://x" } },
      /mqtt\.endpoint: must look like mqtts:\/\/host:port/,
    ],
    [{ ...base, bootloader: { type: "lilo" } }, /bootloader/],
    [{ ...base, slots: { A: "/dev/a" } }, /slots\.B/],
    [{ ...base, health: [{ type: "tcp" }] }, /health\[0\]\.port/],
    [{ ...base, surprise: true }, /surprise/],
  ])("refuses %j with the field at fault", async (value, message) => {
    const err = await loadAgentConfig(await write(value), {}, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentConfigError);
    expect(describeError(err)).toMatch(message);
  });

  it("names the file when it is not JSON", async () => {
    const p = await write("{ nope");
    await expect(loadAgentConfig(p, {}, {})).rejects.toThrow(/agent config .*not valid UTF-8 JSON/);
  });
});

describe("device/agent.example.json", () => {
  it("is a valid config", async () => {
    const c = await loadAgentConfig(
      new URL("../../device/agent.example.json", import.meta.url).pathname,
      {},
      {},
    );
    expect(c.thingName).toBe("edge-0001");
    expect(c.health).toHaveLength(3);
  });
});

describe("slots that are the same storage", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-slots-"));
    await writeFile(join(dir, "a.img"), Buffer.alloc(4096));
    await writeFile(join(dir, "b.img"), Buffer.alloc(4096));
    await symlink(join(dir, "a.img"), join(dir, "a-link.img"));
    await link(join(dir, "a.img"), join(dir, "a-hard.img"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const config = (A: string, B: string) =>
    JSON.stringify({
      thingName: "edge-1",
      hardware: "rpi4",
      slots: { A, B },
      bootloader: { type: "grub", envFile: "grubenv" },
    });

  it.each([
    ["the same path", "a.img", "a.img", /are the same file/],
    ["a path and a symlink to it", "a.img", "a-link.img", /are the same file/],
    ["two names of one inode (hard link)", "a.img", "a-hard.img", /are the same file/],
    ["one path spelled two ways", "a.img", "./sub/../a.img", /are the same file/],
  ])("refuses %s with AgentConfigError naming both", async (_name, A, B, message) => {
    await mkdir(join(dir, "sub"), { recursive: true });
    const p = join(dir, "agent.json");
    await writeFile(p, config(A, B));
    const err = await loadAgentConfig(p, {}, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentConfigError);
    expect(describeError(err)).toMatch(message);
    expect(describeError(err)).toContain(`slots A (${join(dir, A)})`);
    expect((err as Error).cause).toBeInstanceOf(SameSlotError);
  });

  it("accepts two distinct files", async () => {
    const p = join(dir, "agent.json");
    await writeFile(p, config("a.img", "b.img"));
    expect((await loadAgentConfig(p, {}, {})).slots).toEqual({
      A: join(dir, "a.img"),
      B: join(dir, "b.img"),
    });
  });
});
