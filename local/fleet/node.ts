/**
 * One simulated node: the real keel-agent (device/agent.ts) over file-backed A/B slots, a real GRUB
 * environment block, a kernel command line file and the simulated firmware (device/boot/). Nothing of the
 * agent is modelled: a "reboot" stops the agent, lets the firmware pick a slot exactly as GRUB would
 * (mutating the environment), writes `keel.slot=X` to the command line and starts a fresh Agent, which then
 * resumes from the state it persisted. What the booted image holds (etc/keelos-release) decides whether the
 * node's simulated kubelet is healthy.
 */
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Agent } from "../../device/agent.ts";
import { createBootControl, createSimulatedFirmware } from "../../device/boot/factory.ts";
import { GrubEnvFile } from "../../device/boot/grubenv.ts";
import type { BootControl, SimulatedFirmware, Slot } from "../../device/boot/types.ts";
import { systemClock } from "../../device/clock.ts";
import { type AgentConfig, parseAgentConfig } from "../../device/config.ts";
import type { Logger } from "../../device/logger.ts";
import type { State } from "../../device/state-machine.ts";
import type { Cluster } from "../k8s/cluster.ts";
import { FleetError } from "./errors.ts";
import { type ImageInfo, readImageInfo } from "./image-info.ts";

/** What the simulator shows per node: the agent's persisted state, or where the node is in its boot. */
export type NodePhase = State | "off" | "booting" | "down";

export interface NodeSnapshot {
  thing: string;
  phase: NodePhase;
  booted: Slot | null;
  /** VERSION from the booted slot's image; null when the slot holds no readable image. */
  version: string | null;
  kubeletHealthy: boolean;
  boots: number;
}

export interface NodeFiles {
  dir: string;
  slotA: string;
  slotB: string;
  grubenv: string;
  cmdline: string;
  stateDir: string;
  cert: string;
  key: string;
}

export function nodeFiles(dir: string): NodeFiles {
  return {
    dir,
    slotA: join(dir, "slot-a.img"),
    slotB: join(dir, "slot-b.img"),
    grubenv: join(dir, "grubenv"),
    cmdline: join(dir, "cmdline"),
    stateDir: join(dir, "state"),
    cert: join(dir, "cert.pem"),
    key: join(dir, "key.pem"),
  };
}

export interface NodeSetup {
  thing: string;
  dir: string;
  hardware: string;
  /** Trust root 1 as shipped in the image. */
  trustRoot: string;
  mqtt: { endpoint: string; ca: string };
  /** URL of this node's kubelet healthz on the shared simulated kubelet server. */
  kubeletUrl: string;
  factory: { version: string; releaseCounter: number };
  logger: Logger;
  /** Deadline for the every-boot health check (a job's policy sets its own). */
  healthDeadlineSeconds: number;
  onChange: (node: SimNode) => void;
  /** The node is a Kubernetes Node in this cluster (docs/kubernetes.md); its agent coordinates reboots there. */
  kube?: FleetKubernetes;
}

export interface FleetKubernetes {
  cluster: Cluster;
  kubeconfig: string;
  maxUnavailable: number;
}

/** The Kubernetes node name of a simulated thing. */
export const nodeNameOfThing = (thing: string) => thing.toLowerCase().replace(/[^a-z0-9.-]/g, "-");

/**
 * Lays down a factory-fresh node: slot A holds the factory image and is committed, slot B is empty (sparse)
 * and not bootable, the command line says A. The slots are sparse files of `slotSize` bytes.
 */
export async function installFactoryNode(
  files: NodeFiles,
  factoryImage: Buffer,
  slotSize: number,
  credentials: { certificatePem: string; privateKey: string },
): Promise<void> {
  if (factoryImage.length > slotSize) {
    throw new FleetError(
      `the factory image (${factoryImage.length} bytes) does not fit a ${slotSize}-byte slot`,
    );
  }
  await rm(files.dir, { recursive: true, force: true });
  await mkdir(files.stateDir, { recursive: true });
  const a = await open(files.slotA, "w");
  try {
    await a.write(factoryImage, 0, factoryImage.length, 0);
    await a.truncate(slotSize);
  } finally {
    await a.close();
  }
  const b = await open(files.slotB, "w");
  try {
    await b.truncate(slotSize);
  } finally {
    await b.close();
  }
  // The factory's grub-editenv: A committed and first, B never booted.
  await new GrubEnvFile(files.grubenv).update([
    ["ORDER", "A B"],
    ["A_OK", "1"],
    ["A_TRY", "0"],
    ["B_OK", "0"],
    ["B_TRY", "0"],
  ]);
  await writeFile(files.cmdline, "BOOT_IMAGE=/vmlinuz ro keel.slot=A quiet\n");
  await writeFile(files.cert, credentials.certificatePem, { mode: 0o644 });
  await writeFile(files.key, credentials.privateKey, { mode: 0o600 });
}

/** How many times the firmware is power-cycled before a node that boots nothing is left down. */
const MAX_POWER_CYCLES = 4;

export class SimNode {
  readonly files: NodeFiles;
  readonly config: AgentConfig;
  readonly boot: BootControl;
  readonly firmware: SimulatedFirmware;
  private agent: Agent | null = null;
  private phaseValue: NodePhase = "off";
  private bootedSlot: Slot | null = null;
  private image: ImageInfo | null = null;
  private bootCount = 0;
  private rebooting: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly setup: NodeSetup) {
    this.files = nodeFiles(setup.dir);
    this.config = parseAgentConfig(
      {
        thingName: setup.thing,
        hardware: setup.hardware,
        stateDir: this.files.stateDir,
        trustRoot: setup.trustRoot,
        slots: { A: this.files.slotA, B: this.files.slotB },
        cmdline: this.files.cmdline,
        bootloader: { type: "grub", envFile: this.files.grubenv },
        mqtt: {
          endpoint: setup.mqtt.endpoint,
          cert: this.files.cert,
          key: this.files.key,
          ca: setup.mqtt.ca,
        },
        // Broker first (a node that cannot reach IoT cannot report), then the kubelet, as on a real node.
        health: [
          { type: "broker", retries: 120, intervalSeconds: 0.25, timeoutSeconds: 1 },
          { type: "http", url: setup.kubeletUrl, retries: 3, intervalSeconds: 0.5, timeoutSeconds: 2 },
        ],
        healthDeadlineSeconds: setup.healthDeadlineSeconds,
        reboot: { command: "false" }, // never run: the simulator injects reboot()
        factory: setup.factory,
        download: { retries: 5, initialBackoffMs: 200, maxBackoffMs: 2000 },
        reportBackoff: { initialMs: 200, maxMs: 5000 },
        log: { level: "info" },
        ...(setup.kube
          ? {
              kubernetes: {
                kubeconfig: setup.kube.kubeconfig,
                nodeName: nodeNameOfThing(setup.thing),
                maxUnavailable: setup.kube.maxUnavailable,
                pollIntervalMs: 200,
                maxBackoffMs: 1000,
                leaseDurationSeconds: 30,
                drainTimeoutSeconds: 60,
              },
            }
          : {}),
      },
      setup.dir,
      `simulated node ${setup.thing}`,
    );
    this.boot = createBootControl(this.config.bootloader);
    this.firmware = createSimulatedFirmware(this.config.bootloader);
  }

  get thing(): string {
    return this.setup.thing;
  }

  get phase(): NodePhase {
    return this.phaseValue;
  }

  /** The simulated kubelet answers ok only on a running node whose booted image has a healthy kubelet. */
  get kubeletHealthy(): boolean {
    return this.agent !== null && this.image?.kubeletHealthy === true;
  }

  snapshot(): NodeSnapshot {
    return {
      thing: this.setup.thing,
      phase: this.phaseValue,
      booted: this.bootedSlot,
      version: this.image?.version ?? null,
      kubeletHealthy: this.kubeletHealthy,
      boots: this.bootCount,
    };
  }

  /** Idle, not waiting for a reboot, and the booted slot committed as good. */
  async settled(): Promise<boolean> {
    if (this.phaseValue !== "Idle" || !this.agent || this.agent.awaitingReboot || !this.bootedSlot)
      return false;
    return (await this.boot.readState()).slots[this.bootedSlot].good;
  }

  private setPhase(p: NodePhase): void {
    this.phaseValue = p;
    this.setup.onChange(this);
  }

  /** Power on: the firmware picks a slot, the command line follows, the agent starts on it. */
  async powerOn(): Promise<void> {
    this.setPhase("booting");
    for (let cycle = 0; cycle < MAX_POWER_CYCLES; cycle++) {
      if (this.stopped) return;
      const choice = await this.firmware.boot();
      this.bootCount++;
      if (choice !== "A" && choice !== "B") {
        // rescue / halt: no KeelOS runs, no agent; the loader has reset its counters, so power-cycle.
        this.setup.logger.warn("firmware booted no slot", { thing: this.setup.thing, choice });
        continue;
      }
      const slot = this.config.slots[choice];
      const image = await readImageInfo(slot);
      if (!image) {
        // The kernel would not find a root filesystem: the boot fails and the firmware tries again.
        this.setup.logger.warn("slot holds no bootable image", { thing: this.setup.thing, slot: choice });
        continue;
      }
      await writeFile(this.files.cmdline, `BOOT_IMAGE=/vmlinuz ro keel.slot=${choice} quiet\n`);
      this.bootedSlot = choice;
      this.image = image;
      await this.startAgent();
      this.kubeletReported();
      return;
    }
    this.bootedSlot = null;
    this.image = null;
    this.setPhase("down");
  }

  private async startAgent(): Promise<void> {
    const agent: Agent = new Agent({
      config: this.config,
      boot: this.boot,
      clock: systemClock(),
      logger: this.setup.logger.child({ thing: this.setup.thing }),
      onTransition: (_from, _event, to) => {
        if (this.agent === agent) this.setPhase(to);
      },
      reboot: async () => {
        // From outside the agent's own call stack, as the OS would: the agent only waits to be stopped.
        this.rebooting = new Promise((resolve) => setImmediate(() => void this.reboot().then(resolve)));
      },
    });
    this.agent = agent;
    await agent.start();
    this.setPhase(agent.state);
  }

  /**
   * The simulated kubelet's view in the cluster: the Node is Ready exactly when the kubelet is healthy, and
   * each boot has its own bootID (what the agent's Node Ready check compares).
   */
  private kubeletReported(): void {
    const kube = this.setup.kube;
    if (!kube) return;
    const name = nodeNameOfThing(this.setup.thing);
    const bootID = `${name}-boot-${this.bootCount}`;
    const osImage = `KeelOS ${this.image?.version ?? "unknown"}`;
    const known = kube.cluster.listNodes().some((n) => n.metadata.name === name);
    if (!known) kube.cluster.addNode({ name, ready: this.kubeletHealthy, bootID, osImage });
    else kube.cluster.setNodeReady(name, this.kubeletHealthy, { bootID, osImage });
  }

  private async reboot(): Promise<void> {
    const agent = this.agent;
    this.agent = null;
    this.kubeletReported(); // going down: NotReady until the next boot's kubelet reports
    this.setPhase("booting");
    try {
      await agent?.stop();
      if (!this.stopped) await this.powerOn();
    } catch (err) {
      this.setup.logger.error("reboot failed", { thing: this.setup.thing, error: err });
      this.setPhase("down");
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.rebooting;
    const agent = this.agent;
    this.agent = null;
    await agent?.stop();
    this.phaseValue = "off";
  }
}
