/**
 * Kubernetes benchmark: a 100-node cluster on the stand-in updated in three waves (1 %, 10 %, 100 %), every
 * node running the agent's real coordination (device/kubernetes: health gate, reboot slot over Leases,
 * cordon, drain through the Eviction API with a PDB, re-check, Node Ready with a new bootID, uncordon and
 * release) through @kubernetes/client-node, with a simulated half-second reboot. maxUnavailable 1 is the
 * baseline; maxUnavailable 5 is printed beside it. Figures: time to finish, the most nodes unavailable at
 * once (watched on the stand-in), drains, evictions refused by the PDB, PDB violations, and how often the
 * nodes listed Nodes and read a slot Lease (counted at the stand-in). Not part of `npm test`.
 * KEEL_BENCH_K8S_NODES sets the cluster size (default 100) for a shorter run on a busy machine.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { systemClock } from "../device/clock.ts";
import { createKubeClient, loadKubeConfig } from "../device/kubernetes/client.ts";
import { KubernetesConfigSchema } from "../device/kubernetes/config.ts";
import { KubernetesCoordinator } from "../device/kubernetes/coordinator.ts";
import { createLogger } from "../device/logger.ts";
import { openCertificateAuthority } from "../local/ca.ts";
import { createClock } from "../local/clock.ts";
import { startKubeStandIn } from "../local/k8s/standin.ts";

const nodesEnv = z.coerce
  .number()
  .int()
  .min(2)
  .max(1000)
  .default(100)
  .safeParse(process.env.KEEL_BENCH_K8S_NODES);
if (!nodesEnv.success) throw new Error(`KEEL_BENCH_K8S_NODES must be a whole number from 2 to 1000`);
const NODES = nodesEnv.data;
const WAVES = [0.01, 0.1, 1];
const REBOOT_MS = 500;

interface Figures {
  maxUnavailable: number;
  seconds: number;
  maxUnavailableObserved: number;
  drains: number;
  evictionsBlocked: number;
  pdbViolations: number;
  nodeLists: number;
  leaseReads: number;
}

async function once(maxUnavailable: number): Promise<Figures> {
  const dir = await mkdtemp(join(tmpdir(), "keel-bench-k8s-"));
  const ca = await openCertificateAuthority(join(dir, "ca"));
  let nodeLists = 0;
  let leaseReads = 0;
  const kube = await startKubeStandIn({
    onRequest: (r) => {
      if (r.method === "GET" && r.path === "/api/v1/nodes") nodeLists++;
      else if (r.method === "GET" && r.path.includes("/leases/")) leaseReads++;
    },
    dataDir: join(dir, "k8s"),
    clock: createClock({ timeScale: 1 }),
    podStartMs: 200,
    tls: { ...ca.server, caPem: ca.caCertPem },
  });
  try {
    const names = Array.from({ length: NODES }, (_, i) => `node-${String(i).padStart(3, "0")}`);
    for (const name of names) kube.cluster.addNode({ name, ready: true, bootID: `${name}-0` });
    kube.cluster.addDaemonSet("kube-system", "cni", { app: "cni" });
    kube.cluster.addReplicaSet("default", "web", { app: "web" }, 30, 0);
    kube.cluster.addPdb("default", "web", { maxUnavailable: 2, selector: { matchLabels: { app: "web" } } });
    await new Promise((r) => setTimeout(r, 500));
    const kubeconfig = await kube.writeKubeconfig(join(dir, "kubeconfig"));
    const client = createKubeClient(loadKubeConfig(kubeconfig));
    const config = KubernetesConfigSchema.parse({ maxUnavailable, pollIntervalMs: 1000, maxBackoffMs: 2000 });
    const logger = createLogger({ level: "error" });
    const update = async (name: string, boot: number) => {
      const signal = new AbortController().signal;
      const c = new KubernetesCoordinator({
        config: { ...config, nodeName: name },
        thingName: name,
        client,
        clock: systemClock(),
        logger,
      });
      await c.waitForSlot(signal, () => {});
      await c.cordonAndDrain(signal);
      await c.beforeReboot();
      kube.cluster.setNodeReady(name, false);
      await new Promise((r) => setTimeout(r, REBOOT_MS));
      kube.cluster.setNodeReady(name, true, { bootID: `${name}-${boot}` });
      const ready = await c.nodeReady(30_000, signal);
      if (!ready.ok) throw new Error(ready.reason);
      await c.finish();
    };
    kube.cluster.resetStats();
    nodeLists = 0;
    leaseReads = 0;
    const started = Date.now();
    let done = 0;
    for (const share of WAVES) {
      const upTo = Math.ceil(NODES * share);
      await Promise.all(names.slice(done, upTo).map((n) => update(n, 1)));
      done = upTo;
    }
    const seconds = (Date.now() - started) / 1000;
    const s = kube.cluster.stats;
    return {
      maxUnavailable,
      seconds,
      maxUnavailableObserved: s.maxUnavailableObserved,
      drains: s.drains,
      evictionsBlocked: s.evictionsBlocked,
      pdbViolations: s.pdbViolations,
      nodeLists,
      leaseReads,
    };
  } finally {
    await kube.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  console.log(
    `${NODES} nodes, waves ${WAVES.map((w) => `${w * 100}%`).join(" / ")}, ${REBOOT_MS} ms simulated reboot`,
  );
  const base = await once(1);
  const wide = await once(5);
  const rows: Array<[string, (f: Figures) => string]> = [
    ["time to finish (s)", (f) => f.seconds.toFixed(1)],
    ["max nodes unavailable at once", (f) => String(f.maxUnavailableObserved)],
    ["drains", (f) => String(f.drains)],
    ["evictions refused by the PDB (429)", (f) => String(f.evictionsBlocked)],
    ["PDB violations", (f) => String(f.pdbViolations)],
    ["Node lists (GET /api/v1/nodes)", (f) => String(f.nodeLists)],
    ["slot Lease reads", (f) => String(f.leaseReads)],
  ];
  console.log(`${"".padEnd(36)}${"maxUnavailable 1 (baseline)".padEnd(30)}maxUnavailable 5`);
  for (const [label, get] of rows) console.log(`${label.padEnd(36)}${get(base).padEnd(30)}${get(wide)}`);
  console.log(`speed-up: ${(base.seconds / wide.seconds).toFixed(2)}× with 5 slots`);
}
