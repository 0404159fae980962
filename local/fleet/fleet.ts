/**
 * The fleet simulator (docs/local-cloud.md): N real keel-agents in one process, each with its own thing,
 * certificate, file-backed A/B slots, GRUB environment and simulated firmware, plus one HTTP server standing
 * in for every node's kubelet. Agents share nothing but the event loop, so hundreds or thousands fit on a
 * laptop.
 */
import { access, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { mapLimit } from "../../core/concurrency.ts";
import { describeError } from "../../core/errors.ts";
import { AbortedError } from "../../device/errors.ts";
import type { Logger } from "../../device/logger.ts";
import { FleetError, WaitTimeoutError } from "./errors.ts";
import { startSimulatedKubelets } from "./kubelet.ts";
import { type FleetKubernetes, installFactoryNode, type NodeSnapshot, nodeFiles, SimNode } from "./node.ts";

export interface DeviceCredentials {
  certificatePem: string;
  privateKey: string;
}

export interface FleetOptions {
  /** Node directories live under it, one per thing. */
  dir: string;
  /** The fleet the things are registered in. */
  fleet: string;
  devices: number;
  /** Thing names are `<prefix>-0001`…; default the fleet name. */
  thingPrefix?: string;
  /** Broker URL (mqtts://) and the CA that signed its certificate. */
  mqtt: { endpoint: string; ca: string };
  /** Trust root 1 shipped in every node's image. */
  trustRoot: string;
  /** The SquashFS installed in slot A at the factory, and what it is. */
  factoryImage: string;
  factory: { version: string; releaseCounter: number };
  hardware: string;
  /** Size of each (sparse) slot file. @default 8 MiB */
  slotSize?: number;
  /** Registers a thing in the fleet and returns its certificate (POST /fleets/{fleet}/things). */
  register(thing: string): Promise<DeviceCredentials>;
  /** Resolves once the broker enforces every registration so far (mosquitto reloads its ACL). */
  registrationsSettled?: () => Promise<void>;
  /**
   * Keep nodes whose directory already holds a certificate (a restarted `keel dev`): they are powered on
   * again as they were, not re-registered or re-installed. @default false
   */
  reuse?: boolean;
  /** With `reuse`: the things the cloud has registered in the fleet; local files of others are stale. */
  registeredThings?: ReadonlySet<string>;
  /** Agent logs (structured JSON lines). */
  logger: Logger;
  /** Deadline of the every-boot health check. @default 60 */
  healthDeadlineSeconds?: number;
  /** Registrations and power-ons in flight at once. @default 16 */
  concurrency?: number;
  /** Called whenever a node changes phase (for live progress). */
  onChange?: (node: SimNode) => void;
  /** Aborting it stops registering and powering on (Ctrl-C during start-up); startFleet then rejects. */
  signal?: AbortSignal;
  /** Make the fleet a Kubernetes cluster: every node a Node, with workloads to drain (docs/kubernetes.md). */
  kubernetes?: FleetKubernetes;
}

/** The demo workload: a DaemonSet on every node and a replicated set across nodes with a budget. */
export const DEMO_NAMESPACE = "keel-demo";
export const DEMO_APP = "web";

function ensureWorkloads(kube: FleetKubernetes, devices: number): void {
  const c = kube.cluster;
  if (!c.listDaemonSets().some((d) => d.metadata.name === "node-agent")) {
    c.addDaemonSet(DEMO_NAMESPACE, "node-agent", { app: "node-agent" });
  }
  if (!c.listReplicaSets().some((r) => r.metadata.name === DEMO_APP)) {
    // One replica per node up to six. A one-node cluster gets one replica: with two on the only node, the
    // budget (maxUnavailable 1) could never let the second go while the node is cordoned, and every drain
    // would time out, as it would in a real cluster.
    const replicas = Math.max(1, Math.min(devices, 6));
    // Grace 0: evicted replicas go at once, so the demo's drains stay quick.
    c.addReplicaSet(DEMO_NAMESPACE, DEMO_APP, { app: DEMO_APP }, replicas, 0);
    c.addPdb(DEMO_NAMESPACE, DEMO_APP, { maxUnavailable: 1, selector: { matchLabels: { app: DEMO_APP } } });
  }
}

export interface SimulatedFleet {
  readonly fleet: string;
  readonly nodes: readonly SimNode[];
  thingNames(): string[];
  node(thing: string): SimNode | undefined;
  snapshot(): NodeSnapshot[];
  /** Resolves once every node is Idle on a committed slot; rejects after `timeoutMs` or when `signal` aborts. */
  waitSettled(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_SLOT_SIZE = 8 * 1024 * 1024;

export function thingName(prefix: string, index: number): string {
  return `${prefix}-${String(index + 1).padStart(4, "0")}`;
}

const interrupted = () => new AbortedError("fleet start-up interrupted");

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

export async function startFleet(o: FleetOptions): Promise<SimulatedFleet> {
  if (!Number.isInteger(o.devices) || o.devices < 1) {
    throw new FleetError(`a fleet needs a whole number of devices ≥ 1, got ${o.devices}`);
  }
  const prefix = o.thingPrefix ?? o.fleet;
  const slotSize = o.slotSize ?? DEFAULT_SLOT_SIZE;
  const limit = o.concurrency ?? 16;
  await mkdir(o.dir, { recursive: true });
  const factoryImage = await readFile(o.factoryImage).catch((err: unknown) => {
    throw new FleetError(`cannot read the factory image ${o.factoryImage}: ${describeError(err)}`, {
      cause: err,
    });
  });

  const byThing = new Map<string, SimNode>();
  const kubelets = await startSimulatedKubelets((thing) => byThing.get(thing)?.kubeletHealthy ?? false);
  const nodes: SimNode[] = [];
  const stopAll = async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await kubelets.stop();
  };

  try {
    const things = Array.from({ length: o.devices }, (_, i) => thingName(prefix, i));
    // Registration first, for the whole fleet: the broker must know every certificate before agents connect.
    await mapLimit(
      things,
      limit,
      async (thing) => {
        const files = nodeFiles(join(o.dir, thing));
        const known = o.registeredThings;
        const local = (await exists(files.cert)) && (await exists(files.grubenv));
        if (o.reuse && local && (known === undefined || known.has(thing))) return;
        if (o.reuse && known?.has(thing)) {
          // The cloud hands out a private key once, at registration: without the node's files it cannot join.
          throw new FleetError(
            `${thing} is registered in fleet ${o.fleet} but its files are gone from ${files.dir}; remove the local cloud's data (or the whole directory) to start over`,
          );
        }
        const credentials = await o.register(thing);
        await installFactoryNode(files, factoryImage, slotSize, credentials);
      },
      { signal: o.signal, aborted: interrupted },
    );
    await o.registrationsSettled?.();
    for (const thing of things) {
      const node = new SimNode({
        thing,
        dir: join(o.dir, thing),
        hardware: o.hardware,
        trustRoot: o.trustRoot,
        mqtt: o.mqtt,
        kubeletUrl: kubelets.urlFor(thing),
        factory: o.factory,
        logger: o.logger,
        healthDeadlineSeconds: o.healthDeadlineSeconds ?? 60,
        onChange: (n) => o.onChange?.(n),
        ...(o.kubernetes ? { kube: o.kubernetes } : {}),
      });
      nodes.push(node);
      byThing.set(thing, node);
    }
    await mapLimit(nodes, limit, (n) => n.powerOn(), { signal: o.signal, aborted: interrupted });
    if (o.kubernetes) ensureWorkloads(o.kubernetes, o.devices);
  } catch (err) {
    await stopAll();
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    fleet: o.fleet,
    nodes,
    thingNames: () => nodes.map((n) => n.thing),
    node: (thing) => byThing.get(thing),
    snapshot: () => nodes.map((n) => n.snapshot()),
    async waitSettled(timeoutMs, signal) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (signal?.aborted) throw new AbortedError("interrupted while waiting for the fleet to settle");
        const states = await Promise.all(nodes.map((n) => n.settled()));
        const pending = nodes.filter((_, i) => !states[i]);
        if (pending.length === 0) return;
        if (Date.now() > deadline) {
          const sample = pending
            .slice(0, 5)
            .map((n) => `${n.thing} (${n.phase})`)
            .join(", ");
          throw new WaitTimeoutError(
            `${pending.length} of ${nodes.length} node(s) did not settle within ${Math.round(timeoutMs / 1000)} s: ${sample}`,
          );
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}
