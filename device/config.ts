/**
 * agent.json: read once, layered file → flags → env (later layers win), validated with zod before
 * anything connects (docs/style.md#shapes-we-follow, item 7). Relative paths are resolved against the config file's directory,
 * so an example config and its certificates can travel together.
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { describeError } from "../core/errors.ts";
import { parseJsonText, parseWith } from "../core/parse.ts";
import { IdentifierSchema } from "../core/schemas.ts";
import { SemverSchema } from "../core/version.ts";
import { type BootloaderConfig, BootloaderConfigSchema } from "./boot/factory.ts";
import { AgentConfigError } from "./errors.ts";
import { HealthCheckSchema, KUBELET_HEALTHZ } from "./health.ts";
import { KubernetesConfigSchema, MetricsConfigSchema } from "./kubernetes/config.ts";
import { assertDistinctSlots } from "./slot-identity.ts";

const PathSchema = z.string().min(1);

export const MqttConfigSchema = z.strictObject({
  /** mqtts://host:port (AWS IoT: the iot:Data-ATS endpoint on 8883). */
  endpoint: z.string().regex(/^mqtts:\/\/[^/\s]+:\d+$/, "must look like mqtts://host:port"),
  /** PEM files: the thing's certificate and private key, and the CA that signed the broker's certificate. */
  cert: PathSchema,
  key: PathSchema,
  ca: PathSchema,
});

export const AgentConfigSchema = z.strictObject({
  /** The IoT thing name; also the MQTT client id. */
  thingName: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[a-zA-Z0-9:_-]+$/, "may contain only letters, digits and : _ -"),
  /** This node's hardware identifier; a release must list it in `compatible`. */
  hardware: IdentifierSchema,
  /** Persistent state: agent state, newer trust roots, latest known time. */
  stateDir: PathSchema.default("/var/lib/keel"),
  /** Trust root 1 (root.json) shipped in the image. */
  trustRoot: PathSchema.default("/usr/share/keel/root.json"),
  /** The two slots: block devices (/dev/disk/by-partlabel/keel-a) or pre-sized files. */
  slots: z.strictObject({ A: PathSchema, B: PathSchema }),
  /** Where the booted slot is read from: a kernel command line containing keel.slot=A|B. */
  cmdline: PathSchema.default("/proc/cmdline"),
  bootloader: BootloaderConfigSchema,
  /** Omit for air-gapped nodes (standalone `install` only). */
  mqtt: MqttConfigSchema.optional(),
  /** Checks after booting a new slot (and on every boot before marking the slot good). */
  health: z.array(HealthCheckSchema).max(32).optional(),
  /** Deadline for the every-boot checks when no job sets one (a job's policy.healthDeadlineSeconds wins). */
  healthDeadlineSeconds: z.number().int().min(5).max(86400).default(300),
  reboot: z
    .strictObject({ command: z.string().min(1).default("systemctl reboot") })
    .default({ command: "systemctl reboot" }),
  /** Shell commands (sh -c); each must exit 0. preReboot: before rebooting into a new slot; postCommit: after mark-good. */
  hooks: z
    .strictObject({
      preReboot: z.array(z.string().min(1)).default([]),
      postCommit: z.array(z.string().min(1)).default([]),
    })
    .default({ preReboot: [], postCommit: [] }),
  /** What a fresh node runs before any update was recorded (anti-rollback baseline). */
  factory: z.strictObject({ version: SemverSchema, releaseCounter: z.number().int().min(0) }).optional(),
  download: z
    .strictObject({
      retries: z.number().int().min(0).max(100).default(5),
      initialBackoffMs: z.number().int().min(1).default(1000),
      maxBackoffMs: z.number().int().min(1).default(30_000),
      /** Deadlines of every network read (device/install/download.ts): a cut, retried, when missed… */
      idleTimeoutMs: z.number().int().min(100).default(30_000),
      headersTimeoutMs: z.number().int().min(100).default(30_000),
      /** …and final: a whole manifest or root fetch, and a whole image download, retries included. */
      documentTimeoutMs: z.number().int().min(100).default(120_000),
      imageTimeoutMs: z
        .number()
        .int()
        .min(100)
        .default(24 * 3600_000),
      /** fsync the slot and persist the resume offset every this many bytes. */
      checkpointBytes: z
        .number()
        .int()
        .min(65536)
        .default(128 * 1024 * 1024),
    })
    .default({
      retries: 5,
      initialBackoffMs: 1000,
      maxBackoffMs: 30_000,
      idleTimeoutMs: 30_000,
      headersTimeoutMs: 30_000,
      documentTimeoutMs: 120_000,
      imageTimeoutMs: 24 * 3600_000,
      checkpointBytes: 128 * 1024 * 1024,
    }),
  /** Terminal reports retry with this capped backoff until accepted. */
  reportBackoff: z
    .strictObject({
      initialMs: z.number().int().min(1).default(1000),
      maxMs: z.number().int().min(1).default(60_000),
    })
    .default({ initialMs: 1000, maxMs: 60_000 }),
  /**
   * Trusted time (the latest `createdAt` of an accepted release) never moves further than this past the
   * node's own clock, so one manifest dated in the far future cannot make every later release "expired".
   */
  trustedTime: z
    .strictObject({ maxAheadHours: z.number().int().min(0).max(8760).default(24) })
    .default({ maxAheadHours: 24 }),
  /** Starts in the same state beyond this count are a crash/boot loop. */
  maxReentries: z.number().int().min(1).max(100).default(3),
  /** Kubernetes-aware updates (docs/kubernetes.md): reboot slots, cordon, drain, Node Ready. Off when absent. */
  kubernetes: KubernetesConfigSchema.optional(),
  /** Prometheus metrics on a local port (docs/kubernetes.md). Off when absent. */
  metrics: MetricsConfigSchema.optional(),
  log: z
    .strictObject({ level: z.enum(["debug", "info", "warn", "error"]).default("info") })
    .default({ level: "info" }),
});
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;
export type AgentConfig = Omit<z.output<typeof AgentConfigSchema>, "health"> & {
  health: z.output<typeof HealthCheckSchema>[];
};

/** Flags the CLI accepts on top of the file. */
export interface ConfigFlags {
  thingName?: string;
  stateDir?: string;
  cmdline?: string;
  mqttEndpoint?: string;
}

/** Environment overrides: applied last. */
export const CONFIG_ENV = {
  KEEL_THING_NAME: "thingName",
  KEEL_STATE_DIR: "stateDir",
  KEEL_CMDLINE: "cmdline",
  KEEL_MQTT_ENDPOINT: "mqtt.endpoint",
} as const;

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== "object" || next === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

function resolvePaths(c: AgentConfig, base: string): AgentConfig {
  const r = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const bootloader: BootloaderConfig =
    c.bootloader.type === "grub"
      ? { ...c.bootloader, envFile: r(c.bootloader.envFile) }
      : c.bootloader.type === "uboot"
        ? { ...c.bootloader, envFiles: c.bootloader.envFiles.map((f) => ({ ...f, path: r(f.path) })) }
        : c.bootloader;
  return {
    ...c,
    stateDir: r(c.stateDir),
    trustRoot: r(c.trustRoot),
    cmdline: r(c.cmdline),
    slots: { A: r(c.slots.A), B: r(c.slots.B) },
    bootloader,
    ...(c.mqtt ? { mqtt: { ...c.mqtt, cert: r(c.mqtt.cert), key: r(c.mqtt.key), ca: r(c.mqtt.ca) } } : {}),
    ...(c.kubernetes?.kubeconfig
      ? { kubernetes: { ...c.kubernetes, kubeconfig: r(c.kubernetes.kubeconfig) } }
      : {}),
  };
}

/** Validates a config value (already layered); `base` resolves relative paths. */
export function parseAgentConfig(value: unknown, base: string, what = "agent config"): AgentConfig {
  let parsed: z.output<typeof AgentConfigSchema>;
  try {
    parsed = parseWith(AgentConfigSchema, value, what);
  } catch (err) {
    throw new AgentConfigError(describeError(err), { cause: err });
  }
  // Default checks: kubelet's healthz, plus the broker connection when the node has one.
  const health = parsed.health ?? [
    parseWith(HealthCheckSchema, { type: "http", url: KUBELET_HEALTHZ }, "default health check"),
    ...(parsed.mqtt ? [parseWith(HealthCheckSchema, { type: "broker" }, "default health check")] : []),
  ];
  return resolvePaths({ ...parsed, health }, base);
}

export async function loadAgentConfig(
  file: string,
  flags: ConfigFlags = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new AgentConfigError(`${file}: cannot read (${describeError(err)})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseJsonText(text, `agent config ${file}`);
  } catch (err) {
    throw new AgentConfigError(describeError(err), { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new AgentConfigError(`${file}: must be a JSON object`);
  }
  const layered = structuredClone(raw) as Record<string, unknown>;
  if (flags.thingName !== undefined) setPath(layered, "thingName", flags.thingName);
  if (flags.stateDir !== undefined) setPath(layered, "stateDir", flags.stateDir);
  if (flags.cmdline !== undefined) setPath(layered, "cmdline", flags.cmdline);
  if (flags.mqttEndpoint !== undefined) setPath(layered, "mqtt.endpoint", flags.mqttEndpoint);
  for (const [name, path] of Object.entries(CONFIG_ENV)) {
    const v = env[name];
    if (v !== undefined && v !== "") setPath(layered, path, v);
  }
  const config = parseAgentConfig(layered, dirname(resolve(file)), `agent config ${file}`);
  try {
    await assertDistinctSlots(config.slots);
  } catch (err) {
    throw new AgentConfigError(`${file}: ${describeError(err)}`, { cause: err });
  }
  return config;
}
