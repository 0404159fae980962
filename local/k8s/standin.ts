/**
 * startKubeStandIn: the Kubernetes API stand-in, persisted under `<dataDir>/cluster.json` like the rest of
 * the local cloud (a restart finds the same nodes, pods, leases and measurements), plus the kubeconfig that
 * points kubectl and @kubernetes/client-node at it.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { Clock } from "../contracts.ts";
import { Cluster, type ClusterState } from "./cluster.ts";
import { KubeStateError } from "./errors.ts";
import { startKubeServer } from "./server.ts";

export interface KubeStandInOptions {
  dataDir: string;
  clock: Clock;
  /** The local CA's server identity, and the CA certificate clients must trust. */
  tls: { cert: string; key: string; caPem: string };
  /** Preferred port (the previous run's); any free port when omitted. */
  port?: number;
  podStartMs?: number;
  onRequest?: (r: { method: string; path: string; status: number }) => void;
}

export interface KubeStandIn {
  readonly url: string;
  readonly token: string;
  readonly cluster: Cluster;
  /** Writes a kubeconfig for this stand-in (context `keel-local`); returns its path. */
  writeKubeconfig(path: string): Promise<string>;
  /** Persists now (also done shortly after every change). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** What is checked when state comes back from disk: the shape; objects were validated when written. */
const SavedSchema = z.object({
  token: z.string().regex(/^[a-f0-9]{32,}$/),
  state: z.looseObject({
    resourceVersion: z.number().int().min(1),
    nodes: z.array(z.any()),
    pods: z.array(z.any()),
    leases: z.array(z.any()),
    pdbs: z.array(z.any()),
    daemonSets: z.array(z.any()),
    replicaSets: z.array(z.any()),
    stats: z.looseObject({}),
  }),
});

export function kubeconfigYaml(url: string, token: string, caPem: string): string {
  // JSON is YAML: one format to write, and every kubeconfig reader accepts it.
  return `${JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "keel-local",
          cluster: { server: url, "certificate-authority-data": Buffer.from(caPem).toString("base64") },
        },
      ],
      users: [{ name: "keel-local", user: { token } }],
      contexts: [{ name: "keel-local", context: { cluster: "keel-local", user: "keel-local" } }],
      "current-context": "keel-local",
    },
    null,
    2,
  )}\n`;
}

export async function startKubeStandIn(o: KubeStandInOptions): Promise<KubeStandIn> {
  await mkdir(o.dataDir, { recursive: true });
  const file = join(o.dataDir, "cluster.json");
  const saved = await load(file);
  const token = saved?.token ?? randomBytes(24).toString("hex");

  let dirty = false;
  let saving: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const flush = async (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!dirty) return saving;
    dirty = false;
    const text = JSON.stringify({ token, state: cluster.toJSON() });
    saving = saving.then(async () => {
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    });
    return saving;
  };
  const cluster: Cluster = new Cluster(
    {
      clock: o.clock,
      podStartMs: o.podStartMs,
      onChange: () => {
        dirty = true;
        // Coalesce bursts (a drain changes many pods) into one write.
        timer ??= setTimeout(() => void flush().catch(() => {}), 200);
      },
    },
    saved?.state as ClusterState | undefined,
  );
  const server = await startKubeServer({
    cluster,
    token,
    tls: o.tls,
    now: () => o.clock.now(),
    port: o.port,
    onRequest: o.onRequest,
  });
  return {
    url: server.url,
    token,
    cluster,
    async writeKubeconfig(path) {
      await writeFile(`${path}.tmp`, kubeconfigYaml(server.url, token, o.tls.caPem), { mode: 0o600 });
      await rename(`${path}.tmp`, path);
      return path;
    },
    flush,
    async stop() {
      cluster.stop();
      await server.stop();
      dirty = true;
      await flush();
    },
  };
}

async function load(file: string): Promise<z.infer<typeof SavedSchema> | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KubeStateError(file, "cannot read", { cause: err });
  }
  let raw: unknown;
  try {
    // Not parseJsonText: a large simulated cluster's state is bigger than its 1 MiB document limit.
    raw = JSON.parse(text);
  } catch (err) {
    throw new KubeStateError(file, "not JSON", { cause: err });
  }
  const r = SavedSchema.safeParse(raw);
  if (!r.success)
    throw new KubeStateError(file, `not a saved cluster: ${r.error.message}`, { cause: r.error });
  return r.data;
}
