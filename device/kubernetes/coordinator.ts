/**
 * What the agent asks of the cluster around a reboot, in the order it asks:
 *   waitForSlot (health gate + reboot slot) → cordonAndDrain → beforeReboot (still cordoned, still our slot;
 *   records the reboot) → … reboot … → nodeReady (Ready with a new bootID) → finish (uncordon, release).
 * `abandon` is finish after a drain timeout or a cancel. Every step is idempotent, so an agent that crashes
 * anywhere re-runs the step of the state it persisted. While a slot is held it is renewed in the background.
 */
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
   * Waits (calling onWaiting once each time it has to wait) until the health gate allows this node and it
   * holds a slot. A gate that closes right after taking the slot (another node became NotReady in between)
   * gives the slot back and waits again, so a race never takes the cluster over budget.
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
      // A little jitter so nodes that lost the same race do not retry in lockstep.
      const jitter = Math.floor(
        (((attempt * 7919 + this.node.length * 104729) % 997) / 997) * this.config.pollIntervalMs * 0.5,
      );
      await this.clock.sleep(this.config.pollIntervalMs + jitter, signal);
    }
  }

  /** null when the slot is ours; otherwise why not yet. */
  private async tryTakeSlot(): Promise<string | null> {
    // Cheap first: while every slot is held by others, do not list the cluster's Nodes (API server load
    // from a whole cluster of waiting nodes stays at N Lease reads each per poll).
    const held = (await this.slots.holders()).filter((h) => h !== this.node);
    if (held.length >= this.config.maxUnavailable) return `no free reboot slot (held by ${held.join(", ")})`;
    const gateBefore = healthGate(await this.client.listNodes(), this.node, held, this.config.maxUnavailable);
    if (!gateBefore.ok) return `cluster health gate: unavailable ${gateBefore.busy.join(", ")}`;
    const r = await this.slots.tryAcquire();
    if (!r.ok) {
      return r.reason === "too-soon"
        ? `minSecondsBetweenReboots: ${Math.ceil(r.retryInMs / 1000)}s to go`
        : `no free reboot slot (held by ${r.holders.join(", ")})`;
    }
    const gateAfter = healthGate(
      await this.client.listNodes(),
      this.node,
      await this.slots.holders(),
      this.config.maxUnavailable,
    );
    if (!gateAfter.ok) {
      await this.slots.release();
      return `cluster health gate closed while taking the slot: unavailable ${gateAfter.busy.join(", ")}`;
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
        last = (err as Error).message;
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
