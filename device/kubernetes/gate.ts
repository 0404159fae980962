/**
 * The cluster health gate: a node may take a reboot slot only while the nodes already unavailable
 * (NotReady, cordoned by anyone, or holding a slot) other than itself number at most maxUnavailable - 1.
 * Counting slot holders and unavailable nodes as one set means a node that is both is counted once, and a
 * cluster that is already a node short (a crashed node, an operator's cordon) waits instead of losing two.
 */
import type { NodeInfo } from "./client.ts";

export interface GateVerdict {
  ok: boolean;
  /** The other nodes counted as unavailable, sorted. */
  busy: string[];
}

export function healthGate(
  nodes: readonly NodeInfo[],
  me: string,
  holders: readonly string[],
  maxUnavailable: number,
): GateVerdict {
  const busy = new Set(holders.filter((h) => h !== me));
  for (const n of nodes) if (n.name !== me && (!n.ready || n.unschedulable)) busy.add(n.name);
  return { ok: busy.size <= maxUnavailable - 1, busy: [...busy].sort() };
}
