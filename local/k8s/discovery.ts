/**
 * Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, `/version`) and the server-side
 * `Table` rendering kubectl asks for (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`). kubectl's
 * drain finds the eviction subresource's group and version here (pods/eviction → policy/v1), so these
 * lists must name it exactly as a real server does.
 */
import { isReady, type Node, type Pod } from "./model.ts";

interface ResourceDef {
  name: string;
  singularName: string;
  namespaced: boolean;
  kind: string;
  verbs: string[];
  group?: string;
  version?: string;
  shortNames?: string[];
}

export const GROUP_RESOURCES: Record<string, ResourceDef[]> = {
  v1: [
    {
      name: "nodes",
      singularName: "node",
      namespaced: false,
      kind: "Node",
      verbs: ["get", "list", "patch", "update"],
      shortNames: ["no"],
    },
    {
      name: "nodes/status",
      singularName: "",
      namespaced: false,
      kind: "Node",
      verbs: ["get", "patch", "update"],
    },
    {
      name: "pods",
      singularName: "pod",
      namespaced: true,
      kind: "Pod",
      verbs: ["delete", "get", "list"],
      shortNames: ["po"],
    },
    {
      name: "pods/eviction",
      singularName: "",
      namespaced: true,
      kind: "Eviction",
      group: "policy",
      version: "v1",
      verbs: ["create"],
    },
  ],
  "apps/v1": [
    {
      name: "daemonsets",
      singularName: "daemonset",
      namespaced: true,
      kind: "DaemonSet",
      verbs: ["get", "list"],
      shortNames: ["ds"],
    },
    {
      name: "replicasets",
      singularName: "replicaset",
      namespaced: true,
      kind: "ReplicaSet",
      verbs: ["get", "list"],
      shortNames: ["rs"],
    },
  ],
  "coordination.k8s.io/v1": [
    {
      name: "leases",
      singularName: "lease",
      namespaced: true,
      kind: "Lease",
      verbs: ["create", "delete", "get", "list", "update"],
    },
  ],
  "policy/v1": [
    {
      name: "poddisruptionbudgets",
      singularName: "poddisruptionbudget",
      namespaced: true,
      kind: "PodDisruptionBudget",
      verbs: ["get", "list"],
      shortNames: ["pdb"],
    },
  ],
};

export const SERVER_VERSION = {
  major: "1",
  minor: "35",
  gitVersion: "v1.35.0-keel-local",
  gitCommit: "keel",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: "go1.25",
  compiler: "gc",
  platform: "linux/amd64",
};

export function apiVersions(serverAddress: string) {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

export function apiGroupList() {
  const groups = Object.keys(GROUP_RESOURCES)
    .filter((gv) => gv.includes("/"))
    .map((gv) => {
      const [group, version] = gv.split("/") as [string, string];
      const v = { groupVersion: gv, version };
      return { name: group, versions: [v], preferredVersion: v };
    });
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

export function resourceList(groupVersion: string) {
  const defs = GROUP_RESOURCES[groupVersion];
  if (!defs) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion,
    resources: defs.map((d) => ({
      name: d.name,
      singularName: d.singularName,
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: d.verbs,
      ...(d.group !== undefined ? { group: d.group, version: d.version } : {}),
      ...(d.shortNames ? { shortNames: d.shortNames } : {}),
    })),
  };
}

/** Kubernetes' short ages: 45s, 12m, 3h, 2d. */
export function age(createdIso: string | undefined, nowMs: number): string {
  const s = Math.max(0, Math.floor((nowMs - Date.parse(createdIso ?? "")) / 1000));
  if (!Number.isFinite(s)) return "<unknown>";
  if (s < 120) return `${s}s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

const col = (name: string, type = "string", format = "") => ({
  name,
  type,
  format,
  description: name,
  priority: 0,
});

type Obj = {
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    uid?: string;
  };
};

const partial = (o: Obj) => ({
  kind: "PartialObjectMetadata",
  apiVersion: "meta.k8s.io/v1",
  metadata: o.metadata,
});

function nodeRow(n: Node, nowMs: number) {
  const status = [
    isReady(n.status.conditions) ? "Ready" : "NotReady",
    ...(n.spec.unschedulable ? ["SchedulingDisabled"] : []),
  ];
  return [
    n.metadata.name,
    status.join(","),
    "<none>",
    age(n.metadata.creationTimestamp, nowMs),
    n.status.nodeInfo?.kubeletVersion ?? "",
  ];
}

function podRow(p: Pod, nowMs: number) {
  const ready = isReady(p.status.conditions) ? 1 : 0;
  const status = p.metadata.deletionTimestamp ? "Terminating" : p.status.phase;
  return [
    p.metadata.name,
    `${ready}/1`,
    status,
    0,
    age(p.metadata.creationTimestamp, nowMs),
    p.spec.nodeName ?? "<none>",
  ];
}

const TABLES: Record<
  string,
  { columns: ReturnType<typeof col>[]; row: (o: never, nowMs: number) => unknown[] }
> = {
  nodes: {
    columns: [col("Name", "string", "name"), col("Status"), col("Roles"), col("Age"), col("Version")],
    row: nodeRow as (o: never, nowMs: number) => unknown[],
  },
  pods: {
    columns: [
      col("Name", "string", "name"),
      col("Ready"),
      col("Status"),
      col("Restarts", "integer"),
      col("Age"),
      col("Node"),
    ],
    row: podRow as (o: never, nowMs: number) => unknown[],
  },
};

/** kubectl get asks for a Table; other resources get the generic NAME / AGE columns. */
export function toTable(resource: string, items: Obj[], resourceVersion: string, nowMs: number) {
  const t = TABLES[resource] ?? {
    columns: [col("Name", "string", "name"), col("Age")],
    row: ((o: Obj, now: number) => [o.metadata.name, age(o.metadata.creationTimestamp, now)]) as (
      o: never,
      nowMs: number,
    ) => unknown[],
  };
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion },
    columnDefinitions: t.columns,
    rows: items.map((o) => ({ cells: t.row(o as never, nowMs), object: partial(o) })),
  };
}

export const wantsTable = (accept: string | undefined) => /as=Table/.test(accept ?? "");
