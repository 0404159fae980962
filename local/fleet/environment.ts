/**
 * Everything `keel dev` and `keel dev --demo` run on one machine: the local cloud, the Lambda wiring, demo
 * signing keys and trust root, real SquashFS releases, and a simulated fleet registered through the rollout
 * API. The release steps (keygen, root init, release build/sign/publish, fleet registration) are the CLI's
 * own code paths, passed in as `DevTooling` so that local/ never imports cli/ (docs/architecture.md#layout).
 */
import { createHash } from "node:crypto";
import { access, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { z } from "zod";
import { parseWith } from "../../core/parse.ts";
import { createLogger, type Logger } from "../../device/logger.ts";
import { type BrokerKind, LOCAL_INFO_FILE, LocalCloudInfoSchema, startLocalCloud } from "../cloud.ts";
import type { LocalCloud, LocalCloudInfo } from "../contracts.ts";
import { type FunctionsWiring, startFunctionsWiring } from "../functions-wiring.ts";
import { type DeviceCredentials, type SimulatedFleet, startFleet } from "./fleet.ts";
import type { SimNode } from "./node.ts";

/** The rollout API as the CLI's signed client exposes it (cli/api-client.ts ApiClient). */
export interface RolloutApi {
  get(path: string): Promise<unknown>;
  post(path: string, body?: unknown): Promise<unknown>;
  request(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<unknown>;
}

/** The CLI's code paths the environment needs, bound to one local cloud. */
export interface DevTooling {
  /** `keel keygen` + `keel root init`: one ed25519 key for both roles, and trust root v1 signed by it. */
  createTrust(keysDir: string, rootFile: string): Promise<void>;
  /** `keel release build`: a reproducible SquashFS image of `rootfs`. */
  buildImage(rootfs: string, out: string): Promise<void>;
  /** `keel release sign`. */
  signRelease(
    image: string,
    release: { version: string; counter: number; compatible: string[]; key: string; out: string },
  ): Promise<void>;
  /** `keel release publish --local [--root]`: upload, then wait for VERIFIED. */
  publish(
    image: string,
    manifest: string,
    root: string | undefined,
    log: (line: string) => void,
  ): Promise<void>;
  /** `keel fleet register`: POST /fleets/{fleet}/things; the thing's certificate and key. */
  registerThing(fleet: string, thing: string, version: string): Promise<DeviceCredentials>;
  api: RolloutApi;
}

/** Hardware identifier of every simulated node; the releases list it in `compatible`. */
export const SIM_HARDWARE = "keel-sim";

export interface DemoRelease {
  version: string;
  counter: number;
  /** The image's etc/keelos-release says KUBELET=broken: the node's kubelet never becomes healthy. */
  brokenKubelet: boolean;
}

/** 1.0.0 is installed at the factory; 1.1.0 is good; 1.2.0's kubelet never becomes healthy. */
export const DEMO_RELEASES: readonly DemoRelease[] = [
  { version: "1.0.0", counter: 1, brokenKubelet: false },
  { version: "1.1.0", counter: 2, brokenKubelet: false },
  { version: "1.2.0", counter: 3, brokenKubelet: true },
];

export interface DevPaths {
  /** The `.keel`-style directory: the cloud's ca/, data/ and local.json, plus everything below. */
  dir: string;
  keys: string;
  releaseKey: string;
  rootFile: string;
  releases: string;
  fleet: string;
  agentLog: string;
}

/**
 * Real release images instead of the small demo trees (`keel dev --vm`: KeelOS images a VM node can boot).
 * The CLI passes the builder in, so local/ imports nothing of the OS image builder.
 */
export interface ReleaseImages {
  /** Directory (under the dev directory) for these releases, apart from the demo trees' `releases/`. */
  dirName: string;
  /** Hardware besides the simulated nodes' that the releases are signed for. */
  compatible: string[];
  /** Size of each simulated node's slot file, bytes: the images must fit. */
  slotSize: number;
  /** Writes release `r`'s image to `out`; `rootFile` is the environment's trust root. */
  build(r: DemoRelease, rootFile: string, out: string): Promise<void>;
}

export function devPaths(dir: string, releasesDir = "releases"): DevPaths {
  const d = resolve(dir);
  return {
    dir: d,
    keys: join(d, "keys"),
    releaseKey: join(d, "keys", "release.key"),
    rootFile: join(d, "root.json"),
    releases: join(d, releasesDir),
    fleet: join(d, "fleet"),
    agentLog: join(d, "fleet", "agents.log"),
  };
}

export const imagePath = (p: DevPaths, version: string) => join(p.releases, version, "image.squashfs");
export const manifestPath = (p: DevPaths, version: string) => join(p.releases, version, "release.json");

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** Deterministic filler so each version's image has a realistic, distinct payload (and builds reproducibly). */
function payload(version: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0, block = 0; i < bytes; block++) {
    const h = createHash("sha256").update(`${version}:${block}`).digest();
    i += h.copy(out, i);
  }
  return out;
}

/** Writes a KeelOS-like root filesystem tree for one demo release. */
async function writeRootfs(dir: string, r: DemoRelease): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, "etc"), { recursive: true });
  await mkdir(join(dir, "usr/lib/keel"), { recursive: true });
  await writeFile(
    join(dir, "etc/keelos-release"),
    `NAME=KeelOS\nVERSION=${r.version}\nKUBELET=${r.brokenKubelet ? "broken" : "ok"}\n`,
  );
  await writeFile(join(dir, "etc/os-release"), `NAME="KeelOS"\nID=keelos\nVERSION_ID="${r.version}"\n`);
  await writeFile(join(dir, "usr/lib/keel/payload.bin"), payload(r.version, 128 * 1024));
}

/**
 * Keys, trust root and the three demo releases (built and, except the factory image, signed), each step
 * skipped when its output already exists so a restarted `keel dev` keeps its keys.
 */
export async function prepareReleases(
  p: DevPaths,
  tooling: DevTooling,
  log: (line: string) => void,
  images?: ReleaseImages,
): Promise<void> {
  if (!(await exists(p.rootFile))) {
    await tooling.createTrust(p.keys, p.rootFile);
    log(`created signing key ${p.releaseKey} and trust root ${p.rootFile}`);
  }
  for (const r of DEMO_RELEASES) {
    const image = imagePath(p, r.version);
    const dir = join(p.releases, r.version);
    if (!(await exists(image))) {
      await mkdir(dir, { recursive: true });
      if (images) await images.build(r, p.rootFile, image);
      else {
        const rootfs = join(dir, "rootfs");
        await writeRootfs(rootfs, r);
        await tooling.buildImage(rootfs, image);
        await rm(rootfs, { recursive: true, force: true });
      }
      log(`built ${image}${r.brokenKubelet ? " (its kubelet never becomes healthy)" : ""}`);
    }
    if (r.version !== DEMO_RELEASES[0]?.version && !(await exists(manifestPath(p, r.version)))) {
      await tooling.signRelease(image, {
        version: r.version,
        counter: r.counter,
        compatible: [SIM_HARDWARE, ...(images?.compatible ?? [])],
        key: p.releaseKey,
        out: manifestPath(p, r.version),
      });
      log(`signed ${manifestPath(p, r.version)}`);
    }
  }
}

export interface DevEnvironmentOptions {
  dir: string;
  broker?: BrokerKind;
  timeScale?: number;
  fleet: string;
  devices: number;
  /** The CLI's code paths, bound to the cloud once it is up (the API client needs its URL). */
  tooling: (info: LocalCloudInfo) => DevTooling;
  /** Reuse node directories and keys from a previous run (`keel dev`); the demo starts fresh. */
  reuse?: boolean;
  /** Schedule period of advance-rollout in (scaled) seconds. @default 1 */
  tickSeconds?: number;
  log?: (line: string) => void;
  onNodeChange?: (node: SimNode) => void;
  /** Aborting it interrupts fleet registration and power-on; startDevEnvironment then stops and rejects. */
  signal?: AbortSignal;
  /** Also write this local.json (e.g. `.keel/local.json` for `keel … --local`) if no other cloud owns it. */
  linkInfoFile?: string;
  /** The simulated cluster's reboot budget. @default a third of the nodes, at least 1 */
  maxUnavailable?: number;
  /** Make the fleet a Kubernetes cluster (docs/kubernetes.md). @default true */
  kubernetes?: boolean;
  /** Real release images (`keel dev --vm`); default: the small demo trees. */
  images?: ReleaseImages;
}

/** A third of the cluster may be down for updates at once: small enough to matter, quick enough to demo. */
export const defaultMaxUnavailable = (devices: number) => Math.max(1, Math.floor(devices / 3));

export interface DevEnvironment {
  paths: DevPaths;
  cloud: LocalCloud;
  wiring: FunctionsWiring;
  info: LocalCloudInfo;
  tooling: DevTooling;
  fleet: SimulatedFleet;
  agentLogger: Logger;
  stop(): Promise<void>;
}

const FleetThingsSchema = z.object({ things: z.array(z.object({ thingName: z.string() })) });

/** The things registered in `fleet`, from GET /fleets/{fleet}. */
async function registeredIn(api: RolloutApi, fleet: string): Promise<Set<string>> {
  const view = parseWith(
    FleetThingsSchema,
    await api.get(`/fleets/${encodeURIComponent(fleet)}`),
    "fleet API answer",
  );
  return new Set(view.things.map((t) => t.thingName));
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/** Agent logs: JSON lines appended to one file, buffered so a thousand agents do not each hit the disk. */
async function fileLogger(path: string): Promise<{ logger: Logger; close(): Promise<void> }> {
  await mkdir(resolve(path, ".."), { recursive: true });
  const { createWriteStream } = await import("node:fs");
  const stream = createWriteStream(path, { flags: "a" });
  return {
    logger: createLogger({ level: "info", write: (line) => void stream.write(`${line}\n`) }),
    close: () => new Promise((r) => stream.end(() => r())),
  };
}

export async function startDevEnvironment(o: DevEnvironmentOptions): Promise<DevEnvironment> {
  const log = o.log ?? (() => {});
  const paths = devPaths(o.dir, o.images?.dirName);
  const stack: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const stop of stack.splice(0).reverse()) await stop().catch(() => {});
  };
  try {
    const cloud = await startLocalCloud({
      dir: paths.dir,
      broker: o.broker ?? "aedes",
      timeScale: o.timeScale ?? 1,
    });
    stack.push(() => cloud.stop());
    // Function logs at error level only: the live view already shows every rollout state change, and
    // warn lines (such as the alarm's rollout.aborted) would tear the redrawn progress block.
    const wiring = await startFunctionsWiring(cloud, { tickSeconds: o.tickSeconds ?? 1, logLevel: "error" });
    stack.push(() => wiring.stop());
    const info: LocalCloudInfo = LocalCloudInfoSchema.parse({ ...cloud.info, api: wiring.apiUrl });
    // startLocalCloud wrote local.json before the API existed; the CLI needs `api` in it.
    await writeJsonAtomic(join(paths.dir, LOCAL_INFO_FILE), info);
    if (o.linkInfoFile && resolve(o.linkInfoFile) !== join(paths.dir, LOCAL_INFO_FILE)) {
      const link = resolve(o.linkInfoFile);
      if (!(await exists(link))) {
        await writeJsonAtomic(link, info);
        stack.unshift(async () => {
          // Remove it only if it is still ours (a `keel dev` started since may own it now).
          const text = await readFile(link, "utf8").catch(() => "");
          if (text.includes(info.api)) await rm(link, { force: true });
        });
      }
    }
    const tooling = o.tooling(info);
    await prepareReleases(paths, tooling, log, o.images);

    const logs = await fileLogger(paths.agentLog);
    stack.push(() => logs.close());
    const factory = DEMO_RELEASES[0] ?? { version: "1.0.0", counter: 1 };
    // Node files left from a previous run count only if the cloud (which may have been wiped) knows the thing.
    const registeredThings = o.reuse ? await registeredIn(tooling.api, o.fleet) : undefined;
    log(`registering ${o.devices} simulated node(s) in fleet ${o.fleet} and powering them on…`);
    const fleet = await startFleet({
      dir: paths.fleet,
      fleet: o.fleet,
      devices: o.devices,
      mqtt: { endpoint: info.mqtt, ca: info.caFile },
      trustRoot: paths.rootFile,
      factoryImage: imagePath(paths, factory.version),
      factory: { version: factory.version, releaseCounter: factory.counter },
      hardware: SIM_HARDWARE,
      ...(o.images ? { slotSize: o.images.slotSize } : {}),
      register: (thing) => tooling.registerThing(o.fleet, thing, factory.version),
      registrationsSettled: async () => cloud.broker.settled?.(),
      reuse: o.reuse ?? false,
      ...(registeredThings ? { registeredThings } : {}),
      logger: logs.logger,
      ...(o.onNodeChange ? { onChange: o.onNodeChange } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.kubernetes !== false && cloud.kube && info.kubeconfig
        ? {
            kubernetes: {
              cluster: cloud.kube.cluster,
              kubeconfig: info.kubeconfig,
              maxUnavailable: o.maxUnavailable ?? defaultMaxUnavailable(o.devices),
            },
          }
        : {}),
    });
    stack.push(() => fleet.stop());
    let stopping: Promise<void> | undefined;
    return {
      paths,
      cloud,
      wiring,
      info,
      tooling,
      fleet,
      agentLogger: logs.logger,
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Publishes the signed demo releases (1.1.0, 1.2.0) with the trust root, as `keel release publish --root`. */
export async function publishDemoReleases(env: DevEnvironment, log: (line: string) => void): Promise<void> {
  for (const r of DEMO_RELEASES.slice(1)) {
    await env.tooling.publish(
      imagePath(env.paths, r.version),
      manifestPath(env.paths, r.version),
      env.paths.rootFile,
      log,
    );
  }
}
