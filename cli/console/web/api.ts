/// <reference lib="dom" />
/**
 * The page's only way out: JSON requests to its own console server's /api proxy, with the per-start
 * token header. Relative URLs, so nothing can be sent to another host.
 */

/** The per-start token the server wrote into the page (read when first needed). */
const token = () => document.querySelector('meta[name="keel-console-token"]')?.getAttribute("content") ?? "";

export class ConsoleApiError extends Error {
  override name = "ConsoleApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly issues: ReadonlyArray<{ path: string; message: string }> = [],
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: unknown;
  issues?: unknown;
}

function issuesOf(v: unknown): Array<{ path: string; message: string }> {
  if (!Array.isArray(v)) return [];
  return v
    .filter(
      (i): i is { path: string; message: string } =>
        typeof i?.path === "string" && typeof i?.message === "string",
    )
    .map((i) => ({ path: i.path, message: i.message }));
}

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const res = await fetch(`/api${path}`, {
    method,
    headers: {
      "x-keel-console-token": token(),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    credentials: "same-origin",
    cache: "no-store",
  });
  const value: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const e = (value ?? {}) as ErrorBody;
    throw new ConsoleApiError(
      res.status,
      typeof e.error === "string" ? e.error : `HTTP ${res.status}`,
      issuesOf(e.issues),
    );
  }
  // The console server checked this answer against the route's schema before sending it.
  return value as T;
}

export const apiGet = <T>(path: string) => call<T>("GET", path);

/** Most pages followed for one view: enough for any fleet the console is meant for, bounded per poll. */
const MAX_PAGES = 20;

/**
 * GET a paginated list whole: while the answer names a `nextCursor`, fetch the next page and append its
 * `key` array. An API without pagination answers in one page, and this is a plain GET.
 */
export async function apiGetAll<T extends object>(path: string, key: keyof T & string): Promise<T> {
  const first = await apiGet<T & { nextCursor?: unknown }>(path);
  const items = [...((first[key] as unknown[] | undefined) ?? [])];
  let cursor = first.nextCursor;
  for (let page = 1; typeof cursor === "string" && cursor && page < MAX_PAGES; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const next = await apiGet<T & { nextCursor?: unknown }>(
      `${path}${sep}cursor=${encodeURIComponent(cursor)}`,
    );
    items.push(...((next[key] as unknown[] | undefined) ?? []));
    cursor = next.nextCursor;
  }
  return { ...first, [key]: items };
}
export const apiPost = <T>(path: string, body: unknown = {}) => call<T>("POST", path, body);

/** A message for the page: the server's reason, and each field issue on its own line. */
export function describeError(err: unknown): string {
  if (err instanceof ConsoleApiError) {
    return [err.message, ...err.issues.map((i) => `${i.path || "(body)"}: ${i.message}`)].join("\n");
  }
  return err instanceof Error ? err.message : String(err);
}
