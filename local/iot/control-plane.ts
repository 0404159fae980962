/**
 * The control plane over HTTP (node:http, no framework), shaped so that the real `@aws-sdk/client-iot`
 * works with only `endpoint` changed: the same methods, paths, query names, bodies, status codes and
 * error types (`x-amzn-ErrorType` + `{"message"}`) as the service model (docs/iot-jobs.md). Signatures
 * are not checked (the AWS SDK does not need it); every request is checked against core/aws-limits.ts, then
 * its route (one module per resource under routes/) parses it with zod.
 */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { MAX_JSON_BYTES } from "../../core/parse.ts";
import { IotServiceError } from "./errors.ts";
import { enforceControlPlaneLimits } from "./limits.ts";
import { accountRoutes } from "./routes/account.ts";
import { certificateRoutes } from "./routes/certificates.ts";
import type { ControlPlaneDeps, Route } from "./routes/common.ts";
import { executionRoutes } from "./routes/executions.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { provisioningRoutes } from "./routes/provisioning.ts";
import { thingRoutes } from "./routes/things.ts";

export type { ControlPlaneDeps } from "./routes/common.ts";

function buildRoutes(d: ControlPlaneDeps): Route[] {
  return [
    ...thingRoutes(d),
    ...certificateRoutes(d),
    ...jobRoutes(d),
    ...executionRoutes(d),
    ...accountRoutes(d),
    ...(d.provisioning ? provisioningRoutes(d.provisioning) : []),
  ];
}

export async function startControlPlane(
  deps: ControlPlaneDeps,
  port = 0,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const routes = buildRoutes(deps);
  const server = http.createServer((req, res) => {
    void handle(routes, deps, req, res);
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handle(
  routes: Route[],
  deps: ControlPlaneDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      // The largest legitimate body is a CreateJob with a 32 KB document; refuse floods without buffering them.
      if (size > MAX_JSON_BYTES) {
        throw new IotServiceError(
          "InvalidRequestException",
          `The request body exceeds ${MAX_JSON_BYTES} bytes`,
        );
      }
      chunks.push(c as Buffer);
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    let segments: string[];
    try {
      // Labels arrive percent-encoded (`dev%3A01`, `%24next`); decode before matching (docs/iot-jobs.md).
      segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
    } catch (err) {
      throw new IotServiceError("InvalidRequestException", "The request path is not valid percent-encoding", {
        cause: err,
      });
    }
    const match = matchRoute(routes, req.method ?? "GET", segments);
    if (!match) {
      throw new IotServiceError(
        "UnknownOperationException",
        `No operation for ${req.method} ${url.pathname}`,
      );
    }
    deps.countCall(match.route.op, match.params.jobId);
    let body: unknown = {};
    const text = Buffer.concat(chunks).toString("utf8");
    if (text.trim().length > 0) {
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new IotServiceError("InvalidRequestException", "The request body is not valid JSON", {
          cause: err,
        });
      }
    }
    const request = { params: match.params, query: url.searchParams, body, headers: req.headers };
    // AWS validates every member against its model before doing anything (docs/aws-limits.md).
    enforceControlPlaneLimits(match.route.op, request);
    const out = await match.route.handler(request);
    const json = JSON.stringify(out ?? {});
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(json) });
    res.end(json);
  } catch (err) {
    let e: IotServiceError;
    if (err instanceof IotServiceError) e = err;
    else {
      // Never a stack trace to the client; the log keeps the detail.
      deps.log("control-plane request failed", { method: req.method, url: req.url, error: String(err) });
      e = new IotServiceError("InternalFailureException", "An internal error occurred", { cause: err });
    }
    const json = JSON.stringify({ message: e.message });
    res.writeHead(e.status, {
      "content-type": "application/json",
      "x-amzn-ErrorType": e.errorType,
      "content-length": Buffer.byteLength(json),
    });
    res.end(json);
  }
}

function matchRoute(
  routes: Route[],
  method: string,
  segments: string[],
): { route: Route; params: Record<string, string> } | undefined {
  for (const route of routes) {
    if (route.method !== method || route.segments.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const pattern = route.segments[i] as string;
      const actual = segments[i] as string;
      if (pattern.startsWith("{")) params[pattern.slice(1, -1)] = actual;
      else ok = pattern === actual;
    }
    if (ok) return { route, params };
  }
  return undefined;
}
