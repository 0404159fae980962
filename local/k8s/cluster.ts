/**
 * The cluster the Kubernetes stand-in serves: nodes, pods, leases, PodDisruptionBudgets, and two tiny
 * controllers (a ReplicaSet-like one that replaces evicted replicas on another schedulable node, and a
 * DaemonSet one that keeps one pod per node). It also watches itself the way an operator would watch a real
 * cluster: how many nodes are unavailable (NotReady or cordoned) at once, whether any PodDisruptionBudget
 * ever fell below its minimum after it was first met, and how many drains happened. Those numbers come
 * from the objects, never from what the agents claim.
 */
import { randomUUID } from "node:crypto";
import { describeError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import type { Clock } from "../contracts.ts";
import { KubeApiError, notFound } from "./errors.ts";
import {
  type Condition,
  controllerOf,
  DeleteOptionsSchema,
  EvictionSchema,
  isReady,
  type Lease,
  LeaseSchema,
  type Node,
  NodeSchema,
  type Pdb,
  PdbSchema,
  type Pod,
  PodSchema,
  rfc3339,
  type Workload,
  WorkloadSchema,
} from "./model.ts";
import { applyPatch } from "./patch.ts";
import { matchLabels } from "./selectors.ts";

export const KEEL_CORDON_ANNOTATION = "keel.dev/cordoned-by";
export const MIRROR_ANNOTATION = "kubernetes.io/config.mirror";

export interface ClusterState {
  resourceVersion: number;
  nodes: Node[];
  pods: Pod[];
  leases: Lease[];
  pdbs: Pdb[];
  daemonSets: Workload[];
  replicaSets: Workload[];
  stats: ClusterStats;
}

export interface ClusterStats {
  /** Most nodes unavailable (NotReady or unschedulable) at the same moment. */
  maxUnavailableObserved: number;
  /** Times a PodDisruptionBudget went from met to not met. */
  pdbViolations: number;
  /** Nodes that had at least one pod evicted while cordoned (one per cordon). */
  drains: number;
  evictions: number;
  /** Evictions refused with 429 because a budget did not allow them. */
  evictionsBlocked: number;
}

export type ClusterEvent =
  | { type: "cordoned" | "uncordoned" | "ready" | "not-ready"; node: string }
  | { type: "evicted"; node: string; pod: string }
  | { type: "pdb-violated"; pdb: string; healthy: number; desired: number };

export interface ClusterOptions {
  clock: Clock;
  /** How long a new (or restarted) pod takes to become Ready. @default 300 */
  podStartMs?: number;
  /** Called after every change (persistence). */
  onChange?: () => void;
}

const emptyStats = (): ClusterStats => ({
  maxUnavailableObserved: 0,
  pdbViolations: 0,
  drains: 0,
  evictions: 0,
  evictionsBlocked: 0,
});

const key = (ns: string, name: string) => `${ns}/${name}`;
const nsOf = (o: { metadata: { namespace?: string } }) => o.metadata.namespace ?? "default";

/** Ready when phase Running, condition Ready=True and not terminating: what a PDB counts as healthy. */
export const podHealthy = (p: Pod): boolean =>
  p.status.phase === "Running" && isReady(p.status.conditions) && !p.metadata.deletionTimestamp;

export const nodeUnavailable = (n: Node): boolean =>
  n.spec.unschedulable === true || !isReady(n.status.conditions);

function setCondition(
  conditions: Condition[] | undefined,
  type: string,
  status: boolean,
  at: string,
): Condition[] {
  const list = [...(conditions ?? [])];
  const want = status ? "True" : "False";
  const i = list.findIndex((c) => c.type === type);
  const prev = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    ...prev,
    type,
    status: want,
    lastHeartbeatTime: at,
    lastTransitionTime: prev?.status === want ? (prev.lastTransitionTime ?? at) : at,
    reason: type === "Ready" ? (status ? "KubeletReady" : "KubeletNotReady") : (prev?.reason ?? ""),
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

function resolveIntOrPercent(v: number | string, total: number): number {
  if (typeof v === "number") return v;
  return Math.ceil((Number(v.slice(0, -1)) * total) / 100);
}

export class Cluster {
  private rv: number;
  private readonly nodes = new Map<string, Node>();
  private readonly pods = new Map<string, Pod>();
  private readonly leases = new Map<string, Lease>();
  private readonly pdbs = new Map<string, Pdb>();
  private readonly daemonSets = new Map<string, Workload>();
  private readonly replicaSets = new Map<string, Workload>();
  private statsValue: ClusterStats;
  private readonly pdbMet = new Set<string>();
  private readonly draining = new Set<string>();
  private readonly timers = new Set<{ cancel(): void }>();
  private readonly listeners = new Set<(e: ClusterEvent) => void>();
  private readonly clock: Clock;
  private readonly podStartMs: number;
  private stopped = false;

  constructor(
    private readonly opts: ClusterOptions,
    state?: ClusterState,
  ) {
    this.clock = opts.clock;
    this.podStartMs = opts.podStartMs ?? 300;
    this.rv = state?.resourceVersion ?? 1;
    this.statsValue = state?.stats ?? emptyStats();
    for (const n of state?.nodes ?? []) this.nodes.set(n.metadata.name, n);
    for (const p of state?.pods ?? []) this.pods.set(key(nsOf(p), p.metadata.name), p);
    for (const l of state?.leases ?? []) this.leases.set(key(nsOf(l), l.metadata.name), l);
    for (const b of state?.pdbs ?? []) this.pdbs.set(key(nsOf(b), b.metadata.name), b);
    for (const d of state?.daemonSets ?? []) this.daemonSets.set(key(nsOf(d), d.metadata.name), d);
    for (const r of state?.replicaSets ?? []) this.replicaSets.set(key(nsOf(r), r.metadata.name), r);
    // Timers do not survive a restart: re-arm pod starts and terminations from the objects.
    for (const p of this.pods.values()) this.armPod(p);
    for (const b of this.pdbs.values())
      if (this.pdbStatus(b).healthy >= this.pdbStatus(b).desired)
        this.pdbMet.add(key(nsOf(b), b.metadata.name));
  }

  toJSON(): ClusterState {
    return {
      resourceVersion: this.rv,
      nodes: [...this.nodes.values()],
      pods: [...this.pods.values()],
      leases: [...this.leases.values()],
      pdbs: [...this.pdbs.values()],
      daemonSets: [...this.daemonSets.values()],
      replicaSets: [...this.replicaSets.values()],
      stats: this.statsValue,
    };
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get stats(): ClusterStats {
    return { ...this.statsValue };
  }

  /** Starts a new measuring period (the demo resets before each rollout). */
  resetStats(): void {
    this.statsValue = emptyStats();
    this.observe();
  }

  unavailableNodes(): string[] {
    return [...this.nodes.values()].filter(nodeUnavailable).map((n) => n.metadata.name);
  }

  onEvent(listener: (e: ClusterEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
  }

  // ------------------------------------------------------------------ helpers

  private now(): string {
    return rfc3339(this.clock.now());
  }

  private stamp<T extends { metadata: { resourceVersion?: string } }>(o: T): T {
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    return o;
  }

  private newMeta(name: string, namespace?: string) {
    return {
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      uid: randomUUID(),
      creationTimestamp: this.now(),
    };
  }

  private emit(e: ClusterEvent): void {
    for (const l of this.listeners) l(e);
  }

  private after(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = this.clock.setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  /** After every change: controllers, then the watchers, then persistence. */
  private changed(): void {
    this.reconcile();
    this.observe();
    this.opts.onChange?.();
  }

  private observe(): void {
    const unavailable = [...this.nodes.values()].filter(nodeUnavailable).length;
    if (unavailable > this.statsValue.maxUnavailableObserved)
      this.statsValue.maxUnavailableObserved = unavailable;
    for (const b of this.pdbs.values()) {
      const k = key(nsOf(b), b.metadata.name);
      const { healthy, desired } = this.pdbStatus(b);
      if (healthy >= desired) this.pdbMet.add(k);
      else if (this.pdbMet.delete(k)) {
        this.statsValue.pdbViolations++;
        this.emit({ type: "pdb-violated", pdb: k, healthy, desired });
      }
    }
  }

  // ------------------------------------------------------------------ nodes

  listNodes(): Node[] {
    return [...this.nodes.values()];
  }

  getNode(name: string): Node {
    const n = this.nodes.get(name);
    if (!n) throw notFound("nodes", name);
    return n;
  }

  /** Registers a node (what a kubelet does on first start); DaemonSets get their pod on it. */
  addNode(spec: {
    name: string;
    labels?: Record<string, string>;
    ready: boolean;
    bootID: string;
    osImage?: string;
  }): Node {
    if (this.nodes.has(spec.name))
      throw new KubeApiError("AlreadyExists", `nodes "${spec.name}" already exists`);
    const at = this.now();
    const node = parseWith(
      NodeSchema,
      {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          ...this.newMeta(spec.name),
          labels: { "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", ...spec.labels },
        },
        spec: {},
        status: {
          conditions: setCondition([], "Ready", spec.ready, at),
          nodeInfo: {
            bootID: spec.bootID,
            kubeletVersion: "v1.35.0",
            osImage: spec.osImage ?? "KeelOS",
            architecture: "amd64",
            operatingSystem: "linux",
            containerRuntimeVersion: "containerd://2.0.0",
            kernelVersion: "6.12.0-keel",
            machineID: spec.name,
            systemUUID: spec.name,
          },
          addresses: [{ type: "Hostname", address: spec.name }],
        },
      },
      `node ${spec.name}`,
    );
    this.nodes.set(spec.name, this.stamp(node));
    this.changed();
    return node;
  }

  /** The simulated kubelet: Ready follows it, and a reboot shows as a new bootID. */
  setNodeReady(name: string, ready: boolean, nodeInfo?: { bootID?: string; osImage?: string }): void {
    const n = this.getNode(name);
    const was = isReady(n.status.conditions);
    n.status = {
      ...n.status,
      conditions: setCondition(n.status.conditions, "Ready", ready, this.now()),
      nodeInfo: { ...n.status.nodeInfo, ...nodeInfo },
    };
    this.stamp(n);
    if (was !== ready) {
      this.emit({ type: ready ? "ready" : "not-ready", node: name });
      // The node lifecycle controller marks pods on a NotReady node not ready; a node back up restarts them.
      for (const p of this.podsOn(name)) {
        if (p.status.phase !== "Running") continue;
        if (!ready) this.setPodReady(p, false);
        else this.armPod(p);
      }
    }
    this.changed();
  }

  /** PUT: the whole object; a stale resourceVersion is a 409 Conflict. */
  replaceNode(name: string, body: unknown): Node {
    const cur = this.getNode(name);
    const next = parseWith(NodeSchema, body, `node ${name}`);
    return this.writeNode(cur, next, false, body);
  }

  patchNode(name: string, contentType: string, patch: unknown, subresource: "status" | null): Node {
    const cur = this.getNode(name);
    const patched = applyPatch(contentType, structuredClone(cur), patch);
    let next: Node;
    try {
      next = parseWith(NodeSchema, patched, `node ${name} after the patch`);
    } catch (err) {
      throw new KubeApiError("Invalid", describeError(err), undefined, { cause: err });
    }
    return this.writeNode(cur, next, subresource === "status", patch);
  }

  private writeNode(cur: Node, next: Node, statusOnly: boolean, body: unknown): Node {
    const name = cur.metadata.name;
    if (next.metadata.name !== name) {
      throw new KubeApiError(
        "BadRequest",
        `the name of the object (${next.metadata.name}) does not match the name in the URL (${name})`,
      );
    }
    const rv = (body as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
    if (rv !== undefined && rv !== cur.metadata.resourceVersion) throw conflict("nodes", name);
    const wasCordoned = cur.spec.unschedulable === true;
    // The main resource ignores status changes and the status subresource ignores everything else, as the
    // API server does; uid and creationTimestamp never change.
    const result: Node = statusOnly
      ? { ...cur, status: next.status }
      : {
          ...next,
          metadata: {
            ...next.metadata,
            uid: cur.metadata.uid,
            creationTimestamp: cur.metadata.creationTimestamp,
          },
          status: cur.status,
        };
    this.nodes.set(name, this.stamp(result));
    const cordoned = result.spec.unschedulable === true;
    if (cordoned !== wasCordoned) {
      this.emit({ type: cordoned ? "cordoned" : "uncordoned", node: name });
      if (!cordoned) this.draining.delete(name);
    }
    this.changed();
    return result;
  }

  // ------------------------------------------------------------------ pods

  listPods(): Pod[] {
    return [...this.pods.values()];
  }

  podsOn(node: string): Pod[] {
    return [...this.pods.values()].filter((p) => p.spec.nodeName === node);
  }

  getPod(ns: string, name: string): Pod {
    const p = this.pods.get(key(ns, name));
    if (!p) throw notFound("pods", name);
    return p;
  }

  /** A standalone pod (no controller): tests use it for what `kubectl drain` refuses without --force. */
  addPod(pod: unknown): Pod {
    const p = parseWith(PodSchema, pod, "pod");
    const ns = nsOf(p);
    if (this.pods.has(key(ns, p.metadata.name)))
      throw new KubeApiError("AlreadyExists", `pods "${p.metadata.name}" already exists`);
    p.metadata = {
      ...p.metadata,
      ...this.newMeta(p.metadata.name, ns),
      labels: p.metadata.labels,
      annotations: p.metadata.annotations,
      ownerReferences: p.metadata.ownerReferences,
    };
    this.pods.set(key(ns, p.metadata.name), this.stamp(p));
    this.armPod(p);
    this.changed();
    return p;
  }

  private setPodReady(p: Pod, ready: boolean): void {
    p.status = { ...p.status, conditions: setCondition(p.status.conditions, "Ready", ready, this.now()) };
    this.stamp(p);
  }

  /** Pods come up podStartMs after they are placed on a Ready node; terminating pods go after their grace. */
  private armPod(p: Pod): void {
    const ns = nsOf(p);
    const name = p.metadata.name;
    const uid = p.metadata.uid;
    if (p.metadata.deletionTimestamp) {
      const due =
        Date.parse(p.metadata.deletionTimestamp) + (p.metadata.deletionGracePeriodSeconds ?? 0) * 1000;
      this.after(Math.max(0, due - this.clock.now()), () => this.removePod(ns, name, uid));
      return;
    }
    const node = p.spec.nodeName ? this.nodes.get(p.spec.nodeName) : undefined;
    if (
      p.status.phase === "Running" &&
      !isReady(p.status.conditions) &&
      node &&
      isReady(node.status.conditions)
    ) {
      this.after(this.podStartMs, () => {
        const cur = this.pods.get(key(ns, name));
        const n = cur?.spec.nodeName ? this.nodes.get(cur.spec.nodeName) : undefined;
        if (
          !cur ||
          cur.metadata.uid !== uid ||
          cur.metadata.deletionTimestamp ||
          !n ||
          !isReady(n.status.conditions)
        )
          return;
        this.setPodReady(cur, true);
        this.changed();
      });
    }
  }

  private removePod(ns: string, name: string, uid: string | undefined): void {
    const p = this.pods.get(key(ns, name));
    if (!p || p.metadata.uid !== uid) return;
    this.pods.delete(key(ns, name));
    this.rv++;
    this.changed();
  }

  /** DELETE: the pod terminates within its grace period (0 = at once). */
  deletePod(ns: string, name: string, body: unknown): Pod {
    const opts = body === undefined ? {} : parseWith(DeleteOptionsSchema, body, "DeleteOptions");
    const p = this.getPod(ns, name);
    if (opts.preconditions?.uid !== undefined && opts.preconditions.uid !== p.metadata.uid) {
      throw new KubeApiError(
        "Conflict",
        `Precondition failed: UID in precondition: ${opts.preconditions.uid}, UID in object meta: ${p.metadata.uid}`,
      );
    }
    if (p.metadata.deletionTimestamp) return p;
    const grace = opts.gracePeriodSeconds ?? p.spec.terminationGracePeriodSeconds ?? 30;
    p.metadata = { ...p.metadata, deletionTimestamp: this.now(), deletionGracePeriodSeconds: grace };
    this.stamp(p);
    this.armPod(p);
    this.changed();
    return p;
  }

  /**
   * POST pods/{name}/eviction with the API server's rules: pods that are not running bypass budgets; more
   * than one budget over the pod is a 500; a budget with no disruption left is a 429; otherwise the pod is
   * deleted with the eviction's delete options.
   */
  evict(ns: string, name: string, body: unknown): void {
    const ev = parseWith(EvictionSchema, body, "Eviction");
    if (ev.metadata.name !== name) {
      throw new KubeApiError("BadRequest", `name in URL does not match name in Eviction object`);
    }
    const p = this.getPod(ns, name);
    const running = p.status.phase === "Running" && !p.metadata.deletionTimestamp;
    if (running) {
      const budgets = [...this.pdbs.values()].filter(
        (b) => nsOf(b) === ns && matchLabels(b.spec.selector.matchLabels, p.metadata.labels),
      );
      if (budgets.length > 1) {
        throw new KubeApiError(
          "InternalError",
          "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        );
      }
      const budget = budgets[0];
      if (budget) {
        const s = this.pdbStatus(budget);
        // A pod that is itself unhealthy costs the budget nothing.
        if (podHealthy(p) && s.disruptionsAllowed <= 0) {
          this.statsValue.evictionsBlocked++;
          throw new KubeApiError(
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            {
              causes: [
                {
                  reason: "DisruptionBudget",
                  message: `The disruption budget ${budget.metadata.name} needs ${s.desired} healthy pods and has ${s.healthy} currently`,
                },
              ],
            },
          );
        }
      }
    }
    const node = p.spec.nodeName;
    this.statsValue.evictions++;
    if (node && this.nodes.get(node)?.spec.unschedulable && !this.draining.has(node)) {
      this.draining.add(node);
      this.statsValue.drains++;
    }
    this.deletePod(ns, name, ev.deleteOptions ?? undefined);
    if (node) this.emit({ type: "evicted", node, pod: key(ns, name) });
  }

  // ------------------------------------------------------------------ workloads and budgets

  pdbStatus(b: Pdb): { expected: number; healthy: number; desired: number; disruptionsAllowed: number } {
    const ns = nsOf(b);
    const pods = [...this.pods.values()].filter(
      (p) =>
        nsOf(p) === ns &&
        matchLabels(b.spec.selector.matchLabels, p.metadata.labels) &&
        !p.metadata.deletionTimestamp,
    );
    const owner = [...this.replicaSets.values()].find(
      (r) => nsOf(r) === ns && matchLabels(b.spec.selector.matchLabels, r.spec.template.metadata?.labels),
    );
    const expected = owner?.spec.replicas ?? pods.length;
    const healthy = pods.filter(podHealthy).length;
    const desired =
      b.spec.minAvailable !== undefined
        ? resolveIntOrPercent(b.spec.minAvailable, expected)
        : Math.max(0, expected - resolveIntOrPercent(b.spec.maxUnavailable ?? 0, expected));
    return { expected, healthy, desired, disruptionsAllowed: Math.max(0, healthy - desired) };
  }

  listPdbs(): Array<Pdb & { status: Record<string, unknown> }> {
    return [...this.pdbs.values()].map((b) => {
      const s = this.pdbStatus(b);
      return {
        ...b,
        status: {
          currentHealthy: s.healthy,
          desiredHealthy: s.desired,
          expectedPods: s.expected,
          disruptionsAllowed: s.disruptionsAllowed,
          observedGeneration: 1,
        },
      };
    });
  }

  addPdb(ns: string, name: string, spec: Pdb["spec"]): Pdb {
    const b = parseWith(
      PdbSchema,
      { metadata: { name, namespace: ns }, spec },
      `PodDisruptionBudget ${name}`,
    );
    b.metadata = { ...b.metadata, ...this.newMeta(name, ns) };
    this.pdbs.set(key(ns, name), this.stamp(b));
    this.changed();
    return b;
  }

  getDaemonSet(ns: string, name: string): Workload {
    const d = this.daemonSets.get(key(ns, name));
    if (!d) throw notFound("daemonsets", name, "apps");
    return d;
  }

  listDaemonSets(): Workload[] {
    return [...this.daemonSets.values()];
  }

  listReplicaSets(): Workload[] {
    return [...this.replicaSets.values()];
  }

  /** One pod per node, now and on every node added later; drains skip them (--ignore-daemonsets). */
  addDaemonSet(ns: string, name: string, labels: Record<string, string>): Workload {
    return this.addWorkload(this.daemonSets, "DaemonSet", ns, name, labels, undefined, 0);
  }

  /** `replicas` pods spread over schedulable nodes; evicted ones are replaced on another node. */
  addReplicaSet(
    ns: string,
    name: string,
    labels: Record<string, string>,
    replicas: number,
    graceSeconds = 1,
  ): Workload {
    return this.addWorkload(this.replicaSets, "ReplicaSet", ns, name, labels, replicas, graceSeconds);
  }

  private addWorkload(
    into: Map<string, Workload>,
    kind: string,
    ns: string,
    name: string,
    labels: Record<string, string>,
    replicas: number | undefined,
    graceSeconds: number,
  ): Workload {
    const w = parseWith(
      WorkloadSchema,
      {
        apiVersion: "apps/v1",
        kind,
        metadata: this.newMeta(name, ns),
        spec: {
          ...(replicas !== undefined ? { replicas } : {}),
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { terminationGracePeriodSeconds: graceSeconds } },
        },
      },
      `${kind} ${name}`,
    );
    into.set(key(ns, name), this.stamp(w));
    this.changed();
    return w;
  }

  private ownedPods(w: Workload): Pod[] {
    return [...this.pods.values()].filter((p) => controllerOf(p.metadata)?.uid === w.metadata.uid);
  }

  private newPodFor(w: Workload, kind: string, nodeName: string | undefined): void {
    const ns = nsOf(w);
    const name = `${w.metadata.name}-${randomUUID().slice(0, 5)}`;
    const grace = (w.spec.template.spec as { terminationGracePeriodSeconds?: number })
      .terminationGracePeriodSeconds;
    const pod: Pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        ...this.newMeta(name, ns),
        labels: { ...w.spec.template.metadata?.labels },
        ownerReferences: [
          { apiVersion: "apps/v1", kind, name: w.metadata.name, uid: w.metadata.uid ?? "", controller: true },
        ],
      },
      spec: {
        ...(nodeName ? { nodeName } : {}),
        terminationGracePeriodSeconds: grace ?? 1,
        containers: [{ name: "app", image: "registry.local/keel-demo:1" }],
        // emptyDir: drain needs --delete-emptydir-data, as with real workloads that keep scratch data.
        volumes: [{ name: "scratch", emptyDir: {} }],
      },
      status: {
        phase: nodeName ? "Running" : "Pending",
        conditions: setCondition([], "Ready", false, this.now()),
      },
    };
    this.pods.set(key(ns, name), this.stamp(pod));
    this.armPod(pod);
  }

  private schedulable(): Node[] {
    return [...this.nodes.values()].filter(
      (n) =>
        isReady(n.status.conditions) &&
        n.spec.unschedulable !== true &&
        !(n.spec.taints ?? []).some((t) => t.effect === "NoSchedule" || t.effect === "NoExecute"),
    );
  }

  /** The two controllers: keep each ReplicaSet at its count and each DaemonSet on every node. */
  private reconcile(): void {
    for (const rs of this.replicaSets.values()) {
      const live = this.ownedPods(rs).filter((p) => !p.metadata.deletionTimestamp);
      for (const p of live) {
        if (p.spec.nodeName) continue;
        const target = this.pickNode(rs);
        if (!target) break;
        p.spec = { ...p.spec, nodeName: target };
        p.status = { ...p.status, phase: "Running" };
        this.stamp(p);
        this.armPod(p);
      }
      for (let i = live.length; i < (rs.spec.replicas ?? 0); i++)
        this.newPodFor(rs, "ReplicaSet", this.pickNode(rs));
    }
    for (const ds of this.daemonSets.values()) {
      const on = new Set(this.ownedPods(ds).map((p) => p.spec.nodeName));
      for (const n of this.nodes.values())
        if (!on.has(n.metadata.name)) this.newPodFor(ds, "DaemonSet", n.metadata.name);
    }
  }

  /** Spread: the schedulable node with the fewest of this set's pods, then the fewest pods, then by name. */
  private pickNode(rs: Workload): string | undefined {
    const mine = new Map<string, number>();
    const all = new Map<string, number>();
    for (const p of this.pods.values()) {
      if (!p.spec.nodeName || p.metadata.deletionTimestamp) continue;
      all.set(p.spec.nodeName, (all.get(p.spec.nodeName) ?? 0) + 1);
      if (controllerOf(p.metadata)?.uid === rs.metadata.uid)
        mine.set(p.spec.nodeName, (mine.get(p.spec.nodeName) ?? 0) + 1);
    }
    const score = (n: Node) => [mine.get(n.metadata.name) ?? 0, all.get(n.metadata.name) ?? 0] as const;
    const best = this.schedulable().sort((a, b) => {
      const [am, aa] = score(a);
      const [bm, ba] = score(b);
      return am - bm || aa - ba || a.metadata.name.localeCompare(b.metadata.name);
    })[0];
    return best?.metadata.name;
  }

  // ------------------------------------------------------------------ leases

  listLeases(ns?: string): Lease[] {
    return [...this.leases.values()].filter((l) => ns === undefined || nsOf(l) === ns);
  }

  getLease(ns: string, name: string): Lease {
    const l = this.leases.get(key(ns, name));
    if (!l) throw notFound("leases", name, "coordination.k8s.io");
    return l;
  }

  createLease(ns: string, body: unknown): Lease {
    const l = parseWith(LeaseSchema, body, "Lease");
    if (l.metadata.namespace !== undefined && l.metadata.namespace !== ns) {
      throw new KubeApiError(
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const k = key(ns, l.metadata.name);
    if (this.leases.has(k)) {
      throw new KubeApiError(
        "AlreadyExists",
        `leases.coordination.k8s.io "${l.metadata.name}" already exists`,
        {
          name: l.metadata.name,
          group: "coordination.k8s.io",
          kind: "leases",
        },
      );
    }
    const lease: Lease = {
      ...l,
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { ...l.metadata, ...this.newMeta(l.metadata.name, ns) },
    };
    this.leases.set(k, this.stamp(lease));
    this.changed();
    return lease;
  }

  /** PUT with optimistic concurrency: a body carrying a stale resourceVersion gets 409 Conflict. */
  replaceLease(ns: string, name: string, body: unknown): Lease {
    const cur = this.getLease(ns, name);
    const l = parseWith(LeaseSchema, body, "Lease");
    if (l.metadata.name !== name) {
      throw new KubeApiError(
        "BadRequest",
        `the name of the object (${l.metadata.name}) does not match the name in the URL (${name})`,
      );
    }
    if (
      l.metadata.resourceVersion !== undefined &&
      l.metadata.resourceVersion !== cur.metadata.resourceVersion
    ) {
      throw conflict("leases.coordination.k8s.io", name);
    }
    const lease: Lease = {
      ...l,
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...l.metadata,
        namespace: ns,
        uid: cur.metadata.uid,
        creationTimestamp: cur.metadata.creationTimestamp,
      },
    };
    this.leases.set(key(ns, name), this.stamp(lease));
    this.changed();
    return lease;
  }

  deleteLease(ns: string, name: string): Lease {
    const l = this.getLease(ns, name);
    this.leases.delete(key(ns, name));
    this.rv++;
    this.changed();
    return l;
  }
}

export const conflict = (resource: string, name: string) =>
  new KubeApiError(
    "Conflict",
    `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, kind: resource },
  );
