/**
 * The e2e environment: the real dev environment (local cloud, Lambda wiring, the CLI's code paths, a
 * simulated fleet of real agents) in a temp dir, plus the observers the tests assert through — the rollout
 * API, the IoT control plane via @aws-sdk/client-iot, and each node's slots and GRUB environment on disk.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import {
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  IoTClient,
  ListJobExecutionsForJobCommand,
  ListThingsInThingGroupCommand,
} from "@aws-sdk/client-iot";
import { cliTooling } from "../../cli/commands/dev.ts";
import { GrubBootControl } from "../../device/boot/grub.ts";
import type { BootState, Slot } from "../../device/boot/types.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { type DevEnvironment, startDevEnvironment } from "../../local/fleet/environment.ts";
import { readImageInfo } from "../../local/fleet/image-info.ts";
import { nodeFiles } from "../../local/fleet/node.ts";

export interface E2E {
  tmp: string;
  env: DevEnvironment;
  iot: IoTClient;
  stop(): Promise<void>;
}

export const discard = () =>
  new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });

export async function startE2E(
  fleet: string,
  devices: number,
  options: { kubernetes?: boolean } = {},
): Promise<E2E> {
  const tmp = await mkdtemp(join(tmpdir(), `keel-e2e-${fleet}-`));
  const dir = join(tmp, "keel");
  const env = await startDevEnvironment({ dir, fleet, devices, tooling: cliTooling(dir), ...options });
  const iot = new IoTClient({
    region: env.info.region,
    endpoint: env.info.iot,
    credentials: LOCAL_CREDENTIALS,
  });
  return {
    tmp,
    env,
    iot,
    async stop() {
      iot.destroy();
      await env.stop();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** Every execution of a job, through ListJobExecutionsForJob (paged). */
export async function executions(iot: IoTClient, jobId: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let nextToken: string | undefined;
  do {
    const r = await iot.send(new ListJobExecutionsForJobCommand({ jobId, maxResults: 100, nextToken }));
    for (const e of r.executionSummaries ?? []) {
      const thing = e.thingArn?.slice(e.thingArn.lastIndexOf("/") + 1) ?? "";
      out.set(thing, e.jobExecutionSummary?.status ?? "");
    }
    nextToken = r.nextToken;
  } while (nextToken);
  return out;
}

export async function executionDetails(
  iot: IoTClient,
  jobId: string,
  thingName: string,
): Promise<{ status: string; details: Record<string, string> }> {
  const r = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName }));
  return { status: r.execution?.status ?? "", details: r.execution?.statusDetails?.detailsMap ?? {} };
}

/** True when IoT knows the job (DescribeJob), false on ResourceNotFoundException. */
export async function jobExists(iot: IoTClient, jobId: string): Promise<boolean> {
  try {
    await iot.send(new DescribeJobCommand({ jobId }));
    return true;
  } catch (err) {
    if ((err as Error).name === "ResourceNotFoundException") return false;
    throw err;
  }
}

export async function groupMembers(iot: IoTClient, group: string): Promise<string[]> {
  const out: string[] = [];
  let nextToken: string | undefined;
  do {
    const r = await iot.send(
      new ListThingsInThingGroupCommand({ thingGroupName: group, maxResults: 100, nextToken }),
    );
    out.push(...(r.things ?? []));
    nextToken = r.nextToken;
  } while (nextToken);
  return out;
}

export interface DiskView {
  booted: Slot;
  boot: BootState;
  /** VERSION inside each slot's image; null for a slot with no readable image. */
  versions: Record<Slot, string | null>;
}

/** What is on a node's disk: the command line, the GRUB environment, and what each slot's image says. */
export async function onDisk(env: DevEnvironment, thing: string): Promise<DiskView> {
  const files = nodeFiles(join(env.paths.fleet, thing));
  const cmdline = await readFile(files.cmdline, "utf8");
  const booted = /keel\.slot=([AB])/.exec(cmdline)?.[1] as Slot;
  const boot = await new GrubBootControl(files.grubenv).readState();
  const [a, b] = await Promise.all([readImageInfo(files.slotA), readImageInfo(files.slotB)]);
  return { booted, boot, versions: { A: a?.version ?? null, B: b?.version ?? null } };
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
