/**
 * `keel console`'s server, on 127.0.0.1 only: the page, the bundled web app, and a small JSON proxy to the
 * rollout API under /api. The proxy is where the operator's credentials are used: it checks each request
 * (guard.ts), lets through only the allow-listed routes with well-formed input (routes.ts), signs and
 * sends it with the CLI's own API client, and checks the answer before the browser sees it. No credential
 * or signature ever reaches the browser.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describeError, SchemaError } from "../../core/errors.ts";
import { parseJsonText, parseWith } from "../../core/parse.ts";
import { ApiError } from "../api-client.ts";
import { webBundle } from "./bundle.ts";
import { ConsoleListenError, ConsoleRequestError, ConsoleUpstreamError } from "./errors.ts";
import { checkApiRequest, checkHost, newToken, sameToken } from "./guard.ts";
import { FAVICON_SVG, forbiddenPage, indexPage } from "./page.ts";
import { checkRequest } from "./routes.ts";

/** The rollout API as the console uses it: the CLI's signed ApiClient, or anything with its get/post. */
export interface ConsoleUpstream {
  get(path: string): Promise<unknown>;
  post(path: string, body?: unknown): Promise<unknown>;
}

export interface ConsoleOptions {
  api: ConsoleUpstream;
  /** 0 picks a free port. */
  port: number;
  /** Where the page says it is connected to (`local cloud`, `stack Keel in eu-west-1`). */
  target: string;
  /** How often the page refreshes what it shows, in ms. @default 2000 */
  pollMs?: number;
  /** One structured entry per refused or failed request. @default a JSON line on stderr */
  log?: (entry: Record<string, unknown>) => void;
}

export interface ConsoleServer {
  /** The URL to open, token included. */
  url: string;
  origin: string;
  token: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;

/** A JSON log line on stderr: the terminal's own output (the URL, the demo's view) stays readable. */
export function stderrLog(entry: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
}

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
  "cache-control": "no-store",
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": type });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        // Answer 413 and drain the rest unread, so the client gets the answer rather than a reset.
        req.removeAllListeners("data");
        req.resume();
        reject(new ConsoleRequestError(413, `request body over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** The error as the browser gets it: status, a message, and the field issues of a 400. */
function errorAnswer(err: unknown): { status: number; body: Record<string, unknown> } {
  if (err instanceof ConsoleRequestError) return { status: err.status, body: { error: err.message } };
  if (err instanceof SchemaError) return { status: 400, body: { error: err.message, issues: err.issues } };
  if (err instanceof ApiError)
    return { status: err.status, body: { error: err.message, issues: err.issues } };
  return { status: 502, body: { error: err instanceof Error ? err.message : String(err) } };
}

async function proxy(o: ConsoleOptions, req: IncomingMessage, url: URL): Promise<unknown> {
  const method = req.method ?? "GET";
  const text = method === "POST" ? await readBody(req) : "";
  const body = text.trim() ? parseJsonText(text, "request body") : undefined;
  const call = checkRequest(method, url.pathname.slice("/api".length), url.searchParams, body);
  const answer = call.method === "GET" ? await o.api.get(call.path) : await o.api.post(call.path, call.body);
  try {
    return parseWith(call.answer, answer, `API answer to ${call.method} ${call.path}`);
  } catch (err) {
    throw new ConsoleUpstreamError(describeError(err), { cause: err });
  }
}

export async function startConsole(o: ConsoleOptions): Promise<ConsoleServer> {
  const bundle = await webBundle();
  const token = newToken();
  const log = o.log ?? stderrLog;
  let port = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const host = checkHost(req, port);
    const url = new URL(req.url ?? "/", `http://${host}`);
    if (url.pathname.startsWith("/api/")) {
      checkApiRequest(req, host, token);
      sendJson(res, 200, await proxy(o, req, url));
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD")
      throw new ConsoleRequestError(405, `${req.method} is not allowed on ${url.pathname}`);
    switch (url.pathname) {
      case "/":
        if (!sameToken(url.searchParams.get("token"), token)) {
          send(res, 403, "text/html; charset=utf-8", forbiddenPage());
          return;
        }
        send(
          res,
          200,
          "text/html; charset=utf-8",
          indexPage({ token, target: o.target, pollMs: o.pollMs ?? 2000 }),
        );
        return;
      case "/app.js":
        send(res, 200, "text/javascript; charset=utf-8", bundle.js);
        return;
      case "/app.css":
        send(res, 200, "text/css; charset=utf-8", bundle.css);
        return;
      case "/favicon.svg":
      case "/favicon.ico":
        send(res, 200, "image/svg+xml", FAVICON_SVG);
        return;
      default:
        throw new ConsoleRequestError(404, `no page ${url.pathname}`);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const { status, body } = errorAnswer(err);
      log({
        level: status >= 500 ? "error" : "warn",
        msg: "console request refused or failed",
        method: req.method,
        path: (req.url ?? "").split("?")[0],
        status,
        error: body.error,
        errorName: err instanceof Error ? err.name : undefined,
      });
      if (!res.headersSent) sendJson(res, status, body);
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new ConsoleListenError(
          `cannot listen on 127.0.0.1:${o.port}: ${err.code === "EADDRINUSE" ? "the port is in use (another console? pass --port)" : err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(o.port, "127.0.0.1", () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
