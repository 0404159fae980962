/**
 * The power-cut torture run (docs/guarantees.md): standalone installs of a signed release on a simulated
 * node (file-backed slots, the real GRUB environment code and simulated firmware), with the power cut at
 * a random file system operation of a random power-on (a PowerSwitch cut point: a torn write, a rename
 * or fsync that lands or not), then the node boots through the firmware and resumes as a KeelOS node
 * does: the daemon's boot duty, then `install --resume` for an install cut before activation, or the
 * operator's first `install` again if it never got going. Some cuts land while resuming (a second cut).
 * Each install ends checked against what must be true: the node boots, and the outcome is the right one.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "../../device/agent.ts";
import { createBootControl, createSimulatedFirmware } from "../../device/boot/factory.ts";
import { GrubEnvFile } from "../../device/boot/grubenv.ts";
import { systemClock } from "../../device/clock.ts";
import { type AgentConfig, parseAgentConfig } from "../../device/config.ts";
import { createLogger } from "../../device/logger.ts";
import { STANDALONE_STATES } from "../../device/state-machine.ts";
import { StateStore } from "../../device/state-store.ts";
import { makeSigners, randomImage, type Signers, signRelease } from "../../test/device/helpers/release.ts";
import { installPowerSwitch, PowerCutError, PowerSwitch } from "./power.ts";

/** healthy: B passes its checks; sick: B fails them; broken: B never comes up (the firmware must fall back). */
export type Kind = "healthy" | "sick" | "broken";
const KINDS: readonly Kind[] = ["healthy", "healthy", "sick", "broken"];

export interface TortureOptions {
  cuts: number;
  lossy: boolean;
  seed: number;
  /** Runs only the install with this seed (a failure's replay). */
  replay?: number;
  /** Called after every finished install with the totals so far (progress). */
  onProgress?: (t: TortureTotals) => void;
}

export interface TortureTotals {
  cuts: number;
  /** Cuts that landed while resuming from an earlier cut. */
  secondCuts: number;
  installs: number;
  bricked: number;
  wrong: number;
  failedResumes: number;
  /** One line per failure: kind, seed of the install, what went wrong. */
  failures: string[];
}

/** mulberry32: a small seeded PRNG, so a failing install can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const IMAGE_SIZE = 150 * 1024 + 17;
const SLOT_SIZE = 256 * 1024;

interface Fixture {
  dir: string;
  signers: Signers;
  manifest: string;
  image: string;
}

async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "keel-torture-"));
  const signers = makeSigners();
  const image = randomImage(IMAGE_SIZE);
  await writeFile(join(dir, "image.squashfs"), image);
  await writeFile(
    join(dir, "release.json"),
    JSON.stringify(signRelease(signers, { version: "1.1.0", releaseCounter: 2, image })),
  );
  return { dir, signers, manifest: join(dir, "release.json"), image: join(dir, "image.squashfs") };
}

/** A fresh node: slot A committed with 1.0.0, B empty, running A. */
async function makeNode(fx: Fixture, root: string, kind: Kind): Promise<AgentConfig> {
  await rm(root, { recursive: true, force: true });
  await mkdir(join(root, "state"), { recursive: true });
  await writeFile(join(root, "slot-a.img"), Buffer.alloc(SLOT_SIZE, 0xaa));
  await writeFile(join(root, "slot-b.img"), Buffer.alloc(SLOT_SIZE, 0xbb));
  await writeFile(join(root, "root.json"), JSON.stringify(fx.signers.root));
  await writeFile(join(root, "cmdline"), "ro keel.slot=A\n");
  await new GrubEnvFile(join(root, "grubenv")).update([
    ["ORDER", "A B"],
    ["A_OK", "1"],
    ["A_TRY", "0"],
    ["B_OK", "0"],
    ["B_TRY", "0"],
  ]);
  return parseAgentConfig(
    {
      thingName: "torture",
      hardware: "rpi4",
      stateDir: "state",
      trustRoot: "root.json",
      slots: { A: "slot-a.img", B: "slot-b.img" },
      cmdline: "cmdline",
      bootloader: { type: "grub", envFile: "grubenv" },
      // A sick B fails its check; the every-boot check on A passes.
      health:
        kind === "sick"
          ? [
              {
                type: "command",
                command: `grep -q keel.slot=A ${join(root, "cmdline")}`,
                retries: 0,
                intervalSeconds: 0,
              },
            ]
          : [],
      factory: { version: "1.0.0", releaseCounter: 1 },
      download: { initialBackoffMs: 1, maxBackoffMs: 2, checkpointBytes: 65536 },
      reportBackoff: { initialMs: 1, maxMs: 2 },
      log: { level: "warn" },
    },
    root,
  );
}

type SessionEnd = "cut" | "reboot" | "idle" | "waiting" | "error";

/** One power-on of the node: the daemon's boot duty, then what the operator does; ends on a cut or a reboot. */
async function session(
  config: AgentConfig,
  fx: Fixture,
  sw: PowerSwitch,
): Promise<{ end: SessionEnd; error?: string }> {
  const store = new StateStore(config.stateDir);
  const boot = createBootControl(config.bootloader);
  // The daemon says when its boot duty is done: "air-gapped mode" (Idle) or "install --resume" (a cut install).
  let dutyDone = false;
  const logger = createLogger({
    level: "info",
    write: (l) => {
      if (process.env.KEEL_TORTURE_TRACE) console.error(l);
      if (l.includes("air-gapped mode") || l.includes("install --resume")) dutyDone = true;
    },
  });
  let rebooted = false;
  const agent = (onIdle?: () => void) =>
    new Agent({
      config,
      boot,
      clock: systemClock(),
      logger,
      connect: false,
      reboot: async () => {
        rebooted = true;
      },
      onTransition: (_f, _e, to) => (to === "Idle" ? onIdle?.() : undefined),
    });
  const settle = (err: unknown): { end: SessionEnd; error?: string } =>
    sw.dead || err instanceof PowerCutError ? { end: "cut" } : { end: "error", error: String(err) };
  sw.enabled = true;
  try {
    // The daemon starts at every boot: the every-boot commit, then it finishes or waits.
    let idle = false;
    const daemon = agent(() => {
      idle = true;
    });
    await daemon.start();
    let ended = false;
    void daemon.done().then(() => {
      ended = true;
    });
    while (!sw.dead && !rebooted && !idle && !dutyDone && !ended) await new Promise((r) => setTimeout(r, 2));
    const endedOnItsOwn = ended && !sw.dead;
    await daemon.stop();
    if (sw.dead) return { end: "cut" };
    if (rebooted) return { end: "reboot" };
    if (idle) return { end: "idle" };
    if (endedOnItsOwn) return { end: "error", error: "the daemon stopped on its own" };
    const now = await store.load();
    const operator = agent();
    const run =
      now.state === "Idle" && now.lastResult === null
        ? // The operator's install (again, if a cut stopped it before it saved anything).
          operator.installStandalone(fx.manifest, fx.image)
        : now.job?.standalone && STANDALONE_STATES.has(now.state)
          ? operator.resumeStandalone()
          : null;
    if (!run) return { end: "idle" };
    // After a cut the agent may retry a state's work (power off, every write fails): stop it there.
    let settled = false;
    const done: Promise<{ state: string; reason: string | null } | { error: unknown }> = run.then(
      (r) => r,
      (error: unknown) => ({ error }),
    );
    void done.then(() => {
      settled = true;
    });
    while (!settled && !sw.dead) await new Promise((r) => setTimeout(r, 2));
    if (sw.dead) {
      await operator.stop();
      await done;
      return { end: "cut" };
    }
    const r = await done;
    if ("error" in r) return settle(r.error);
    return r.state === "Rebooting"
      ? { end: "reboot" }
      : { end: "error", error: `install ended ${r.state}: ${r.reason}` };
  } catch (err) {
    return settle(err);
  } finally {
    sw.enabled = false;
  }
}

/** One install from a fresh node to its checked end, with one or two cuts. */
async function install(
  fx: Fixture,
  root: string,
  lossy: boolean,
  seed: number,
  t: TortureTotals,
  budget: number,
): Promise<void> {
  const random = prng(seed);
  const kind = KINDS[Math.floor(random() * KINDS.length)] as Kind;
  const config = await makeNode(fx, root, kind);
  const sw = new PowerSwitch(root, lossy, random);
  await installPowerSwitch(sw);
  const firmware = createSimulatedFirmware(config.bootloader);
  const fail = (what: "bricked" | "wrong" | "failedResumes", why: string) => {
    t[what]++;
    t.failures.push(`${what} (${kind}, ${lossy ? "lossy" : "write-through"}, seed ${seed}): ${why}`);
  };
  // One cut, sometimes a second one while resuming; each at a random operation of its power-on.
  let cutsLeft = Math.min(budget, random() < 0.3 ? 2 : 1);
  let cutsHere = 0;
  let bBoots = 0;
  let trialCut = false;
  for (let power = 0; power < 16; power++) {
    const cutAt = cutsLeft > 0 ? Math.floor(random() * 48) : null;
    await sw.powerOn(cutAt);
    const r = await session(config, fx, sw);
    if (process.env.KEEL_TORTURE_TRACE) {
      const st = await new StateStore(config.stateDir).load().catch((e: unknown) => String(e));
      const env = (await createBootControl(config.bootloader).readState()).raw;
      console.error(
        JSON.stringify({
          power,
          cutAt,
          ops: sw.ops,
          end: r.end,
          error: r.error,
          state: typeof st === "string" ? st : st.state,
          env,
        }),
      );
    }
    if (r.end === "cut") {
      cutsLeft--;
      cutsHere++;
      t.cuts++;
      if ((await readFile(config.cmdline, "utf8")).includes("keel.slot=B")) trialCut = true;
      if (cutsHere > 1) t.secondCuts++;
      await sw.restoreDurable();
    } else if (r.end === "error") {
      return fail("failedResumes", r.error ?? "");
    } else if (r.end === "idle") {
      return check(config, fx, firmware, kind, trialCut, fail);
    }
    // Otherwise a reboot was asked for; a cut point past this power-on's last operation is tried again.
    // Power cycle: the firmware picks a slot; a broken B hangs, so the node is power-cycled again.
    let slot = await firmware.boot();
    for (let hang = 0; hang < 4; hang++) {
      // Rescue means the loader found no good slot: a committed slot is never left for a cut while it
      // boots, so this is a broken promise however many cuts came in a row (docs/guarantees.md).
      if (slot === "rescue") return fail("bricked", "the firmware booted the rescue entry");
      if (slot !== "B" || kind !== "broken") break;
      bBoots++;
      if (bBoots > 1) return fail("wrong", "broken slot B was tried a second time");
      slot = await firmware.boot();
    }
    if (slot !== "A" && slot !== "B") return fail("bricked", `the firmware chose ${slot}`);
    if (kind === "broken" && slot === "B")
      return fail("wrong", "broken slot B still chosen after four power cycles");
    await writeFile(config.cmdline, `ro keel.slot=${slot}\n`);
  }
  fail("failedResumes", "no end after 16 power-ons");
}

/**
 * The end an install may have: Committed (B holds the image byte for byte and boots next; the node may
 * still run A when the cut fell between the commit decision and its bootloader write), or RolledBack (A
 * good and booting next, B never again). A healthy B may only roll back when a cut ended its trial boot.
 */
async function check(
  config: AgentConfig,
  fx: Fixture,
  firmware: ReturnType<typeof createSimulatedFirmware>,
  kind: Kind,
  trialCut: boolean,
  fail: (what: "bricked" | "wrong", why: string) => void,
): Promise<void> {
  const rec = await new StateStore(config.stateDir).load();
  const boot = await createBootControl(config.bootloader).readState();
  const result = rec.lastResult?.state;
  const next = await firmware.boot();
  if (next === "rescue" || next === "halt")
    return fail("bricked", `after ${result} the next boot chose ${next}`);
  if (result === "Committed" && kind === "healthy") {
    const image = await readFile(fx.image);
    const b = await readFile(config.slots.B);
    if (!b.subarray(0, image.length).equals(image))
      return fail("wrong", "committed slot B does not hold the image");
    if (next !== "B") return fail("wrong", `committed B but the next boot chose ${next}`);
    return;
  }
  if (result === "RolledBack" && (kind !== "healthy" || trialCut)) {
    if (next !== "A" || boot.slots.B.bootable || !boot.slots.A.good) {
      return fail(
        "wrong",
        `rolled back but next boot ${next}, B bootable ${boot.slots.B.bootable}, A good ${boot.slots.A.good}`,
      );
    }
    return;
  }
  fail(
    "wrong",
    `${kind} install ended ${result} (${rec.lastResult?.reason})${trialCut ? " after a cut during the trial" : ""}`,
  );
}

export async function torture(o: TortureOptions): Promise<TortureTotals> {
  const t: TortureTotals = {
    cuts: 0,
    secondCuts: 0,
    installs: 0,
    bricked: 0,
    wrong: 0,
    failedResumes: 0,
    failures: [],
  };
  const fx = await fixture();
  try {
    const next = prng(o.seed);
    // Installs whose cut point fell past their last operation cut nothing; bounded all the same.
    while (t.cuts < o.cuts && t.installs < o.cuts * 20) {
      const seed = o.replay ?? Math.floor(next() * 2 ** 31);
      await install(fx, join(fx.dir, "node"), o.lossy, seed, t, o.replay === undefined ? o.cuts - t.cuts : 2);
      t.installs++;
      o.onProgress?.(t);
      if (o.replay !== undefined) break;
    }
  } finally {
    await rm(fx.dir, { recursive: true, force: true });
  }
  return t;
}
