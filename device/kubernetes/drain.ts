/**
 * Cordon and drain through the Eviction API, as `kubectl drain --ignore-daemonsets --delete-emptydir-data`
 * does: DaemonSet pods and mirror (static) pods stay, completed pods are deleted, every other pod is evicted
 * in parallel; a PodDisruptionBudget refusal (429) is retried with capped backoff; each eviction is followed
 * until the pod is really gone. All of it within one deadline: past it, the pods still there are named.
 */
import { type AgentClock, backoffMs } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { KubeClient, NodeInfo, PodInfo } from "./client.ts";
import { DrainTimeoutError } from "./errors.ts";

/** Set on a node we cordoned, so we uncordon only what we cordoned (never an operator's cordon). */
export const CORDONED_BY_ANNOTATION = "keel.dev/cordoned-by";

export async function cordon(client: KubeClient, node: string, identity: string): Promise<NodeInfo> {
  const n = await client.getNode(node);
  if (n.unschedulable) return n; // already cordoned (by us before a restart, or by an operator): leave as is
  return client.patchNode(node, { unschedulable: true, annotations: { [CORDONED_BY_ANNOTATION]: identity } });
}

/** Uncordons only a cordon we made; an operator's cordon stays. */
export async function uncordon(client: KubeClient, node: string, identity: string): Promise<boolean> {
  const n = await client.getNode(node);
  if (n.annotations[CORDONED_BY_ANNOTATION] !== identity) return false;
  await client.patchNode(node, { unschedulable: false, annotations: { [CORDONED_BY_ANNOTATION]: null } });
  return true;
}

/** Pods a drain leaves alone. */
export function skippedByDrain(p: PodInfo): string | null {
  if (p.mirror) return "mirror pod";
  if (p.controllerKind === "DaemonSet") return "DaemonSet pod";
  return null;
}

export interface DrainOptions {
  node: string;
  timeoutMs: number;
  gracePeriodSeconds?: number;
  /** First wait after a refusal, and between checks that an evicted pod is gone. */
  pollIntervalMs: number;
  maxBackoffMs: number;
  clock: AgentClock;
  logger: Logger;
  signal: AbortSignal;
}

export interface DrainResult {
  evicted: number;
  deleted: number;
  /** Evictions refused by a budget (429) before they went through. */
  refusals: number;
}

export async function drain(client: KubeClient, o: DrainOptions): Promise<DrainResult> {
  const deadline = o.clock.now() + o.timeoutMs;
  const pods = (await client.podsOn(o.node)).filter((p) => {
    const why = skippedByDrain(p);
    if (why) o.logger.debug("drain skips pod", { pod: `${p.namespace}/${p.name}`, why });
    return !why;
  });
  const result: DrainResult = { evicted: 0, deleted: 0, refusals: 0 };
  const last = new Map<string, string>();
  const left = new Set(pods.map((p) => `${p.namespace}/${p.name}`));
  const timedOut = () => o.clock.now() >= deadline;
  // Sleep no later than the deadline, so a timeout is noticed on time.
  const pause = (ms: number) => o.clock.sleep(Math.max(0, Math.min(ms, deadline - o.clock.now())), o.signal);

  const one = async (p: PodInfo): Promise<void> => {
    const id = `${p.namespace}/${p.name}`;
    if (p.phase === "Succeeded" || p.phase === "Failed") {
      await client.deletePod(p.namespace, p.name, 0);
      result.deleted++;
    } else {
      for (let attempt = 0; ; attempt++) {
        const r = await client.evict(p.namespace, p.name, o.gracePeriodSeconds);
        if (r === "evicted" || r === "gone") {
          if (r === "evicted") result.evicted++;
          break;
        }
        result.refusals++;
        last.set(id, r === "blocked" ? "PodDisruptionBudget" : "more than one PodDisruptionBudget");
        if (timedOut()) return;
        await pause(backoffMs(attempt, o.pollIntervalMs, o.maxBackoffMs));
        if (timedOut()) return;
      }
    }
    last.set(id, "terminating");
    while ((await client.getPod(p.namespace, p.name, p.uid)) !== null) {
      if (timedOut()) return;
      await pause(Math.min(o.pollIntervalMs, 1000));
    }
    left.delete(id);
  };

  await Promise.all(pods.map(one));
  if (left.size > 0) {
    throw new DrainTimeoutError(
      o.node,
      Math.round(o.timeoutMs / 1000),
      [...left].sort().map((pod) => ({ pod, reason: last.get(pod) ?? "not evicted" })),
    );
  }
  return result;
}
