/**
 * A Kubernetes stand-in for tests: its own CA and data directory under a temp dir, port 0, a kubeconfig,
 * and the agent's client (@kubernetes/client-node) already pointed at it.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKubeClient, type KubeClient, loadKubeConfig } from "../../../device/kubernetes/client.ts";
import { openCertificateAuthority } from "../../../local/ca.ts";
import { createClock } from "../../../local/clock.ts";
import { ensureKubectl } from "../../../local/k8s/kubectl.ts";
import { type KubeStandIn, startKubeStandIn } from "../../../local/k8s/standin.ts";

export interface TestCluster {
  dir: string;
  standin: KubeStandIn;
  kubeconfig: string;
  client: KubeClient;
  caPem: string;
  /** Every request the stand-in answered, in order (tests count what a client asks). */
  requests: Array<{ method: string; path: string; status: number }>;
  /** A raw HTTPS request (for bodies no client would send). */
  api(
    method: string,
    path: string,
    body?: unknown,
    o?: { contentType?: string; token?: string | null },
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Runs the real kubectl against the stand-in. */
  kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestClusterOptions {
  nodes?: string[];
  podStartMs?: number;
  dir?: string;
}

export async function startTestCluster(o: TestClusterOptions = {}): Promise<TestCluster> {
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), "keel-k8s-")));
  const requests: TestCluster["requests"] = [];
  const ca = await openCertificateAuthority(join(dir, "ca"));
  const start = () =>
    startKubeStandIn({
      dataDir: join(dir, "k8s"),
      clock: createClock({ timeScale: 1 }),
      podStartMs: o.podStartMs ?? 50,
      tls: { ...ca.server, caPem: ca.caCertPem },
      onRequest: (r) => requests.push(r),
    });
  let standin = await start();
  for (const name of o.nodes ?? []) standin.cluster.addNode({ name, ready: true, bootID: `${name}-boot-1` });
  const kubeconfig = join(dir, "kubeconfig");
  await standin.writeKubeconfig(kubeconfig);
  const t: TestCluster = {
    dir,
    get standin() {
      return standin;
    },
    kubeconfig,
    client: createKubeClient(loadKubeConfig(kubeconfig)),
    caPem: ca.caCertPem,
    requests,
    api: (method, path, body, opts = {}) =>
      new Promise((resolve, reject) => {
        const url = new URL(path, standin.url);
        const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
        const token = opts.token === undefined ? standin.token : opts.token;
        const req = request(
          url,
          {
            method,
            ca: ca.caCertPem,
            headers: {
              ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
              ...(text !== undefined ? { "content-type": opts.contentType ?? "application/json" } : {}),
            },
          },
          (res) => {
            let data = "";
            res.on("data", (d: Buffer) => {
              data += d.toString();
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : {} }));
          },
        );
        req.on("error", reject);
        req.end(text);
      }),
    kubectl: (...args) =>
      new Promise((resolve, reject) => {
        const child = spawn(ensureKubectl(), ["--kubeconfig", kubeconfig, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => {
          stdout += d.toString();
        });
        child.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
        });
        child.on("error", reject);
        child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      }),
    async restart() {
      await standin.stop();
      standin = await start();
      await standin.writeKubeconfig(kubeconfig);
      t.client = createKubeClient(loadKubeConfig(kubeconfig));
    },
    async stop() {
      await standin.stop();
      if (!o.dir) await rm(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Waits for `check` to hold, polling; fails with `what` after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 50_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
