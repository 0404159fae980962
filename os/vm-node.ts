/**
 * One KeelOS node kept running under QEMU for `keel dev --vm`: QEMU runs with `-no-reboot`, so every
 * guest reset (the agent's reboot into the new slot, a panic, the watchdog) ends the process, and this
 * powers the machine on again at once on the same disk — a power cycle, which under TCG boots 2–3× faster
 * than a warm reset (docs/os-image.md). The serial console of every boot is appended to one log file.
 */
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { OsToolError } from "./errors.ts";
import { type Boot, boot, type Firmware, makeOverlay } from "./qemu.ts";

export interface VmNodeOptions {
  /** The node's disk (a qcow2 overlay is created on it in `dir` unless it exists). */
  disk: string;
  firmware: Firmware;
  /** Working directory: the overlay, the UEFI variables, serial.log. */
  dir: string;
  log: (line: string) => void;
}

export interface VmNode {
  serialLog: string;
  /** The disk QEMU writes (the base disk is never changed). */
  overlay: string;
  /** True when the overlay of an earlier run was kept. */
  resumed: boolean;
  /** Boots so far (1 after the first power-on). */
  boots(): number;
  /** Resolves when the node stops for good: stop() was called, or QEMU could not start. */
  done: Promise<void>;
  stop(): Promise<void>;
}

/** A QEMU that exits this soon after starting did not boot a guest; starting it again would only loop. */
const FAILED_START_MS = 3_000;

export async function startVmNode(o: VmNodeOptions): Promise<VmNode> {
  await mkdir(o.dir, { recursive: true });
  const overlay = join(o.dir, "disk.qcow2");
  // An overlay left by an earlier run is the node's disk as it was: the node resumes where it stopped.
  const resumed = await access(overlay).then(
    () => true,
    () => false,
  );
  if (!resumed) await makeOverlay(o.disk, overlay);
  const serialLog = join(o.dir, "serial.log");
  let current: Boot | undefined;
  let stopping = false;
  let boots = 0;
  const powerOn = async () => {
    boots += 1;
    current = await boot({ disk: overlay, firmware: o.firmware, workDir: o.dir, serialLog });
    return current;
  };
  const first = await powerOn();
  const done = (async () => {
    let b = first;
    for (;;) {
      const code = await b.exited;
      if (stopping) return;
      if (Date.now() - b.startedAt < FAILED_START_MS) {
        o.log(`VM node: QEMU exited with code ${code} right after starting; not restarting it`);
        throw new OsToolError("qemu-system-x86_64", `exited with code ${code} at start`, b.output());
      }
      o.log(`VM node: the guest reset (boot ${boots} ended); powering it on again`);
      b = await powerOn();
    }
  })();
  // stop() awaits `done`; a start failure is reported there and must not go unhandled meanwhile.
  done.catch(() => {});
  return {
    serialLog,
    overlay,
    resumed,
    boots: () => boots,
    done,
    async stop() {
      stopping = true;
      current?.kill();
      await current?.exited;
      await done.catch(() => {});
    },
  };
}
