/**
 * Declarative routes: each is a method, a path pattern (`/rollouts/:id`), a schema for its path
 * parameters and one for its query string, and an operation that receives them parsed. Matching decodes
 * each path segment once (a malformed %-escape is a 400), answers 405 for a known path with another
 * method and 404 for an unknown one, so no operation ever sees an unchecked parameter.
 */
import type { z } from "zod";
import { SchemaError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { MethodNotAllowedError, NotFoundError } from "../errors.ts";

export interface Request {
  method: string;
  /** The path as received, still %-encoded. */
  rawPath: string;
  rawQueryString: string;
  body: () => unknown;
  caller: string;
}

export interface Result {
  status: number;
  value: unknown;
}

export interface RouteInput<P, Q> {
  params: P;
  query: Q;
  body: () => unknown;
  caller: string;
}

export interface Route {
  method: "GET" | "POST" | "PUT";
  path: string;
  run(deps: ApiDeps, params: Record<string, string>, req: Request): Promise<Result>;
}

export function route<P extends z.ZodType, Q extends z.ZodType>(def: {
  method: Route["method"];
  path: string;
  params: P;
  query: Q;
  handle: (deps: ApiDeps, input: RouteInput<z.output<P>, z.output<Q>>) => Promise<Result>;
}): Route {
  return {
    method: def.method,
    path: def.path,
    run: (deps, params, req) =>
      def.handle(deps, {
        params: parseWith(def.params, params, "request path"),
        query: parseWith(def.query, queryRecord(req.rawQueryString), "query string"),
        body: req.body,
        caller: req.caller,
      }),
  };
}

/** Path segments, each %-decoded; a malformed escape is the client's error. */
export function pathSegments(rawPath: string): string[] {
  if (!rawPath.startsWith("/")) {
    throw new SchemaError("request path", [{ path: "path", message: "must start with /" }]);
  }
  return rawPath
    .slice(1)
    .split("/")
    .map((s, i) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw new SchemaError("request path", [
          { path: "path", message: `segment ${i + 1} has a malformed %-escape` },
        ]);
      }
    });
}

/** The query string as one value per key; a key given twice is refused rather than guessed at. */
export function queryRecord(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    if (Object.hasOwn(out, k)) {
      throw new SchemaError("query string", [{ path: k, message: "is given more than once" }]);
    }
    out[k] = v;
  }
  return out;
}

function matchPath(pattern: string, segments: string[]): Record<string, string> | null {
  const parts = pattern.slice(1).split("/");
  if (parts.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (const [i, p] of parts.entries()) {
    const s = segments[i] ?? "";
    if (p.startsWith(":")) params[p.slice(1)] = s;
    else if (p !== s) return null;
  }
  return params;
}

export async function dispatch(routes: readonly Route[], deps: ApiDeps, req: Request): Promise<Result> {
  const segments = pathSegments(req.rawPath);
  const method = req.method.toUpperCase();
  const allowed: string[] = [];
  for (const r of routes) {
    const params = matchPath(r.path, segments);
    if (!params) continue;
    if (r.method === method) return r.run(deps, params, req);
    allowed.push(r.method);
  }
  if (allowed.length > 0) {
    throw new MethodNotAllowedError(`${method} is not allowed on ${req.rawPath} (use ${allowed.join(", ")})`);
  }
  throw new NotFoundError(`no route ${method} ${req.rawPath}`);
}
