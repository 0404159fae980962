/**
 * The Kubernetes API stand-in's HTTPS front on 127.0.0.1: the local CA's server certificate (valid for
 * 127.0.0.1 and localhost) and a bearer token. Not plain HTTP: client-go (kubectl) never sends a bearer
 * token over an unencrypted connection. The kubeconfig `keel dev` writes carries the CA and the token. It routes the REST paths kubectl and
 * @kubernetes/client-node use to the Cluster, answers errors as `Status` objects with the real codes and
 * reasons, and renders Tables for `kubectl get`. Watches are not served: no client of Keel needs one.
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { describeError, SchemaError } from "../../core/errors.ts";
import { parseJsonText } from "../../core/parse.ts";
import type { Cluster } from "./cluster.ts";
import { apiGroupList, apiVersions, resourceList, SERVER_VERSION, toTable, wantsTable } from "./discovery.ts";
import { KubeApiError } from "./errors.ts";
import type { Node, Pod } from "./model.ts";
import { checkPatchType } from "./patch.ts";
import { type FieldGetters, fieldSelector, labelSelector } from "./selectors.ts";

const MAX_BODY = 1024 * 1024;

type Obj = {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
};

interface Route {
  gv: string;
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** `/api/v1/namespaces/ns/pods/name/eviction` → its parts; undefined for paths that are not resources. */
export function parseResourcePath(path: string): Route | undefined {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let gv: string;
  let rest: string[];
  if (parts[0] === "api" && parts[1] === "v1") {
    gv = "v1";
    rest = parts.slice(2);
  } else if (parts[0] === "apis" && parts.length >= 3) {
    gv = `${parts[1]}/${parts[2]}`;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource, ...extra] = rest;
  if (!resource || extra.length > 0) return undefined;
  return { gv, resource, namespace, name, subresource };
}

const KINDS: Record<string, { kind: string; apiVersion: string; namespaced: boolean }> = {
  "v1|nodes": { kind: "Node", apiVersion: "v1", namespaced: false },
  "v1|pods": { kind: "Pod", apiVersion: "v1", namespaced: true },
  "apps/v1|daemonsets": { kind: "DaemonSet", apiVersion: "apps/v1", namespaced: true },
  "apps/v1|replicasets": { kind: "ReplicaSet", apiVersion: "apps/v1", namespaced: true },
  "policy/v1|poddisruptionbudgets": {
    kind: "PodDisruptionBudget",
    apiVersion: "policy/v1",
    namespaced: true,
  },
  "coordination.k8s.io/v1|leases": { kind: "Lease", apiVersion: "coordination.k8s.io/v1", namespaced: true },
};

const meta = (o: Obj) => o.metadata;
const FIELDS: Record<string, FieldGetters> = {
  nodes: {
    "metadata.name": (o: Node) => o.metadata.name,
    "spec.unschedulable": (o: Node) => String(o.spec.unschedulable ?? false),
  },
  pods: {
    "metadata.name": (o: Pod) => o.metadata.name,
    "metadata.namespace": (o: Pod) => o.metadata.namespace,
    "spec.nodeName": (o: Pod) => o.spec.nodeName ?? "",
    "status.phase": (o: Pod) => o.status.phase,
  },
};
const DEFAULT_FIELDS: FieldGetters = {
  "metadata.name": (o: Obj) => meta(o).name,
  "metadata.namespace": (o: Obj) => meta(o).namespace,
};

export interface KubeServerOptions {
  cluster: Cluster;
  token: string;
  /** The server certificate and key (PEM). */
  tls: { cert: string; key: string };
  now: () => number;
  port?: number;
  /** Every request, after it was answered (tests count what kubectl asks). */
  onRequest?: (r: { method: string; path: string; status: number }) => void;
}

export interface KubeServer {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startKubeServer(o: KubeServerOptions): Promise<KubeServer> {
  const expected = Buffer.from(`Bearer ${o.token}`);
  const server: Server = createServer({ cert: o.tls.cert, key: o.tls.key }, (req, res) => {
    void handle(req, res).catch((err: unknown) => sendError(res, err));
  });
  let address = "";

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    res.on("finish", () =>
      o.onRequest?.({ method: req.method ?? "", path: url.pathname, status: res.statusCode }),
    );
    const auth = Buffer.from(req.headers.authorization ?? "");
    if (auth.length !== expected.length || !timingSafeEqual(auth, expected)) {
      throw new KubeApiError("Unauthorized", "Unauthorized");
    }
    const method = req.method ?? "GET";
    // The media type is judged before the body, as the API server does (415 even for a body that is not JSON).
    if (method === "PATCH") checkPatchType(req.headers["content-type"] ?? "");
    const body = method === "GET" || method === "HEAD" ? undefined : await readBody(req);
    const result = route(method, url, req.headers, body);
    send(res, result.status ?? 200, result.body);
  }

  function route(
    method: string,
    url: URL,
    headers: IncomingMessage["headers"],
    body: unknown,
  ): { status?: number; body: unknown } {
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const c = o.cluster;
    if (method === "GET") {
      if (path === "/version") return { body: SERVER_VERSION };
      if (path === "/api") return { body: apiVersions(address) };
      if (path === "/apis") return { body: apiGroupList() };
      const gvPath = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(path);
      if (gvPath) {
        const list = resourceList(gvPath[1] ?? gvPath[2] ?? "");
        if (!list) throw new KubeApiError("NotFound", `the server could not find the requested resource`);
        return { body: list };
      }
    }
    const r = parseResourcePath(path);
    const k = r ? KINDS[`${r.gv}|${r.resource}`] : undefined;
    if (!r || !k)
      throw new KubeApiError(
        "NotFound",
        `the server could not find the requested resource (${method} ${path})`,
      );
    if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
      throw new KubeApiError("MethodNotAllowed", "watch is not supported by the Keel Kubernetes stand-in");
    }
    if (!k.namespaced && r.namespace !== undefined)
      throw new KubeApiError("NotFound", `${r.resource} is not namespaced`);
    const ns = r.namespace ?? "default";
    const table = wantsTable(headers.accept);
    const one = (obj: Obj) => ({
      body: table
        ? toTable(r.resource, [obj], c.resourceVersion, o.now())
        : { kind: k.kind, apiVersion: k.apiVersion, ...obj },
    });

    if (r.name === undefined) {
      if (method === "GET") {
        const all = listOf(c, r.resource);
        const byField = fieldSelector<Obj>(
          url.searchParams.get("fieldSelector"),
          FIELDS[r.resource] ?? DEFAULT_FIELDS,
        );
        const byLabel = labelSelector(url.searchParams.get("labelSelector"));
        const items = all.filter(
          (x) =>
            (r.namespace === undefined || (x.metadata.namespace ?? "default") === r.namespace) &&
            byField(x) &&
            byLabel(x.metadata.labels),
        );
        if (table) return { body: toTable(r.resource, items, c.resourceVersion, o.now()) };
        return {
          body: {
            kind: `${k.kind}List`,
            apiVersion: k.apiVersion,
            metadata: { resourceVersion: c.resourceVersion },
            items,
          },
        };
      }
      if (method === "POST" && r.resource === "leases")
        return { status: 201, body: withKind(k, c.createLease(ns, body)) };
      throw new KubeApiError("MethodNotAllowed", `${method} is not supported on ${r.resource}`);
    }

    const name = r.name;
    switch (`${r.resource}/${r.subresource ?? ""}|${method}`) {
      case "nodes/|GET":
      case "nodes/status|GET":
        return one(c.getNode(name));
      case "nodes/|PUT":
        return { body: withKind(k, c.replaceNode(name, body)) };
      case "nodes/|PATCH":
      case "nodes/status|PATCH":
        return {
          body: withKind(
            k,
            c.patchNode(
              name,
              headers["content-type"] ?? "",
              body,
              r.subresource === "status" ? "status" : null,
            ),
          ),
        };
      case "pods/|GET":
        return one(c.getPod(ns, name));
      case "pods/|DELETE":
        return { body: withKind(k, c.deletePod(ns, name, body)) };
      case "pods/eviction|POST":
        c.evict(ns, name, body);
        return {
          status: 201,
          body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 },
        };
      case "daemonsets/|GET":
        return one(c.getDaemonSet(ns, name));
      case "replicasets/|GET":
      case "poddisruptionbudgets/|GET": {
        const found = listOf(c, r.resource).find(
          (x) => x.metadata.name === name && (x.metadata.namespace ?? "default") === ns,
        );
        if (!found) throw new KubeApiError("NotFound", `${r.resource} "${name}" not found`);
        return one(found);
      }
      case "leases/|GET":
        return one(c.getLease(ns, name));
      case "leases/|PUT":
        return { body: withKind(k, c.replaceLease(ns, name, body)) };
      case "leases/|DELETE":
        c.deleteLease(ns, name);
        return {
          body: {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Success",
            details: { name, group: "coordination.k8s.io", kind: "leases" },
          },
        };
      default:
        throw new KubeApiError(
          "MethodNotAllowed",
          `${method} is not supported on ${r.resource}${r.subresource ? `/${r.subresource}` : ""}`,
        );
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  address = `127.0.0.1:${port}`;
  return {
    url: `https://${address}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function listOf(c: Cluster, resource: string): Obj[] {
  switch (resource) {
    case "nodes":
      return c.listNodes();
    case "pods":
      return c.listPods();
    case "daemonsets":
      return c.listDaemonSets();
    case "replicasets":
      return c.listReplicaSets();
    case "poddisruptionbudgets":
      return c.listPdbs();
    case "leases":
      return c.listLeases();
    default:
      return [];
  }
}

const withKind = (k: { kind: string; apiVersion: string }, o: object) => ({
  kind: k.kind,
  apiVersion: k.apiVersion,
  ...o,
});

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new KubeApiError("BadRequest", `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return parseJsonText(Buffer.concat(chunks), "request body");
  } catch (err) {
    throw new KubeApiError("BadRequest", describeError(err), undefined, { cause: err });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  const e =
    err instanceof KubeApiError
      ? err
      : err instanceof SchemaError
        ? new KubeApiError("Invalid", err.message, undefined, { cause: err })
        : new KubeApiError(
            "InternalError",
            `internal error: ${(err as Error)?.message ?? String(err)}`,
            undefined,
            { cause: err },
          );
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, e.code, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: e.message,
    reason: e.reason,
    ...(e.details ? { details: e.details } : {}),
    code: e.code,
  });
}
