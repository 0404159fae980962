/**
 * The cluster's reboot slots: a counting semaphore of `maxUnavailable` Leases (`keel-reboot-slot-0` …) in one
 * namespace. A slot is free when its Lease has no holder or the holder stopped renewing for longer than the
 * lease duration (a dead node cannot block the cluster forever). Taking or giving back a slot is a write with
 * the Lease's resourceVersion, so two nodes racing for one slot cannot both win: the loser gets 409 and tries
 * the next slot. Slots are recursive: a holder that asks again (after a crash or reboot) keeps its own.
 * The Leases also carry the cluster's last reboot time (minSecondsBetweenReboots) and, for the holder,
 * the bootID it had before rebooting, so the Node Ready check after the reboot can tell a new boot.
 */
import type { KubeClient, LeaseInfo, LeaseWrite } from "./client.ts";

export const SLOT_LEASE_PREFIX = "keel-reboot-slot-";
export const LAST_REBOOT_ANNOTATION = "keel.dev/last-reboot";
export const BOOT_ID_ANNOTATION = "keel.dev/boot-id-before-reboot";

export interface RebootSlotsOptions {
  namespace: string;
  maxUnavailable: number;
  leaseDurationSeconds: number;
  minSecondsBetweenReboots: number;
  /** This node's identity (its node name). */
  identity: string;
  now: () => number;
}

export type AcquireResult =
  | { ok: true; lease: LeaseInfo }
  | { ok: false; reason: "no-slot"; holders: string[] }
  | { ok: false; reason: "too-soon"; retryInMs: number };

export const slotName = (i: number) => `${SLOT_LEASE_PREFIX}${i}`;

export class RebootSlots {
  constructor(
    private readonly client: KubeClient,
    private readonly o: RebootSlotsOptions,
  ) {}

  /** A holder counts while it renews within its duration. */
  isLive(l: LeaseInfo | null, now = this.o.now()): l is LeaseInfo & { holder: string } {
    if (!l?.holder || l.renewTimeMs === null) return false;
    return l.renewTimeMs + (l.durationSeconds ?? this.o.leaseDurationSeconds) * 1000 > now;
  }

  async read(): Promise<Array<{ name: string; lease: LeaseInfo | null }>> {
    return Promise.all(
      Array.from({ length: this.o.maxUnavailable }, async (_, i) => ({
        name: slotName(i),
        lease: await this.client.getLease(this.o.namespace, slotName(i)),
      })),
    );
  }

  /** Live holders of the slots now. */
  async holders(): Promise<string[]> {
    const now = this.o.now();
    return (await this.read()).flatMap((s) => (this.isLive(s.lease, now) ? [s.lease.holder] : []));
  }

  /** The slot this node holds (even if it lapsed while the node was rebooting and nobody took it since). */
  async mine(): Promise<LeaseInfo | null> {
    return (await this.read()).find((s) => s.lease?.holder === this.o.identity)?.lease ?? null;
  }

  private lastReboot(slots: Array<{ lease: LeaseInfo | null }>): number {
    let last = 0;
    for (const s of slots) {
      const at = Date.parse(s.lease?.annotations[LAST_REBOOT_ANNOTATION] ?? "");
      if (Number.isFinite(at) && at > last) last = at;
    }
    return last;
  }

  private write(
    l: LeaseInfo | null,
    name: string,
    change: Partial<LeaseWrite>,
  ): Promise<LeaseInfo | "conflict"> {
    return this.client.writeLease(this.o.namespace, {
      name,
      ...(l ? { resourceVersion: l.resourceVersion } : {}),
      holder: l?.holder ?? null,
      durationSeconds: this.o.leaseDurationSeconds,
      renewTimeMs: l?.renewTimeMs ?? null,
      acquireTimeMs: l?.acquireTimeMs ?? null,
      transitions: l?.transitions ?? 0,
      annotations: l?.annotations ?? {},
      ...change,
    });
  }

  /** Takes a free slot (or confirms ours). Never blocks: the caller decides how long to wait. */
  async tryAcquire(): Promise<AcquireResult> {
    const now = this.o.now();
    const slots = await this.read();
    const own = slots.find((s) => s.lease?.holder === this.o.identity && this.isLive(s.lease, now));
    if (own?.lease) {
      const r = await this.write(own.lease, own.name, { renewTimeMs: now });
      if (r !== "conflict") return { ok: true, lease: r };
    }
    const wait = this.lastReboot(slots) + this.o.minSecondsBetweenReboots * 1000 - now;
    if (wait > 0) return { ok: false, reason: "too-soon", retryInMs: wait };
    for (const s of slots) {
      if (this.isLive(s.lease, now)) continue;
      const { [BOOT_ID_ANNOTATION]: _stale, ...keep } = s.lease?.annotations ?? {};
      const r = await this.write(s.lease, s.name, {
        holder: this.o.identity,
        renewTimeMs: now,
        acquireTimeMs: now,
        transitions: (s.lease?.transitions ?? 0) + (s.lease?.holder ? 1 : 0),
        annotations: keep,
      });
      if (r !== "conflict") return { ok: true, lease: r };
      // Someone else took this one first (409): try the next.
    }
    return {
      ok: false,
      reason: "no-slot",
      holders: slots.flatMap((s) => (this.isLive(s.lease, now) ? [s.lease.holder] : [])),
    };
  }

  /** Renews our slot; false when it is no longer ours (it lapsed and someone took it). */
  async renew(): Promise<boolean> {
    const l = await this.mine();
    if (!l) return false;
    const r = await this.write(l, l.name, { renewTimeMs: this.o.now() });
    return r !== "conflict" || (await this.mine()) !== null;
  }

  /** Records the reboot about to happen: the cluster's last reboot time and our bootID before it. */
  async recordReboot(bootID: string | null): Promise<boolean> {
    const l = await this.mine();
    if (!l || !this.isLive(l)) return false;
    const now = this.o.now();
    const annotations: Record<string, string> = {
      ...l.annotations,
      [LAST_REBOOT_ANNOTATION]: new Date(now).toISOString(),
    };
    if (bootID) annotations[BOOT_ID_ANNOTATION] = bootID;
    return (await this.write(l, l.name, { renewTimeMs: now, annotations })) !== "conflict";
  }

  /** The bootID recorded before our reboot, if we still hold the slot that recorded it. */
  async bootIdBeforeReboot(): Promise<string | null> {
    return (await this.mine())?.annotations[BOOT_ID_ANNOTATION] ?? null;
  }

  /** Gives our slot back (keeping the last-reboot time on it); a conflict means someone changed it: re-read. */
  async release(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const l = await this.mine();
      if (!l) return;
      const { [BOOT_ID_ANNOTATION]: _gone, ...annotations } = l.annotations;
      const r = await this.write(l, l.name, {
        holder: null,
        renewTimeMs: null,
        acquireTimeMs: null,
        annotations,
      });
      if (r !== "conflict") return;
    }
  }
}
