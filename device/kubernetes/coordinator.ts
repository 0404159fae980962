/**
 * What the agent asks of the cluster around a reboot, in the order it asks:
 *   waitForSlot (reboot slot, then health gate) → cordonAndDrain → beforeReboot (still cordoned, still our slot;
 *   records the reboot) → … reboot … → nodeReady (Ready with a new bootID) → finish (uncordon, release).
 * `abandon` is finish after a drain timeout or a cancel. Every step is idempotent, so an agent that crashes
 * anywhere re-runs the step of the state it persisted. While a slot is held it is renewed in the background.
 */

import { describeError } from "../../core/errors.ts";
import type { AgentClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { KubeClient } from "./client.ts";
import { type KubernetesConfig, nodeNameOf } from "./config.ts";
import { cordon, type DrainResult, drain, uncordon } from "./drain.ts";
import { RebootPreconditionError } from "./errors.ts";
import { healthGate } from "./gate.ts";
import type { AgentMetrics } from "./metrics.ts";
import { RebootSlots } from "./semaphore.ts";

export interface CoordinatorOptions {
  config: KubernetesConfig;
  thingName: string;
  client: KubeClient;
  clock: AgentClock;
  logger: Logger;
  metrics?: AgentMetrics;
}

export class KubernetesCoordinator {
  readonly node: string;
  readonly slots: RebootSlots;
  private renewer: AbortController | null = null;
  private readonly config: KubernetesConfig;
  private readonly client: KubeClient;
  private readonly clock: AgentClock;
  private readonly logger: Logger;

  constructor(private readonly o: CoordinatorOptions) {
    this.config = o.config;
    this.client = o.client;
    this.clock = o.clock;
    this.logger = o.logger.child({ node: nodeNameOf(o.config, o.thingName) });
    this.node = nodeNameOf(o.config, o.thingName);
    this.slots = new RebootSlots(o.client, {
      namespace: o.config.namespace,
      maxUnavailable: o.config.maxUnavailable,
      leaseDurationSeconds: o.config.leaseDurationSeconds,
      minSecondsBetweenReboots: o.config.minSecondsBetweenReboots,
      identity: this.node,
      now: () => o.clock.now(),
    });
  }

  /** After a restart: keep renewing a slot we still hold. */
  async resume(): Promise<void> {
    if (await this.slots.mine()) this.startRenewing();
  }

  /**
   * Waits (calling onWaiting once each time it has to wait) until this node holds a slot and the health gate
   * allows it. The slot comes first and only its winner lists the cluster's Nodes: while every slot is held,
   * a waiting node reads the slot Leases and nothing else, so a release does not send the whole cluster to
   * list Nodes. A winner the gate refuses (another node NotReady or cordoned) gives the slot back and waits,
   * so the slot never stays with a node that is not going to reboot.
   */
  async waitForSlot(signal: AbortSignal, onWaiting: (why: string) => void): Promise<void> {
    const started = this.clock.now();
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      const why = await this.tryTakeSlot();
      if (why === null) {
        this.o.metrics?.observeSlotWait((this.clock.now() - started) / 1000);
        this.o.metrics?.setHoldsSlot(true);
        this.startRenewing();
        return;
      }
      onWaiting(why);
      await this.clock.sleep(waitJitterMs(this.node, attempt, this.config.pollIntervalMs), signal);
    }
  }

  /** null when the slot is ours and the gate lets us go; otherwise why not yet (and no slot kept). */
  private async tryTakeSlot(): Promise<string | null> {
    const r = await this.slots.tryAcquire();
    if (!r.ok) {
      return r.reason === "too-soon"
        ? `minSecondsBetweenReboots: ${Math.ceil(r.retryInMs / 1000)}s to go`
        : `no free reboot slot (held by ${r.holders.join(", ")})`;
    }
    // Holding a slot, the other holders are at most maxUnavailable - 1; the gate adds the nodes that are
    // NotReady or cordoned by someone else (a crashed node, an operator's cordon) to that count.
    const gate = healthGate(
      await this.client.listNodes(),
      this.node,
      await this.slots.holders(),
      this.config.maxUnavailable,
    );
    if (!gate.ok) {
      await this.slots.release();
      return `cluster health gate: unavailable ${gate.busy.join(", ")}`;
    }
    return null;
  }

  async cordonAndDrain(signal: AbortSignal): Promise<DrainResult> {
    const started = this.clock.now();
    await cordon(this.client, this.node, this.node);
    try {
      const r = await drain(this.client, {
        node: this.node,
        timeoutMs: this.config.drainTimeoutSeconds * 1000,
        gracePeriodSeconds: this.config.podGracePeriodSeconds,
        pollIntervalMs: this.config.pollIntervalMs,
        maxBackoffMs: this.config.maxBackoffMs,
        clock: this.clock,
        logger: this.logger,
        signal,
      });
      this.o.metrics?.observeDrain((this.clock.now() - started) / 1000, "drained");
      return r;
    } catch (err) {
      if (!signal.aborted) this.o.metrics?.observeDrain((this.clock.now() - started) / 1000, "timeout");
      throw err;
    }
  }

  /** Right before the reboot: still cordoned, still our slot; then record the reboot on the slot. */
  async beforeReboot(): Promise<void> {
    const n = await this.client.getNode(this.node);
    if (!n.unschedulable) throw new RebootPreconditionError(`node ${this.node} is no longer cordoned`);
    const mine = await this.slots.mine();
    if (!mine || !this.slots.isLive(mine)) {
      throw new RebootPreconditionError(
        `node ${this.node} no longer holds a reboot slot (it lapsed or was taken)`,
      );
    }
    if (!(await this.slots.recordReboot(n.bootID))) {
      throw new RebootPreconditionError(`node ${this.node} lost its reboot slot while recording the reboot`);
    }
  }

  /** Ready, and (when the boot before was recorded) with a different bootID, before the deadline. */
  async nodeReady(
    deadlineMs: number,
    signal: AbortSignal,
    o: { newBoot: boolean } = { newBoot: true },
  ): Promise<{ ok: true } | { ok: false; reason: string }> {
    // newBoot: after the update's reboot the Node must report a bootID other than the one recorded before it.
    const before = o.newBoot ? await this.slots.bootIdBeforeReboot().catch(() => null) : null;
    const until = this.clock.now() + deadlineMs;
    let last = "not checked";
    for (;;) {
      try {
        const n = await this.client.getNode(this.node);
        if (!n.ready) last = `node ${this.node} is not Ready`;
        else if (before !== null && n.bootID === before)
          last = `node ${this.node} still reports the bootID from before the reboot`;
        else return { ok: true };
      } catch (err) {
        last = describeError(err);
      }
      if (this.clock.now() >= until) return { ok: false, reason: `Node Ready check: ${last}` };
      await this.clock.sleep(
        Math.min(this.config.pollIntervalMs, 1000, Math.max(0, until - this.clock.now())),
        signal,
      );
    }
  }

  /** Uncordon (only our cordon) and give the slot back. Idempotent. */
  async finish(): Promise<void> {
    this.stopRenewing();
    if (await uncordon(this.client, this.node, this.node)) this.logger.info("uncordoned");
    await this.slots.release();
    this.o.metrics?.setHoldsSlot(false);
  }

  private startRenewing(): void {
    if (this.renewer) return;
    const ctl = new AbortController();
    this.renewer = ctl;
    const every = Math.max(1000, (this.config.leaseDurationSeconds * 1000) / 3);
    void (async () => {
      while (!ctl.signal.aborted) {
        await this.clock.sleep(every, ctl.signal).catch(() => {});
        if (ctl.signal.aborted) return;
        const ok = await this.slots.renew().catch((err: unknown) => {
          this.logger.warn("reboot slot renewal failed", { error: err });
          return true;
        });
        if (!ok) {
          this.logger.warn("reboot slot lost");
          return;
        }
      }
    })();
  }

  stopRenewing(): void {
    this.renewer?.abort();
    this.renewer = null;
  }
}

/**
 * How long a waiting node sleeps before its next try: pollIntervalMs spread over [0.5, 1.5) of it by a hash of
 * the node's name and the attempt. Nodes that started waiting together (a wave) and saw the same release
 * then wake at different moments instead of racing for the slot in one burst; being a hash, not a random
 * number, a node's schedule is reproducible in its logs.
 */
export function waitJitterMs(node: string, attempt: number, pollIntervalMs: number): number {
  // FNV-1a over "node#attempt".
  let h = 0x811c9dc5;
  for (const ch of `${node}#${attempt}`) h = Math.imul(h ^ (ch.codePointAt(0) ?? 0), 0x01000193);
  const spread = (h >>> 0) / 0x1_0000_0000;
  return Math.round(pollIntervalMs * (0.5 + spread));
}
