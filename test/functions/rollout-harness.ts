/**
 * The end-to-end rollout setup shared by the flow tests: the local cloud on a manual clock, the functions
 * wired to it (rollout API over signed HTTP, advance-rollout on job events; the schedule only when a test
 * ticks it), trust root 1, releases 1.0.0 and 1.1.0 registered, and simulated devices over MQTT.
 */
import { vi } from "vitest";
import { ApiClient } from "../../cli/api-client.ts";
import { bucketOf } from "../../core/waves.ts";
import type { Env } from "../../functions/env.ts";
import type { RolloutView } from "../../functions/rollout-api/contract.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { type FunctionsWiring, startFunctionsWiring } from "../../local/functions-wiring.ts";
import { startTestCloud, type TestCloud } from "./cloud.ts";
import { type Credentials, type Outcome, SimDevice } from "./devices.ts";
import { makeRelease, makeTrust, putBytes, putJson } from "./fixtures.ts";

export type { RolloutView };

export interface RolloutHarness {
  readonly cloud: TestCloud;
  readonly wiring: FunctionsWiring;
  readonly api: ApiClient;
  /** Registers a thing through the API and connects it as a device answering with `outcome`. */
  registerDevice(fleet: string, name: string, outcome: Outcome): Promise<SimDevice>;
  getRollout(id: string): Promise<RolloutView>;
  /** Polls GET /rollouts/{id} until `pred` holds (15 s at most). */
  until(id: string, pred: (r: RolloutView) => boolean, what: string): Promise<RolloutView>;
  stop(): Promise<void>;
}

export async function startRolloutHarness(logLevel: Env["LOG_LEVEL"] = "silent"): Promise<RolloutHarness> {
  const cloud = await startTestCloud();
  // A long tick: the tests drive the schedule with wiring.tick() after moving the manual clock.
  const wiring = await startFunctionsWiring(cloud, { tickSeconds: 3600, logLevel });
  const api = new ApiClient({
    apiUrl: wiring.apiUrl,
    region: cloud.info.region,
    credentials: LOCAL_CREDENTIALS,
  });
  const devices: SimDevice[] = [];
  const trust = makeTrust();
  const image = new Uint8Array(2048).fill(3);

  async function publish(version: string, counter: number) {
    await putBytes(cloud.s3, cloud.info.bucket, `releases/${version}/image.squashfs`, image);
    await putJson(
      cloud.s3,
      cloud.info.bucket,
      `releases/${version}/release.json`,
      makeRelease({ version, counter, image, key: trust.key }),
    );
    // Registration runs from s3rver's ObjectCreated event through the wiring.
    await vi.waitFor(
      async () => {
        if ((await cloud.store.getRelease(version))?.status !== "VERIFIED")
          throw new Error(`waiting for ${version} to be VERIFIED`);
      },
      { timeout: 10_000 },
    );
  }

  const getRollout = async (id: string) => (await api.get(`/rollouts/${id}`)) as RolloutView;

  await putJson(cloud.s3, cloud.info.bucket, "trust/root.1.json", trust.root1);
  await publish("1.0.0", 1);
  await publish("1.1.0", 2);

  return {
    cloud,
    wiring,
    api,
    async registerDevice(fleet, name, outcome) {
      const creds = (await api.post(`/fleets/${fleet}/things`, {
        thingName: name,
        version: "1.0.0",
      })) as Credentials;
      const d = new SimDevice(creds, cloud.broker.url, cloud.ca.caCertPem, outcome);
      await d.connect();
      devices.push(d);
      return d;
    },
    getRollout,
    async until(id, pred, what) {
      let last: RolloutView | undefined;
      await vi.waitFor(
        async () => {
          last = await getRollout(id);
          if (!pred(last))
            throw new Error(`waiting for ${what}; rollout is ${last.status} at wave ${last.current + 1}`);
        },
        { timeout: 15_000, interval: 50 },
      );
      return last as RolloutView;
    },
    async stop() {
      await Promise.all(devices.map((d) => d.stop()));
      await wiring.stop();
      await cloud.stop();
    },
  };
}

/** Names whose buckets fall in each [from, to) range, `count` of each, in range order. */
export function namesInBuckets(
  prefix: string,
  ranges: Array<[from: number, to: number, count: number]>,
): string[][] {
  const out = ranges.map(() => [] as string[]);
  for (let i = 0; ranges.some(([, , count], k) => (out[k]?.length ?? 0) < count); i++) {
    const n = `${prefix}-${i}`;
    const b = bucketOf(n);
    const k = ranges.findIndex(
      ([from, to, count], j) => b >= from && b < to && (out[j]?.length ?? 0) < count,
    );
    if (k >= 0) out[k]?.push(n);
  }
  return out;
}

/** Names whose buckets fall below and above 50, so both halves of a 50 % wave have devices. */
export function namesAround(prefix: string, below: number, above: number): string[] {
  return namesInBuckets(prefix, [
    [0, 50, below],
    [50, 100, above],
  ]).flat();
}
