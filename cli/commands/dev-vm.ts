/**
 * `keel dev --vm`: one real KeelOS node under QEMU in the local fleet, next to the simulated ones
 * (docs/os-image.md#keel-dev---vm-a-real-node-in-the-local-fleet). The demo releases become real KeelOS
 * images (`keel os build`'s root image, through its cache) signed for the simulated hardware and for
 * QEMU; the node is registered through the rollout API like any thing, in a fleet of its own, with its
 * certificate, the cloud's CA and trust root on its persistence partition, and it reaches the cloud on
 * the host's loopback through QEMU user networking.
 */
import { access, copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { parseJsonWith } from "../../core/parse.ts";
import type { DevEnvironment, ReleaseImages } from "../../local/fleet/environment.ts";
import { buildOs, buildRootImage } from "../../os/build.ts";
import { type LabNode, QEMU_HARDWARE, writeLabNodeConfig } from "../../os/lab-node.ts";
import type { Firmware } from "../../os/qemu.ts";
import { startVmNode, type VmNode } from "../../os/vm-node.ts";
import { CliUsageError } from "../errors.ts";
import { buildImage } from "./release.ts";

const MiB = 1024 * 1024;
/** Slot size of the VM's disk and of every simulated node's slot file (sparse): a KeelOS image fits. */
export const VM_SLOT_MiB = 384;
/** What the VM's factory slot holds: the environment's first demo release. */
const FACTORY = { version: "1.0.0", releaseCounter: 1 };

export type Progress = (line: string) => void;

/** The demo releases as real KeelOS root images; the broken one's kubelet stand-in fails /healthz. */
export function keelosReleaseImages(progress: Progress, cacheDir?: string): ReleaseImages {
  return {
    dirName: "releases-keelos",
    compatible: [QEMU_HARDWARE],
    slotSize: VM_SLOT_MiB * MiB,
    async build(r, rootFile, out) {
      progress(`building KeelOS ${r.version} (keel os build's root image, cached by input)`);
      const root = await buildRootImage({
        trustRoot: rootFile,
        version: r.version,
        fault: r.brokenKubelet ? "unhealthy" : "none",
        // The simulated nodes read their kubelet's fate from /etc/keelos-release.
        ...(r.brokenKubelet ? { releaseLabels: { KUBELET: "broken" } } : {}),
        ...(cacheDir ? { cacheDir } : {}),
        pack: buildImage,
        progress: (m) => progress(`  keel os build: ${m}`),
      });
      await copyFile(root.image, out);
    },
  };
}

/** What a VM node's directory remembers between `keel dev --vm` runs. */
const VmStateSchema = z.object({
  thing: z.string(),
  fleet: z.string(),
  mqtt: z.string(),
  s3: z.string(),
  certificatePem: z.string(),
  privateKey: z.string(),
});
type VmState = z.infer<typeof VmStateSchema>;

export interface DevVm {
  thing: string;
  fleet: string;
  node: VmNode;
  stop(): Promise<void>;
}

const FleetThingsSchema = z.object({ things: z.array(z.object({ thingName: z.string() })) });

async function registered(env: DevEnvironment, fleet: string, thing: string): Promise<boolean> {
  const view = FleetThingsSchema.parse(await env.tooling.api.get(`/fleets/${encodeURIComponent(fleet)}`));
  return view.things.some((t) => t.thingName === thing);
}

async function readState(file: string): Promise<VmState | undefined> {
  const text = await readFile(file, "utf8").catch(() => undefined);
  return text === undefined ? undefined : parseJsonWith(VmStateSchema, text, file);
}

/**
 * Registers (or, on a restarted `keel dev`, finds) the VM node, builds its disk through the OS build
 * cache, and powers it on. The node's directory is `<dev dir>/vm/`: disk, overlay, serial.log.
 */
export async function startDevVm(
  env: DevEnvironment,
  o: { fleet: string; firmware: Firmware; progress: Progress; cacheDir?: string },
): Promise<DevVm> {
  const dir = join(env.paths.dir, "vm");
  const stateFile = join(dir, "node.json");
  const fleet = `${o.fleet}-vm`;
  const thing = `${fleet}-1`;
  let state = await readState(stateFile);
  const known = await registered(env, fleet, thing);
  if (known && state?.thing !== thing) {
    // The cloud hands out a private key once, at registration: without the node's files it cannot join.
    throw new CliUsageError(
      `${thing} is registered in fleet ${fleet} but its files are gone from ${dir}; remove the local cloud's data (or the whole directory) to start over`,
    );
  }
  const disk = join(dir, "os", "disk.img");
  const sameEndpoints = state?.mqtt === env.info.mqtt && state?.s3 === env.info.s3;
  const haveDisk = await access(disk).then(
    () => true,
    () => false,
  );
  if (!known || !state || !sameEndpoints || !haveDisk) {
    if (!known || !state) {
      await rm(dir, { recursive: true, force: true });
      o.progress(`registering the VM node ${thing} in fleet ${fleet}`);
      const creds = await env.tooling.registerThing(fleet, thing, FACTORY.version);
      state = { thing, fleet, mqtt: env.info.mqtt, s3: env.info.s3, ...creds };
    } else {
      // Same thing, new ports (or no disk): a fresh factory disk that points at them (back to 1.0.0).
      o.progress(`rebuilding ${thing}'s disk from the factory image for the local cloud's current ports`);
      await rm(join(dir, "disk.qcow2"), { force: true });
      state = { ...state, mqtt: env.info.mqtt, s3: env.info.s3 };
    }
    const node: LabNode = {
      thing,
      certificatePem: state.certificatePem,
      privateKey: state.privateKey,
      caFile: env.info.caFile,
      rootFile: env.paths.rootFile,
      mqtt: state.mqtt,
      s3: state.s3,
      factory: FACTORY,
    };
    const config = await writeLabNodeConfig(join(dir, "config"), node);
    await buildOs({
      out: join(dir, "os"),
      trustRoot: env.paths.rootFile,
      version: FACTORY.version,
      slotMiB: VM_SLOT_MiB,
      ...config,
      ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
      pack: buildImage,
      progress: (m) => o.progress(`  keel os build: ${m}`),
    });
    // The disk holds the key now; the loose copies are not needed.
    await rm(join(dir, "config"), { recursive: true, force: true });
    await writeFile(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  }
  const node = await startVmNode({
    disk,
    firmware: o.firmware,
    dir,
    log: o.progress,
  });
  o.progress(
    `VM node ${thing} (fleet ${fleet}) is booting KeelOS under QEMU (${o.firmware}, TCG)${node.resumed ? ", resuming its disk" : ""}; serial console: ${node.serialLog}\n  watch it with: tail -f ${node.serialLog}`,
  );
  return { thing, fleet, node, stop: () => node.stop() };
}
