/**
 * Who may talk to the console. It holds the operator's credentials, so three checks stand between a web
 * page and the rollout API:
 * - Host must be the console's own (127.0.0.1:port or localhost:port): a DNS-rebinding page, whose
 *   requests carry its own host name, is refused.
 * - Every /api request carries the per-start token in a custom header. Another site cannot read the token
 *   (same-origin policy) and cannot set a custom header cross-site without a CORS preflight, which the
 *   console never grants. The page itself is served only to a request that names the token in its URL,
 *   so another local user who finds the port does not get it either.
 * - A state-changing request must also come with the console's own Origin and a JSON content type.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { ConsoleRequestError } from "./errors.ts";

export const TOKEN_HEADER = "x-keel-console-token";

export function newToken(): string {
  return randomBytes(24).toString("base64url");
}

export function sameToken(given: string | null | undefined, token: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The Host values the console answers to. */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

export function checkHost(req: IncomingMessage, port: number): string {
  const host = req.headers.host ?? "";
  if (!allowedHosts(port).includes(host)) {
    throw new ConsoleRequestError(403, `Host ${JSON.stringify(host)} is not this console's address`);
  }
  return host;
}

/** /api requests: the token header; for POST also the console's own Origin and a JSON body. */
export function checkApiRequest(req: IncomingMessage, host: string, token: string): void {
  const given = req.headers[TOKEN_HEADER];
  if (!sameToken(Array.isArray(given) ? given[0] : given, token)) {
    throw new ConsoleRequestError(403, `missing or wrong ${TOKEN_HEADER} header (reload the console's URL)`);
  }
  if (req.method !== "POST") return;
  const origin = req.headers.origin;
  if (origin !== `http://${host}`) {
    throw new ConsoleRequestError(
      403,
      `cross-site request refused: Origin ${JSON.stringify(origin ?? null)} is not http://${host}`,
    );
  }
  const fetchSite = req.headers["sec-fetch-site"];
  if (fetchSite !== undefined && fetchSite !== "same-origin") {
    throw new ConsoleRequestError(403, `cross-site request refused: Sec-Fetch-Site is ${fetchSite}`);
  }
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new ConsoleRequestError(415, `POST bodies must be application/json, not ${type || "(none)"}`);
  }
}
