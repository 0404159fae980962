/**
 * `keel dev --services-only`: the local cloud (S3, DynamoDB, MQTT broker with mutual TLS, AWS IoT Jobs
 * stand-in) on 127.0.0.1 until SIGINT/SIGTERM, endpoints in `<dir>/local.json` (docs/local-cloud.md).
 *
 * runServices() is the reusable part: the full `keel dev` (with the Lambda wiring) and `--demo` start the
 * services the same way and add their own pieces on top.
 *
 * `keel dev` (default): the same cloud plus the Lambda wiring, demo keys and releases, and a simulated
 * fleet, until Ctrl-C. `keel dev --demo` (`npm start`): all of that in `<dir>/demo/`, fresh each time,
 * then the demo scenario (local/demo.ts); exits 0 only if the outcome is the promised one.
 */
import { cp, mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { parseWith } from "../../core/parse.ts";
import { RegisteredThingWithKeySchema } from "../../functions/rollout-api/contract.ts";
import { type BrokerKind, LOCAL_INFO_FILE, startLocalCloud } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud, type LocalCloudInfo } from "../../local/contracts.ts";
import { type DemoOptions, runDemo } from "../../local/demo.ts";
import { MAX_DEMO_WINDOW_MINUTES } from "../../local/demo-windows.ts";
import {
  type DevEnvironment,
  type DevTooling,
  imagePath,
  manifestPath,
  publishDemoReleases,
  type ReleaseImages,
  startDevEnvironment,
} from "../../local/fleet/environment.ts";
import { ApiClient } from "../api-client.ts";
import { startConsole } from "../console/server.ts";
import { CliUsageError } from "../errors.ts";
import { type DevVm, keelosReleaseImages, startDevVm } from "./dev-vm.ts";
import { keygen } from "./keys.ts";
import { publishRelease } from "./publish.ts";
import { buildImage, signRelease } from "./release.ts";
import { rootInit } from "./root.ts";

export interface ServicesOptions {
  /** The `.keel` directory (CA, data, local.json). */
  dir: string;
  broker: BrokerKind;
  timeScale: number;
}

const DevFlagsSchema = z.object({
  servicesOnly: z.boolean().default(false),
  demo: z.boolean().default(false),
  broker: z.enum(["aedes", "mosquitto"]),
  timeScale: z.coerce.number().positive("must be a positive number").finite(),
  dir: z.string().min(1),
  devices: z.coerce.number().int("must be a whole number").min(1).max(5000),
  windowMinutes: z.coerce
    .number()
    .int("must be a whole number")
    .min(1)
    .max(MAX_DEMO_WINDOW_MINUTES)
    .optional(),
  fleet: z
    .string()
    .regex(/^[a-zA-Z0-9_-]{1,60}$/, "letters, digits, _ and - (at most 60)")
    .optional(),
  vm: z.boolean().default(false),
  vmFirmware: z.enum(["bios", "uefi"]),
});

/** Starts the local cloud and prints where everything is. */
export async function runServices(
  options: ServicesOptions,
  out: NodeJS.WritableStream = process.stdout,
): Promise<LocalCloud> {
  const cloud = await startLocalCloud(options);
  out.write(endpointTable(cloud.info, options));
  return cloud;
}

/** The endpoints as a two-column table, as `keel dev` prints them. */
export function endpointTable(info: LocalCloudInfo, options: ServicesOptions): string {
  const rows: Array<[string, string]> = [
    ["S3", `${info.s3}  (bucket ${info.bucket}, path-style)`],
    ["DynamoDB", `${info.dynamodb}  (table ${info.table})`],
    ["IoT control plane", info.iot],
    ["MQTT (mutual TLS)", `${info.mqtt}  (${options.broker})`],
    ["CA certificate", info.caFile],
    ...(info.api ? [["Rollout API", info.api] as [string, string]] : []),
    ["Region / account", `${info.region} / ${info.account}`],
    ["Clock", options.timeScale === 1 ? "real time" : `${options.timeScale}x`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`);
  return `Keel local cloud is running\n${lines.join("\n")}\nEndpoints written to ${options.dir}/${LOCAL_INFO_FILE}. Press Ctrl-C to stop.\n`;
}

/** Resolves with the first SIGINT or SIGTERM. */
export function untilStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(signal);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** Runs until a stop signal, then stops the cloud; a second signal while stopping exits at once. */
export async function serveUntilSignal(cloud: LocalCloud): Promise<void> {
  const signal = await untilStopSignal();
  process.stderr.write(`${signal}: stopping the local cloud…\n`);
  const force = () => process.exit(130);
  process.once("SIGINT", force);
  process.once("SIGTERM", force);
  await cloud.stop();
  process.off("SIGINT", force);
  process.off("SIGTERM", force);
  process.stderr.write("local cloud stopped\n");
}

/**
 * The CLI's own code paths (keygen, root init, release build/sign/publish, fleet registration) bound to a
 * local cloud whose endpoints are in `<keelDir>/local.json`: what the dev environment and the demo run.
 */
export function cliTooling(keelDir: string): (info: LocalCloudInfo) => DevTooling {
  return (info) => {
    const api = new ApiClient({ apiUrl: info.api, region: info.region, credentials: LOCAL_CREDENTIALS });
    return {
      api,
      async createTrust(keysDir, rootFile) {
        const key = await keygen(keysDir, "release");
        await rootInit({ keys: [key.pub], threshold: 1, sign: [key.secret], out: rootFile });
      },
      async buildImage(rootfs, out) {
        await buildImage(rootfs, out);
      },
      async signRelease(image, r) {
        await signRelease(image, {
          version: r.version,
          counter: r.counter,
          compatible: r.compatible,
          key: [r.key],
          out: r.out,
          os: "keelos",
        });
      },
      async publish(image, manifest, root, log) {
        await publishRelease(
          image,
          manifest,
          { local: true, keelDir, ...(root ? { root: [root] } : {}) },
          log,
        );
      },
      async registerThing(fleet, thing, version) {
        const t = parseWith(
          RegisteredThingWithKeySchema,
          await api.post(`/fleets/${encodeURIComponent(fleet)}/things`, { thingName: thing, version }),
          "API answer",
        );
        return { certificatePem: t.certificatePem, privateKey: t.privateKey };
      },
    };
  };
}

type DevFlags = z.infer<typeof DevFlagsSchema>;

/**
 * Runs `body` with the dev environment up; the first Ctrl-C aborts `signal` and everything is stopped
 * cleanly, a second one exits at once. Resolves with the exit code.
 */
async function withEnvironment(
  flags: DevFlags,
  dir: string,
  options: { fleet: string; reuse: boolean; linkInfoFile?: string; images?: ReleaseImages },
  body: (env: DevEnvironment, signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write(`\n${signal}: stopping the fleet and the local cloud…\n`);
    ac.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let env: DevEnvironment | undefined;
  try {
    env = await startDevEnvironment({
      dir,
      broker: flags.broker,
      timeScale: flags.timeScale,
      fleet: options.fleet,
      devices: flags.devices,
      tooling: cliTooling(dir),
      reuse: options.reuse,
      ...(options.linkInfoFile ? { linkInfoFile: options.linkInfoFile } : {}),
      ...(options.images ? { images: options.images } : {}),
      log: (l) => process.stdout.write(`${l}\n`),
      signal: ac.signal,
    });
    if (ac.signal.aborted) return 130;
    process.stdout.write(endpointTable(env.info, { dir, broker: flags.broker, timeScale: flags.timeScale }));
    return await body(env, ac.signal);
  } catch (err) {
    if (ac.signal.aborted) return 130;
    throw err;
  } finally {
    await env?.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (ac.signal.aborted) process.stderr.write("fleet and local cloud stopped\n");
  }
}

async function runDemoCommand(flags: DevFlags): Promise<number> {
  // The demo owns <dir>/demo/ (cloud data, CA, keys, releases, fleet) and wipes it on every start, so a
  // second run needs nothing deleted by hand and never touches a `keel dev` cloud in <dir>.
  const dir = join(flags.dir, "demo");
  const resultFile = join(flags.dir, "last-run.json");
  await rm(dir, { recursive: true, force: true });
  const trust = join(flags.dir, "demo-vm-trust");
  if (flags.vm) await keepTrust(trust, dir);
  // A report left by an earlier run must not pass for this one's if this one fails before writing its own.
  await rm(resultFile, { force: true });
  const started = Date.now();
  const fleet = flags.fleet ?? "demo";
  return withEnvironment(
    flags,
    dir,
    { fleet, reuse: false, linkInfoFile: join(flags.dir, LOCAL_INFO_FILE), ...vmImages(flags) },
    async (env, signal) => {
      const vm = flags.vm
        ? await startDevVm(env, { fleet, firmware: flags.vmFirmware, progress })
        : undefined;
      // The web console watches the same rollouts while the demo runs (any free port: a `keel console`
      // may already hold the default one).
      const web = await startConsole({ api: env.tooling.api, port: 0, target: "local cloud (demo)" });
      try {
        const run = await runDemo({
          env,
          out: process.stdout,
          signal,
          resultFile,
          consoleUrl: web.url,
          ...(flags.windowMinutes ? { windowMinutes: flags.windowMinutes } : {}),
          ...(vm ? vmDemoOptions(vm) : {}),
        });
        process.stdout.write(`Finished in ${Math.round((Date.now() - started) / 1000)} s.\n`);
        return run.ok ? 0 : 1;
      } finally {
        await web.close();
        await vm?.stop();
      }
    },
  );
}

/**
 * A --vm demo keeps its signing key and trust root in `<dir>/demo-vm-trust/` across runs: the real images
 * take minutes to build and the trust root is part of their cache key, so a fresh one each run would
 * rebuild all of them. Copies `keys/` and `root.json` from `from` to `to` unless `to` has them already.
 */
async function keepTrust(from: string, to: string): Promise<void> {
  const has = (d: string) =>
    stat(join(d, "root.json")).then(
      () => true,
      () => false,
    );
  if (!(await has(from)) || (await has(to))) return;
  await mkdir(to, { recursive: true });
  await cp(join(from, "keys"), join(to, "keys"), { recursive: true });
  await cp(join(from, "root.json"), join(to, "root.json"));
}

const progress = (line: string) => process.stdout.write(`${line}\n`);

/** With --vm: the releases are real KeelOS images (cached), which the VM node can boot. */
function vmImages(flags: DevFlags): { images?: ReleaseImages } {
  return flags.vm ? { images: keelosReleaseImages(progress) } : {};
}

/** A real node takes minutes where a simulated one takes a second: give the demo's rollouts room. */
function vmDemoOptions(vm: DevVm): Partial<DemoOptions> {
  return {
    realNodes: [
      {
        thing: vm.thing,
        fleet: vm.fleet,
        what: `a KeelOS VM under QEMU (serial console ${vm.node.serialLog})`,
      },
    ],
    healthDeadlineSeconds: 900,
    rolloutTimeoutMs: 45 * 60_000,
  };
}

async function runDevCommand(flags: DevFlags): Promise<number> {
  const fleet = flags.fleet ?? "dev";
  // A --vm environment has real (large) images and slots to match: it lives beside the plain one.
  const dir = flags.vm ? join(flags.dir, "vm-dev") : flags.dir;
  const where = flags.vm ? { linkInfoFile: join(flags.dir, LOCAL_INFO_FILE), ...vmImages(flags) } : {};
  return withEnvironment(flags, dir, { fleet, reuse: true, ...where }, async (env, signal) => {
    await publishDemoReleases(env, (l) => process.stdout.write(`${l}\n`));
    const vm = flags.vm ? await startDevVm(env, { fleet, firmware: flags.vmFirmware, progress }) : undefined;
    try {
      return await devSession(env, fleet, signal, vm);
    } finally {
      await vm?.stop();
    }
  });
}

async function devSession(
  env: DevEnvironment,
  fleet: string,
  signal: AbortSignal,
  vm?: DevVm,
): Promise<number> {
  await env.fleet.waitSettled(60_000 + env.fleet.nodes.length * 100, signal);
  const p = env.paths;
  const versions = new Map<string, number>();
  for (const n of env.fleet.snapshot())
    versions.set(n.version ?? "none", (versions.get(n.version ?? "none") ?? 0) + 1);
  const running = [...versions].map(([v, n]) => `${v} ×${n}`).join(", ");
  process.stdout.write(
    [
      "",
      `Fleet ${fleet}: ${env.fleet.nodes.length} simulated node(s) running ${running} (agent logs: ${p.agentLog}).`,
      ...(vm
        ? [
            `Fleet ${vm.fleet}: ${vm.thing}, a real KeelOS node under QEMU (serial console: ${vm.node.serialLog}).`,
          ]
        : []),
      "Drive it from another terminal, for example:",
      `  keel rollout start --local --release 1.1.0 --fleet ${fleet}${vm ? `,${vm.fleet}` : ""} --waves canary:${env.fleet.thingNames()[0]},25,100 --bake 5s${vm ? " --health-deadline 900s" : ""}`,
      "  keel rollout status --local <id> --watch",
      `  keel fleet status --local ${fleet}`,
      "  keel console --local        (the web console: rollouts, fleets, releases)",
      `Releases signed with ${p.releaseKey} (trusted by the nodes' ${p.rootFile}); publish your own with:`,
      `  keel release publish --local ${imagePath(p, "1.1.0")} ${manifestPath(p, "1.1.0")}`,
      "Press Ctrl-C to stop.",
      "",
    ].join("\n"),
  );
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  return 0;
}

export function register(program: Command): void {
  program
    .command("dev")
    .description(
      "run the local cloud on 127.0.0.1 (S3, DynamoDB, MQTT broker with mutual TLS, AWS IoT Jobs stand-in, the Lambda wiring) with a simulated fleet; --demo runs the demo rollouts on it",
    )
    .option("--services-only", "run the services only (S3, DynamoDB, broker, IoT Jobs stand-in)")
    .option("--broker <kind>", "MQTT broker: aedes (in-process) or mosquitto (child process)", "aedes")
    .option("--time-scale <n>", "run the IoT clock n times faster (60: a minute per second)", "1")
    .option("--dir <path>", "directory for the CA, the data and local.json", ".keel")
    .option(
      "--demo",
      "run the demo: roll out 1.1.0, then a broken 1.2.0, on a fresh simulated fleet; then exit",
    )
    .option("--devices <n>", "number of simulated nodes", "12")
    .option(
      "--window-minutes <n>",
      "with --demo: a maintenance window open n minutes of every 2n (UTC), so waves wait and resume",
    )
    .option("--fleet <name>", "fleet name of the simulated nodes (default: demo with --demo, else dev)")
    .option(
      "--vm",
      "add one real KeelOS node under QEMU (fleet <fleet>-vm; releases become real KeelOS images; needs `npm run build:agent`)",
    )
    .option("--vm-firmware <kind>", "the VM node's firmware: bios (SeaBIOS) or uefi (OVMF)", "bios")
    .action(async (raw: Record<string, unknown>) => {
      const flags = parseWith(DevFlagsSchema, raw, "keel dev options");
      if (flags.servicesOnly && flags.demo)
        throw new CliUsageError("--services-only and --demo exclude each other");
      // The simulated nodes gate on their own (real-time) clock: a scaled cloud clock would disagree.
      if (flags.windowMinutes && (!flags.demo || flags.timeScale !== 1))
        throw new CliUsageError("--window-minutes needs --demo and the real-time clock (no --time-scale)");
      if (flags.vm && (flags.fleet?.length ?? 0) > 57)
        throw new CliUsageError(
          "--fleet must be at most 57 characters with --vm (the VM's fleet is <fleet>-vm)",
        );
      if (flags.servicesOnly && flags.vm)
        throw new CliUsageError("--vm needs the fleet and the Lambda wiring; drop --services-only");
      if (flags.servicesOnly) {
        const cloud = await runServices({ dir: flags.dir, broker: flags.broker, timeScale: flags.timeScale });
        await serveUntilSignal(cloud);
        return;
      }
      const code = flags.demo ? await runDemoCommand(flags) : await runDevCommand(flags);
      // Everything is stopped; exit now rather than wait on sockets the SDK clients keep alive.
      process.exit(code);
    });
}
