/**
 * startLocalCloud: the whole local cloud on 127.0.0.1 — S3 (s3rver), DynamoDB (dynalite), an MQTT broker with
 * mutual TLS (aedes in-process, or mosquitto) and the AWS IoT Jobs stand-in — with its data under
 * `<dir>/data/`, its CA under `<dir>/ca/`, and its endpoints in `<dir>/local.json`.
 *
 * Restarts lose nothing: every component persists under the same directories, and the ports of the previous
 * run (kept in `data/ports.json`) are taken again when free, so devices and clients that keep reconnecting to
 * the old address find the new services there.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { z } from "zod";
import { parseJsonWith } from "../core/parse.ts";
import { startAedesBroker } from "./broker-aedes.ts";
import { startMosquittoBroker } from "./broker-mosquitto.ts";
import { openCertificateAuthority } from "./ca.ts";
import { createClock } from "./clock.ts";
import {
  type Clock,
  LOCAL_ACCOUNT,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  type LocalCloud,
  type LocalCloudInfo,
  type RunningBroker,
} from "./contracts.ts";
import { startLocalDynamoDb } from "./dynamodb.ts";
import { LocalConfigError, LocalServiceError } from "./errors.ts";
import { createIotStandIn } from "./iot/standin.ts";
import { startKubeStandIn } from "./k8s/standin.ts";
import { startLocalS3 } from "./s3.ts";

export const LOCAL_BUCKET = "keel-releases";
export const LOCAL_TABLE = "keel";
export const LOCAL_INFO_FILE = "local.json";
export const LOCAL_KUBECONFIG_FILE = "kubeconfig";

export type BrokerKind = "aedes" | "mosquitto";

export interface StartLocalCloudOptions {
  /** The `.keel` directory: `ca/`, `data/` and `local.json` live here. */
  dir: string;
  /** @default "aedes" */
  broker?: BrokerKind;
  /** Scaled milliseconds per real millisecond for the IoT stand-in's clock. @default 1 */
  timeScale?: number;
  /** Tests inject a manual clock; wins over timeScale. */
  clock?: Clock;
}

const url = z.string().url();
export const LocalCloudInfoSchema = z.object({
  region: z.string().min(1),
  account: z.string().regex(/^\d{12}$/),
  s3: url,
  dynamodb: url,
  iot: url,
  mqtt: url,
  caFile: z.string().min(1),
  api: z.union([url, z.literal("")]),
  bucket: z.string().min(1),
  table: z.string().min(1),
  kubeconfig: z.string().min(1).optional(),
}) satisfies z.ZodType<LocalCloudInfo>;

/** Reads `<dir>/local.json`; undefined when it does not exist (no local cloud running there). */
export async function readLocalCloudInfo(dir: string): Promise<LocalCloudInfo | undefined> {
  const path = join(dir, LOCAL_INFO_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (err instanceof Error && "code" in err && err.code === "ENOENT") return undefined;
    throw new LocalConfigError(path, "cannot read", { cause: err });
  }
  return parseJsonWith(LocalCloudInfoSchema, text, path);
}

export async function startLocalCloud(options: StartLocalCloudOptions): Promise<LocalCloud> {
  // Absolute, so local.json's caFile works from any working directory.
  const dir = resolve(options.dir);
  const data = join(dir, "data");
  await mkdir(data, { recursive: true });
  const portsFile = join(data, "ports.json");
  const previous = await readPorts(portsFile);

  const stack: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    const errors: unknown[] = [];
    for (const stop of stack.splice(0).reverse()) {
      await stop().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) {
      throw new LocalServiceError("local cloud", "did not stop cleanly", {
        cause: new AggregateError(errors),
      });
    }
  };

  try {
    const ca = await openCertificateAuthority(join(dir, "ca"));
    const s3 = await preferPort(previous.s3, (port) =>
      startLocalS3({ directory: join(data, "s3"), buckets: [LOCAL_BUCKET], port }),
    );
    stack.push(() => s3.stop());
    const dynamodb = await preferPort(previous.dynamodb, (port) =>
      startLocalDynamoDb({ path: join(data, "dynamodb"), table: LOCAL_TABLE, port }),
    );
    stack.push(() => dynamodb.stop());

    // With a time scale, scaled time runs ahead of the real clock; a restart resumes from the last scaled
    // time saved, so deadlines the stand-in stored never land in the clock's past or far future.
    const clockFile = join(data, "clock.json");
    const clock =
      options.clock ??
      createClock({ timeScale: options.timeScale ?? 1, startMs: await resumeScaledTime(clockFile) });
    // Saves are chained: the periodic save and the one at stop both write clock.json.tmp, and two renames
    // of the same temp file in flight at once fail with ENOENT (and could leave an older time behind).
    let saving = Promise.resolve();
    const saveClock = () => {
      const write = () => writeJsonAtomic(clockFile, { scaledNowMs: clock.now() } satisfies SavedClock);
      saving = saving.then(write, write);
      return saving;
    };
    await saveClock();
    const clockSaver = setInterval(() => void saveClock().catch(() => {}), 1000);
    clockSaver.unref();
    stack.push(async () => {
      clearInterval(clockSaver);
      await saveClock();
    });
    const iot = await createIotStandIn({
      dataDir: join(data, "iot"),
      region: LOCAL_REGION,
      account: LOCAL_ACCOUNT,
      clock,
      ca,
      s3: { endpoint: s3.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS },
    });
    const kind = options.broker ?? "aedes";
    const broker: RunningBroker = await preferPort(previous.mqtt, (port) =>
      kind === "mosquitto"
        ? startMosquittoBroker({ ca, authority: iot.authority, dir: join(data, "mosquitto"), port })
        : startAedesBroker({ ca, authority: iot.authority, port }),
    );
    stack.push(() => broker.stop());
    const { endpoint } = await preferPort(previous.iot, (port) =>
      iot.start(broker, port === undefined ? undefined : { port }),
    );
    // Stopped before the broker (pushed last, popped first): it flushes its state while still connected.
    stack.push(() => iot.stop());

    // The Kubernetes API stand-in (docs/kubernetes.md): HTTPS with the local CA's server certificate, its
    // cluster persisted under data/k8s, and a kubeconfig beside local.json for kubectl and the agents.
    const kube = await preferPort(previous.k8s, (port) =>
      startKubeStandIn({
        dataDir: join(data, "k8s"),
        clock,
        tls: { ...ca.server, caPem: ca.caCertPem },
        ...(port !== undefined ? { port } : {}),
      }),
    );
    stack.push(() => kube.stop());
    const kubeconfig = await kube.writeKubeconfig(join(dir, LOCAL_KUBECONFIG_FILE));

    const info: LocalCloudInfo = {
      region: LOCAL_REGION,
      account: LOCAL_ACCOUNT,
      s3: s3.endpoint,
      dynamodb: dynamodb.endpoint,
      iot: endpoint,
      mqtt: broker.url,
      caFile: ca.caFile,
      api: "",
      bucket: LOCAL_BUCKET,
      table: LOCAL_TABLE,
      kubeconfig,
    };
    const port = (u: string) => Number(new URL(u).port);
    await writeJsonAtomic(portsFile, {
      s3: port(info.s3),
      dynamodb: port(info.dynamodb),
      mqtt: port(info.mqtt),
      iot: port(info.iot),
      k8s: port(kube.url),
    } satisfies Ports);
    const infoPath = join(dir, LOCAL_INFO_FILE);
    await writeJsonAtomic(infoPath, info);
    // Once stopped, nothing should find endpoints that no longer answer.
    stack.unshift(() => rm(infoPath, { force: true }));

    let stopping: Promise<void> | undefined;
    return {
      info,
      ca,
      clock,
      iot,
      broker,
      kube,
      onObjectCreated: (listener) => s3.onObjectCreated(listener),
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll().catch(() => {});
    throw err;
  }
}

const SavedClockSchema = z.object({ scaledNowMs: z.number().int().min(0) });
type SavedClock = z.infer<typeof SavedClockSchema>;

/** The later of the real time and the last scaled time saved; undefined (real time) when none is readable. */
async function resumeScaledTime(path: string): Promise<number | undefined> {
  try {
    const saved = parseJsonWith(SavedClockSchema, await readFile(path, "utf8"), path);
    return Math.max(saved.scaledNowMs, Date.now());
  } catch {
    return undefined;
  }
}

const port = z.number().int().min(1).max(65535).optional();
const PortsSchema = z.object({ s3: port, dynamodb: port, mqtt: port, iot: port, k8s: port });
type Ports = z.infer<typeof PortsSchema>;

/** The ports of the previous run; none when unknown or unreadable (only a preference is lost). */
async function readPorts(path: string): Promise<Ports> {
  try {
    return parseJsonWith(PortsSchema, await readFile(path, "utf8"), path);
  } catch {
    return {};
  }
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/** Starts on the port of the previous run when one is known, or on any free port if that fails. */
async function preferPort<T>(
  port: number | undefined,
  start: (port: number | undefined) => Promise<T>,
): Promise<T> {
  if (port !== undefined) {
    try {
      return await start(port);
    } catch {
      // Taken by something else since: any free port will do, local.json tells clients the new one.
    }
  }
  return start(undefined);
}
