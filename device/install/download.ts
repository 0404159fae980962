/**
 * Fetching bytes for the install pipeline: HTTP(S) GET with Range resume after a cut, bounded retries
 * with capped backoff, and a clear error when a presigned URL has expired (403). A local file path works
 * too (standalone `keel-agent install --image FILE`). Bytes are handed to `onChunk` as they arrive, so
 * memory stays flat whatever the image size: nothing is buffered beyond one socket read.
 *
 * Every network read has a deadline, so no server can hold the agent forever (docs/security.md):
 *   headers  request sent → response headers            (per request; a miss counts as a cut, retried)
 *   idle     no body byte for this long                   (per request; a cut, resumed with Range)
 *   total    the whole fetch, retries and backoff included (final: DownloadTimeoutError "total")
 * The idle clock runs only while waiting on the network, never while our own sink (the slot write) is busy.
 */
import { type FileHandle, open as openFile, readFile } from "node:fs/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { describeError } from "../../core/errors.ts";
import { type AgentClock, backoffMs } from "../clock.ts";
import {
  AbortedError,
  type DeadlinePhase,
  DownloadError,
  DownloadTimeoutError,
  ExpiredUrlError,
  RangeUnsupportedError,
} from "../errors.ts";
import type { Logger } from "../logger.ts";

export interface RetryPolicy {
  /** Attempts after the first one, per download (a cut that made progress does not use one up). */
  retries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** No byte for this long → treat the connection as cut. */
  idleTimeoutMs: number;
  /** No response headers this long after the request → treat the connection as cut. */
  headersTimeoutMs: number;
  /** A whole document fetch (manifest, root), retries included. */
  documentTimeoutMs: number;
  /** A whole image download in one call, retries and resumes included. */
  imageTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  retries: 5,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  idleTimeoutMs: 30_000,
  headersTimeoutMs: 30_000,
  documentTimeoutMs: 120_000,
  imageTimeoutMs: 24 * 3600_000,
};

export interface FetchOptions {
  /** http(s) URL or a local file path; re-read on every attempt so a refreshed URL can be used. */
  source: () => Promise<string> | string;
  /** First byte wanted (already have [0, start)). */
  start: number;
  /** Total expected size: the fetch stops at `size` and refuses extra bytes instead of writing them. */
  size: number;
  /**
   * Called with consecutive chunks, in order, starting at `start`. Awaited: backpressure reaches the
   * socket. A chunk is valid only until the promise settles (a local file is read into one reused buffer):
   * copy what must be kept.
   */
  onChunk: (chunk: Buffer, position: number) => Promise<void>;
  retry: RetryPolicy;
  clock: AgentClock;
  signal?: AbortSignal;
  logger?: Logger;
  /** Called on a 403 once per download, to get a fresh presigned URL (job re-described). */
  refresh?: () => Promise<void>;
  /**
   * Delta updates (device/install/delta.ts): ask for exactly [start, size) and refuse a server that
   * ignores Range (RangeUnsupportedError) instead of reading the whole object to skip to `start`.
   */
  rangeOnly?: boolean;
}

export interface FetchResult {
  /** Bytes received over the network (or read from the file) in this call, across retries. */
  fetched: number;
  /** Number of requests made. */
  requests: number;
  /** True when more bytes than `size` were offered (a size mismatch; never written). */
  overflow: boolean;
}

const isHttp = (s: string) => /^https?:\/\//i.test(s);

/** A transient failure worth another attempt; everything else is final. `cause` says what happened. */
class RetryableError extends Error {}

/** Wraps an error thrown by onChunk so it is not mistaken for a cut connection. */
class SinkError extends Error {
  constructor(override readonly cause: unknown) {
    super("sink failed");
  }
}

/**
 * The deadline of a whole fetch, and the caller's own abort signal, as one signal for everything inside.
 * `check()` turns an abort into the right named error: AbortedError for the caller's cancel, the
 * DownloadTimeoutError "total" for the deadline.
 */
class FetchDeadline {
  private readonly ctl = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly onAbort: () => void;
  /** What is being fetched, for the error (a refreshed URL replaces it). */
  source = "";

  constructor(
    private readonly ms: number,
    private readonly outer: AbortSignal | undefined,
  ) {
    this.timer = setTimeout(() => this.ctl.abort(new DownloadTimeoutError(this.source, "total", ms)), ms);
    this.onAbort = () => this.ctl.abort(outer?.reason);
    if (outer?.aborted) this.ctl.abort(outer.reason);
    else outer?.addEventListener("abort", this.onAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.ctl.signal;
  }

  /** Throws if the fetch must stop; `cause` is the error that surfaced the stop, kept for the record. */
  check(cause?: unknown): void {
    if (this.outer?.aborted)
      throw new AbortedError("download abandoned", { cause: this.outer.reason ?? cause });
    if (this.ctl.signal.aborted)
      throw new DownloadTimeoutError(this.source, "total", this.ms, undefined, { cause });
  }

  clear(): void {
    clearTimeout(this.timer);
    this.outer?.removeEventListener("abort", this.onAbort);
  }
}

/** An open response whose body ends in a DownloadTimeoutError "idle" when the server stops sending. */
interface Opened {
  res: IncomingMessage;
  status: number;
  body: AsyncIterable<Buffer>;
  /** The per-request deadline that ended this request, if one did. */
  timedOut(): DownloadTimeoutError | undefined;
  close(): void;
}

/**
 * GET with the per-request deadlines: headers (from the request to the response) and idle (between body
 * bytes, counted only while waiting on the socket). A miss aborts the request; what fails then carries the
 * DownloadTimeoutError as the reason, and `timedOut()` names it.
 */
async function open(
  url: string,
  headers: Record<string, string>,
  retry: RetryPolicy,
  signal: AbortSignal,
): Promise<Opened> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = (phase: DeadlinePhase, ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(new DownloadTimeoutError(url, phase, ms)), ms);
  };
  const timedOut = () => (ac.signal.reason instanceof DownloadTimeoutError ? ac.signal.reason : undefined);
  const close = () => {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  };
  arm("headers", retry.headersTimeoutMs);
  let res: IncomingMessage;
  try {
    const mod = url.startsWith("https:") ? https : http;
    res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = mod.get(url, { headers, signal: ac.signal }, resolve);
      req.on("error", reject);
    });
  } catch (err) {
    close();
    const cause = timedOut() ?? err;
    throw new RetryableError(`request failed: ${describeError(cause)}`, { cause });
  }
  clearTimeout(timer);
  async function* body(): AsyncGenerator<Buffer> {
    arm("idle", retry.idleTimeoutMs);
    for await (const chunk of res) {
      clearTimeout(timer);
      yield chunk as Buffer;
      arm("idle", retry.idleTimeoutMs);
    }
    clearTimeout(timer);
  }
  return { res, status: res.statusCode ?? 0, body: body(), timedOut, close };
}

/** Status codes that say "try again later"; 403 and the rest are final. */
const isTransient = (status: number) => status >= 500 || status === 408 || status === 429;

/** The final error once retries are spent: a deadline miss stays a DownloadTimeoutError. */
function gaveUp(source: string, attempts: number, err: RetryableError): DownloadError {
  const message = `gave up after ${attempts} failed attempts: ${err.message}`;
  return err.cause instanceof DownloadTimeoutError
    ? new DownloadTimeoutError(source, err.cause.phase, err.cause.ms, message, { cause: err.cause })
    : new DownloadError(source, message, { cause: err.cause ?? err });
}

/**
 * Streams [start, size) of the source to onChunk. Resumes with `Range: bytes=N-` after a cut; if the
 * server ignores ranges (200 instead of 206) it skips the bytes already had rather than failing.
 */
export async function fetchRange(opts: FetchOptions): Promise<FetchResult> {
  let position = opts.start;
  let fetched = 0;
  let requests = 0;
  let failures = 0;
  let refreshed = false;
  let overflow = false;
  const deadline = new FetchDeadline(opts.retry.imageTimeoutMs, opts.signal);
  try {
    while (position < opts.size || requests === 0) {
      deadline.check();
      const source = await opts.source();
      deadline.source = source;
      const before = position;
      requests++;
      try {
        const r = await (isHttp(source) ? httpAttempt : fileAttempt)(source, position, opts, deadline.signal);
        position = r.position;
        fetched += r.fetched;
        overflow ||= r.overflow;
        if (overflow || position >= opts.size) break;
        // The body ended early: a cut connection (or a missed idle deadline).
        throw new RetryableError(
          `connection closed at byte ${position} of ${opts.size}${r.cut ? ` (${r.cut.message})` : ""}`,
          { cause: r.cut },
        );
      } catch (err) {
        deadline.check(err);
        if (err instanceof ExpiredUrlError && opts.refresh && !refreshed) {
          refreshed = true;
          opts.logger?.warn("URL refused (403); asking for a fresh one", { position });
          await opts.refresh();
          continue;
        }
        if (!(err instanceof RetryableError)) throw err;
        // A cut after progress is the normal case Range resume exists for: it does not use up an attempt.
        if (position === before) failures++;
        if (failures > opts.retry.retries) throw gaveUp(source, failures, err);
        const wait = backoffMs(
          Math.max(0, failures - 1),
          opts.retry.initialBackoffMs,
          opts.retry.maxBackoffMs,
        );
        opts.logger?.warn("download interrupted; resuming", { position, error: err.message, waitMs: wait });
        await opts.clock.sleep(wait, deadline.signal).catch((e: unknown) => {
          deadline.check(e);
          throw e;
        });
      }
    }
    return { fetched, requests, overflow };
  } finally {
    deadline.clear();
  }
}

interface Attempt {
  position: number;
  fetched: number;
  overflow: boolean;
  /** Why the body ended before `size`, when it was cut rather than complete. */
  cut?: Error | undefined;
}

/**
 * Hands the chunk at `position` to the sink, cut at `opts.size`: bytes past the manifest's size are never
 * written, only reported as `overflow`. A sink failure (slot write) is not a network problem and is never
 * retried, so it comes out wrapped in SinkError.
 */
async function deliver(
  chunk: Buffer,
  position: number,
  opts: FetchOptions,
): Promise<{ length: number; overflow: boolean }> {
  const overflow = position + chunk.length > opts.size;
  const kept = overflow ? chunk.subarray(0, opts.size - position) : chunk;
  if (kept.length > 0) {
    try {
      await opts.onChunk(kept, position);
    } catch (err) {
      throw new SinkError(err);
    }
  }
  return { length: kept.length, overflow };
}

async function httpAttempt(
  url: string,
  start: number,
  opts: FetchOptions,
  signal: AbortSignal,
): Promise<Attempt> {
  let position = start;
  let fetched = 0;
  let overflow = false;
  const range = opts.rangeOnly
    ? `bytes=${start}-${opts.size - 1}`
    : start > 0
      ? `bytes=${start}-`
      : undefined;
  const o = await open(url, range ? { range } : {}, opts.retry, signal);
  const { res, status } = o;
  try {
    if (status === 403) {
      res.resume();
      throw new ExpiredUrlError(url, "HTTP 403: the URL has expired or does not grant access");
    }
    if (status === 416 && start >= opts.size) {
      res.resume();
      return { position, fetched, overflow };
    }
    if (isTransient(status)) {
      res.resume();
      throw new RetryableError(`HTTP ${status}`);
    }
    let skip = 0;
    if (status === 206) {
      const m = /^bytes (\d+)-/.exec(res.headers["content-range"] ?? "");
      if (!m || Number(m[1]) !== start) {
        res.resume();
        throw new DownloadError(url, `server answered a range from ${m?.[1] ?? "?"} when asked for ${start}`);
      }
    } else if (status === 200 && opts.rangeOnly) {
      res.destroy();
      throw new RangeUnsupportedError(url, "the server ignored the Range header (HTTP 200)");
    } else if (status === 200) {
      // No range support: the body starts at 0; drop what we already have.
      skip = start;
    } else {
      res.resume();
      throw new DownloadError(url, `HTTP ${status}`);
    }
    try {
      for await (const raw of o.body) {
        let chunk = raw;
        fetched += chunk.length;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        const kept = await deliver(chunk, position, opts);
        position += kept.length;
        if (kept.overflow) {
          overflow = true;
          res.destroy();
          break;
        }
      }
    } catch (err) {
      if (err instanceof SinkError) throw err.cause;
      if (signal.aborted) throw err;
      // A cut: report how far we got; the caller resumes from there with a Range request.
      const cut = o.timedOut() ?? (err as Error);
      opts.logger?.debug("connection cut", { position, error: cut.message });
      return { position, fetched, overflow, cut };
    }
    return { position, fetched, overflow };
  } finally {
    o.close();
  }
}

/** Bytes per read of a local image: the same order as a socket read, so both paths use memory alike. */
const FILE_READ_BYTES = 256 * 1024;

/**
 * A local image is read into ONE buffer reused for every read: a read stream allocates a fresh buffer per
 * read, and those dead buffers (outside the V8 heap) piled up to ~35 MB of RSS before a collection freed
 * them (issue 11: 108 MB peak against 74 MB over HTTP). Reuse is safe because onChunk is awaited and the
 * sinks copy the chunk before they resolve (FetchOptions.onChunk).
 */
async function fileAttempt(
  path: string,
  start: number,
  opts: FetchOptions,
  signal: AbortSignal,
): Promise<Attempt> {
  let position = start;
  let fetched = 0;
  let overflow = false;
  let fh: FileHandle | undefined;
  try {
    fh = await openFile(path, "r");
    const buf = Buffer.allocUnsafe(FILE_READ_BYTES);
    for (;;) {
      signal.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      fetched += bytesRead;
      const kept = await deliver(buf.subarray(0, bytesRead), position, opts);
      position += kept.length;
      if (kept.overflow) {
        overflow = true;
        break;
      }
    }
  } catch (err) {
    if (err instanceof SinkError) throw err.cause;
    if (signal.aborted) throw new AbortedError("read abandoned", { cause: err });
    throw new DownloadError(path, `cannot read image file (${describeError(err)})`, { cause: err });
  } finally {
    await fh?.close();
  }
  if (position < opts.size && !overflow) {
    throw new DownloadError(path, `image file ends at byte ${position}, manifest says ${opts.size}`);
  }
  return { position, fetched, overflow };
}

/**
 * Small documents (manifest, roots): the whole body, bounded in size, with the same retry policy and
 * deadlines; the whole fetch must finish within `documentTimeoutMs`.
 */
export async function fetchSmall(
  source: string,
  maxBytes: number,
  retry: RetryPolicy,
  clock: AgentClock,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const deadline = new FetchDeadline(retry.documentTimeoutMs, signal);
  deadline.source = source;
  try {
    for (let attempt = 0; ; attempt++) {
      deadline.check();
      try {
        return isHttp(source)
          ? await smallAttempt(source, maxBytes, retry, deadline.signal)
          : await smallFile(source, maxBytes);
      } catch (err) {
        deadline.check(err);
        if (!(err instanceof RetryableError)) {
          if (err instanceof DownloadError) throw err;
          throw new DownloadError(source, describeError(err), { cause: err });
        }
        if (attempt >= retry.retries) throw gaveUp(source, attempt + 1, err);
        await clock
          .sleep(backoffMs(attempt, retry.initialBackoffMs, retry.maxBackoffMs), deadline.signal)
          .catch((e: unknown) => {
            deadline.check(e);
            throw e;
          });
      }
    }
  } finally {
    deadline.clear();
  }
}

async function smallFile(path: string, maxBytes: number): Promise<Uint8Array> {
  const buf = await readFile(path);
  if (buf.length > maxBytes) throw new DownloadError(path, `larger than ${maxBytes} bytes`);
  return new Uint8Array(buf);
}

async function smallAttempt(
  url: string,
  maxBytes: number,
  retry: RetryPolicy,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const o = await open(url, {}, retry, signal);
  const { res, status } = o;
  try {
    if (status === 403) {
      res.resume();
      throw new ExpiredUrlError(url, "HTTP 403: the URL has expired or does not grant access");
    }
    if (isTransient(status)) {
      res.resume();
      throw new RetryableError(`HTTP ${status}`);
    }
    if (status !== 200) {
      res.resume();
      throw new DownloadError(url, `HTTP ${status}`);
    }
    const parts: Buffer[] = [];
    let total = 0;
    try {
      for await (const c of o.body) {
        total += c.length;
        if (total > maxBytes) {
          res.destroy();
          throw new DownloadError(url, `larger than ${maxBytes} bytes`);
        }
        parts.push(c);
      }
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      const cause = o.timedOut() ?? (err as Error);
      throw new RetryableError(cause.message, { cause });
    }
    // A body shorter than its Content-Length ends without an error in some cases: check it here.
    const declared = Number(res.headers["content-length"] ?? Number.NaN);
    if (Number.isFinite(declared) && declared !== total) {
      throw new RetryableError(`body ended at byte ${total} of ${declared}`);
    }
    return new Uint8Array(Buffer.concat(parts));
  } finally {
    o.close();
  }
}
