/**
 * The reboot-slot semaphore over real Leases on the stand-in, through @kubernetes/client-node. fast-check's
 * scheduler decides the order in which the nodes' API calls reach the server, so the interleavings tested
 * are the ones racing nodes could produce.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../../device/kubernetes/client.ts";
import { LAST_REBOOT_ANNOTATION, RebootSlots } from "../../../device/kubernetes/semaphore.ts";
import { startTestCluster, type TestCluster } from "../../local/k8s/helpers.ts";

let c: TestCluster;
beforeAll(async () => {
  c = await startTestCluster();
});
afterAll(() => c.stop());

const slotsFor = (
  client: KubeClient,
  identity: string,
  namespace: string,
  max: number,
  now: () => number,
  extra = {},
) =>
  new RebootSlots(client, {
    namespace,
    maxUnavailable: max,
    leaseDurationSeconds: 60,
    minSecondsBetweenReboots: 0,
    identity,
    now,
    ...extra,
  });

/** Every client call starts only when the scheduler says so. */
function scheduled(s: fc.Scheduler, client: KubeClient): KubeClient {
  const wrapped = {} as Record<string, unknown>;
  for (const [k, fn] of Object.entries(client)) {
    wrapped[k] = s.scheduleFunction((...args: unknown[]) =>
      (fn as (...a: unknown[]) => Promise<unknown>)(...args),
    );
  }
  return wrapped as unknown as KubeClient;
}

let run = 0;
describe("reboot slots", () => {
  it("never has more than maxUnavailable live holders, whatever the interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        async (s, max, nodes, releaseAfter) => {
          const ns = `prop-${run++}`;
          const now = Date.now();
          const client = scheduled(s, c.client);
          let holding = 0;
          let peak = 0;
          const node = async (i: number) => {
            const slots = slotsFor(client, `node-${i}`, ns, max, () => now);
            const r = await slots.tryAcquire();
            if (!r.ok) return;
            holding++;
            peak = Math.max(peak, holding);
            if (releaseAfter[i]) {
              holding--;
              await slots.release();
            }
          };
          const all = Promise.all(Array.from({ length: nodes }, (_, i) => node(i)));
          await s.waitFor(all);
          expect(peak).toBeLessThanOrEqual(max);
          const live = await slotsFor(c.client, "observer", ns, max, () => now).holders();
          expect(live.length).toBeLessThanOrEqual(max);
          expect(new Set(live).size).toBe(live.length);
        },
      ),
      { numRuns: 10 },
    );
  });

  it("a holder that stops renewing loses its slot after the lease duration; the next node proceeds", async () => {
    let t = Date.now();
    const a = slotsFor(c.client, "a", "expiry", 1, () => t);
    const b = slotsFor(c.client, "b", "expiry", 1, () => t);
    expect((await a.tryAcquire()).ok).toBe(true);
    expect(await b.tryAcquire()).toMatchObject({ ok: false, reason: "no-slot", holders: ["a"] });
    t += 59_000;
    expect((await b.tryAcquire()).ok).toBe(false);
    t += 2_000; // a has not renewed for 61 s of a 60 s lease: it is dead
    expect((await b.tryAcquire()).ok).toBe(true);
    expect(await a.renew()).toBe(false);
    const lease = await c.client.getLease("expiry", "keel-reboot-slot-0");
    expect([lease?.holder, lease?.transitions]).toEqual(["b", 1]);
  });

  it("a holder asking again keeps its own slot (recursive), and release keeps the last reboot time", async () => {
    let t = Date.now();
    const a = slotsFor(c.client, "a", "recursive", 2, () => t, { minSecondsBetweenReboots: 30 });
    const b = slotsFor(c.client, "b", "recursive", 2, () => t, { minSecondsBetweenReboots: 30 });
    const first = await a.tryAcquire();
    const again = await a.tryAcquire();
    expect(first.ok && again.ok && first.lease.name === again.lease.name).toBe(true);
    expect(await a.recordReboot("boot-1")).toBe(true);
    expect(await a.bootIdBeforeReboot()).toBe("boot-1");
    await a.release();
    const lease = await c.client.getLease("recursive", "keel-reboot-slot-0");
    expect(lease?.holder).toBeNull();
    expect(lease?.annotations[LAST_REBOOT_ANNOTATION]).toBeDefined();
    // minSecondsBetweenReboots: b waits although a slot is free.
    expect(await b.tryAcquire()).toMatchObject({ ok: false, reason: "too-soon" });
    t += 31_000;
    expect((await b.tryAcquire()).ok).toBe(true);
  });
});
