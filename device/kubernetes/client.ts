/**
 * The agent's view of the Kubernetes API, through @kubernetes/client-node: a kubeconfig file or the
 * in-cluster service account. Every answer is checked with zod before use (the API server is outside
 * input too), and API failures become named errors or the few outcomes callers act on (gone, conflict,
 * blocked by a budget).
 */
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Lease,
} from "@kubernetes/client-node";
import { z } from "zod";
import { describeError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import { KubernetesApiError, KubernetesConfigError, KubernetesResponseError } from "./errors.ts";

/** client-node hands times back as Date or as the string it received, depending on the field's type. */
const Time = z.union([z.date(), z.string()]).transform((v, ctx) => {
  const ms = v instanceof Date ? v.getTime() : Date.parse(v);
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: "custom", message: "not a time" });
    return z.NEVER;
  }
  return ms;
});

const Meta = z.looseObject({
  name: z.string().min(1),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  annotations: z.record(z.string(), z.string()).nullish(),
  deletionTimestamp: Time.nullish(),
  ownerReferences: z
    .array(z.looseObject({ kind: z.string(), name: z.string(), controller: z.boolean().nullish() }))
    .nullish(),
});

const NodeView = z.looseObject({
  metadata: Meta,
  spec: z.looseObject({ unschedulable: z.boolean().nullish() }).nullish(),
  status: z
    .looseObject({
      conditions: z.array(z.looseObject({ type: z.string(), status: z.string() })).nullish(),
      nodeInfo: z.looseObject({ bootID: z.string() }).nullish(),
    })
    .nullish(),
});
export interface NodeInfo {
  name: string;
  unschedulable: boolean;
  ready: boolean;
  bootID: string | null;
  annotations: Record<string, string>;
}

const PodView = z.looseObject({
  metadata: Meta,
  spec: z.looseObject({ nodeName: z.string().nullish() }).nullish(),
  status: z.looseObject({ phase: z.string().nullish() }).nullish(),
});
export interface PodInfo {
  namespace: string;
  name: string;
  uid: string;
  /** Kind of the controlling owner (DaemonSet, ReplicaSet, …), null for a bare pod. */
  controllerKind: string | null;
  mirror: boolean;
  phase: string;
  terminating: boolean;
}

const LeaseView = z.looseObject({
  metadata: Meta,
  spec: z
    .looseObject({
      holderIdentity: z.string().nullish(),
      leaseDurationSeconds: z.number().int().nullish(),
      renewTime: Time.nullish(),
      acquireTime: Time.nullish(),
      leaseTransitions: z.number().int().nullish(),
    })
    .nullish(),
});
export interface LeaseInfo {
  name: string;
  resourceVersion: string;
  holder: string | null;
  durationSeconds: number | null;
  renewTimeMs: number | null;
  acquireTimeMs: number | null;
  transitions: number;
  annotations: Record<string, string>;
}

export interface LeaseWrite {
  name: string;
  /** Required to replace (optimistic concurrency); absent to create. */
  resourceVersion?: string;
  holder: string | null;
  durationSeconds: number;
  renewTimeMs: number | null;
  acquireTimeMs: number | null;
  transitions: number;
  annotations: Record<string, string>;
}

export type EvictResult = "evicted" | "gone" | "blocked" | "multiple-budgets";

export interface KubeClient {
  getNode(name: string): Promise<NodeInfo>;
  listNodes(): Promise<NodeInfo[]>;
  /** JSON merge patch of spec.unschedulable and annotations (null removes one). */
  patchNode(
    name: string,
    patch: { unschedulable?: boolean; annotations?: Record<string, string | null> },
  ): Promise<NodeInfo>;
  podsOn(node: string): Promise<PodInfo[]>;
  /** The pod as it is now; null when it is gone or another pod now has its name. */
  getPod(namespace: string, name: string, uid: string): Promise<PodInfo | null>;
  deletePod(namespace: string, name: string, gracePeriodSeconds?: number): Promise<void>;
  evict(namespace: string, name: string, gracePeriodSeconds?: number): Promise<EvictResult>;
  getLease(namespace: string, name: string): Promise<LeaseInfo | null>;
  /** "conflict" when someone else created or changed it first. */
  writeLease(namespace: string, lease: LeaseWrite): Promise<LeaseInfo | "conflict">;
}

function nodeInfo(raw: unknown): NodeInfo {
  const n = parseWith(NodeView, raw, "Node from the API server");
  return {
    name: n.metadata.name,
    unschedulable: n.spec?.unschedulable === true,
    ready: n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
    bootID: n.status?.nodeInfo?.bootID ?? null,
    annotations: n.metadata.annotations ?? {},
  };
}

function podInfo(raw: unknown): PodInfo {
  const p = parseWith(PodView, raw, "Pod from the API server");
  return {
    namespace: p.metadata.namespace ?? "default",
    name: p.metadata.name,
    uid: p.metadata.uid ?? "",
    controllerKind: p.metadata.ownerReferences?.find((r) => r.controller === true)?.kind ?? null,
    mirror: p.metadata.annotations?.["kubernetes.io/config.mirror"] !== undefined,
    phase: p.status?.phase ?? "Unknown",
    terminating: p.metadata.deletionTimestamp != null,
  };
}

function leaseInfo(raw: unknown): LeaseInfo {
  const l = parseWith(LeaseView, raw, "Lease from the API server");
  return {
    name: l.metadata.name,
    resourceVersion: l.metadata.resourceVersion ?? "",
    holder: l.spec?.holderIdentity || null,
    durationSeconds: l.spec?.leaseDurationSeconds ?? null,
    renewTimeMs: l.spec?.renewTime ?? null,
    acquireTimeMs: l.spec?.acquireTime ?? null,
    transitions: l.spec?.leaseTransitions ?? 0,
    annotations: l.metadata.annotations ?? {},
  };
}

const statusOf = (err: unknown): number | null => (err instanceof ApiException ? err.code : null);

function apiError(operation: string, err: unknown): Error {
  if (err instanceof KubernetesResponseError || err instanceof KubernetesApiError) return err;
  const status = statusOf(err);
  let message = (err as Error)?.message ?? String(err);
  if (err instanceof ApiException) {
    const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
    const m = /"message":"((?:[^"\\]|\\.)*)"/.exec(body ?? "");
    message = m?.[1] ?? body ?? message;
  }
  return new KubernetesApiError(operation, status, message, { cause: err });
}

async function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw apiError(operation, err);
  }
}

/** Loads credentials: a kubeconfig path, or the in-cluster service account when none is given. */
export function loadKubeConfig(kubeconfig: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromCluster();
  } catch (err) {
    throw new KubernetesConfigError(
      `cannot load ${kubeconfig ? `kubeconfig ${kubeconfig}` : "the in-cluster service account"}: ${describeError(err)}`,
      { cause: err },
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new KubernetesConfigError(`${kubeconfig ?? "in-cluster config"}: no current cluster`);
  }
  return kc;
}

export function createKubeClient(kc: KubeConfig): KubeClient {
  const core = kc.makeApiClient(CoreV1Api);
  const coord = kc.makeApiClient(CoordinationV1Api);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    getNode: (name) => call(`get node ${name}`, async () => nodeInfo(await core.readNode({ name }))),
    listNodes: () => call("list nodes", async () => (await core.listNode()).items.map(nodeInfo)),
    patchNode: (name, patch) =>
      call(`patch node ${name}`, async () => {
        const body: Record<string, unknown> = {};
        if (patch.unschedulable !== undefined) body.spec = { unschedulable: patch.unschedulable };
        if (patch.annotations) body.metadata = { annotations: patch.annotations };
        return nodeInfo(await core.patchNode({ name, body }, mergePatch));
      }),
    podsOn: (node) =>
      call(`list pods on ${node}`, async () =>
        (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` })).items.map(podInfo),
      ),
    async getPod(namespace, name, uid) {
      try {
        const p = podInfo(await core.readNamespacedPod({ namespace, name }));
        return p.uid === uid ? p : null;
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw apiError(`get pod ${namespace}/${name}`, err);
      }
    },
    async deletePod(namespace, name, gracePeriodSeconds) {
      try {
        await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds });
      } catch (err) {
        if (statusOf(err) !== 404) throw apiError(`delete pod ${namespace}/${name}`, err);
      }
    },
    async evict(namespace, name, gracePeriodSeconds) {
      try {
        await core.createNamespacedPodEviction({
          namespace,
          name,
          body: {
            apiVersion: "policy/v1",
            kind: "Eviction",
            metadata: { name, namespace },
            ...(gracePeriodSeconds !== undefined ? { deleteOptions: { gracePeriodSeconds } } : {}),
          },
        });
        return "evicted";
      } catch (err) {
        switch (statusOf(err)) {
          case 404:
            return "gone";
          case 429:
            return "blocked";
          case 500:
            // The API server's answer when more than one PodDisruptionBudget selects the pod.
            if (/more than one PodDisruptionBudget/.test(apiError("", err).message))
              return "multiple-budgets";
            throw apiError(`evict pod ${namespace}/${name}`, err);
          default:
            throw apiError(`evict pod ${namespace}/${name}`, err);
        }
      }
    },
    async getLease(namespace, name) {
      try {
        return leaseInfo(await coord.readNamespacedLease({ namespace, name }));
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw apiError(`get lease ${namespace}/${name}`, err);
      }
    },
    async writeLease(namespace, l) {
      const body: V1Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: {
          name: l.name,
          namespace,
          annotations: l.annotations,
          ...(l.resourceVersion ? { resourceVersion: l.resourceVersion } : {}),
        },
        spec: {
          holderIdentity: l.holder ?? undefined,
          leaseDurationSeconds: l.durationSeconds,
          ...(l.renewTimeMs !== null ? { renewTime: new Date(l.renewTimeMs) } : {}),
          ...(l.acquireTimeMs !== null ? { acquireTime: new Date(l.acquireTimeMs) } : {}),
          leaseTransitions: l.transitions,
        },
      };
      try {
        const r = l.resourceVersion
          ? await coord.replaceNamespacedLease({ namespace, name: l.name, body })
          : await coord.createNamespacedLease({ namespace, body });
        return leaseInfo(r);
      } catch (err) {
        if (statusOf(err) === 409) return "conflict";
        throw apiError(`write lease ${namespace}/${l.name}`, err);
      }
    },
  };
}
