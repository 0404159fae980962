/**
 * Fetching bytes for the install pipeline: HTTP(S) GET with Range resume after a cut, bounded retries
 * with capped backoff, and a clear error when a presigned URL has expired (403). A local file path works
 * too (standalone `keel-agent install --image FILE`). Bytes are handed to `onChunk` as they arrive, so
 * memory stays flat whatever the image size: nothing is buffered beyond one socket read.
 */
import { createReadStream } from "node:fs";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { type AgentClock, backoffMs } from "../clock.ts";
import { AbortedError, DownloadError, ExpiredUrlError, RangeUnsupportedError } from "../errors.ts";
import type { Logger } from "../logger.ts";

export interface RetryPolicy {
  /** Attempts after the first one, per download (a cut that made progress does not use one up). */
  retries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** No byte for this long → treat the connection as cut. */
  idleTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  retries: 5,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  idleTimeoutMs: 30_000,
};

export interface FetchOptions {
  /** http(s) URL or a local file path; re-read on every attempt so a refreshed URL can be used. */
  source: () => Promise<string> | string;
  /** First byte wanted (already have [0, start)). */
  start: number;
  /** Total expected size: the fetch stops at `size` and refuses extra bytes instead of writing them. */
  size: number;
  /** Called with consecutive chunks, in order, starting at `start`. Awaited: backpressure reaches the socket. */
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

function get(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  const mod = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { headers, signal }, resolve);
    req.on("error", reject);
  });
}

/** A transient failure worth another attempt; everything else is final. */
class RetryableError extends Error {}

/** Wraps an error thrown by onChunk so it is not mistaken for a cut connection. */
class SinkError extends Error {
  constructor(override readonly cause: unknown) {
    super("sink failed");
  }
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
  while (position < opts.size || requests === 0) {
    if (opts.signal?.aborted) throw new AbortedError("download abandoned", { cause: opts.signal.reason });
    const source = await opts.source();
    const before = position;
    requests++;
    try {
      const r = await (isHttp(source) ? httpAttempt : fileAttempt)(source, position, opts);
      position = r.position;
      fetched += r.fetched;
      overflow ||= r.overflow;
      if (overflow || position >= opts.size) break;
      // The body ended early without an error: a cut connection.
      throw new RetryableError(`connection closed at byte ${position} of ${opts.size}`);
    } catch (err) {
      if (opts.signal?.aborted) throw new AbortedError("download abandoned", { cause: opts.signal.reason });
      if (err instanceof ExpiredUrlError && opts.refresh && !refreshed) {
        refreshed = true;
        opts.logger?.warn("URL refused (403); asking for a fresh one", { position });
        await opts.refresh();
        continue;
      }
      if (!(err instanceof RetryableError)) throw err;
      // A cut after progress is the normal case Range resume exists for: it does not use up an attempt.
      if (position === before) failures++;
      if (failures > opts.retry.retries) {
        throw new DownloadError(source, `gave up after ${failures} failed attempts: ${err.message}`, {
          cause: err,
        });
      }
      const wait = backoffMs(Math.max(0, failures - 1), opts.retry.initialBackoffMs, opts.retry.maxBackoffMs);
      opts.logger?.warn("download interrupted; resuming", { position, error: err.message, waitMs: wait });
      await opts.clock.sleep(wait, opts.signal);
    }
  }
  return { fetched, requests, overflow };
}

interface Attempt {
  position: number;
  fetched: number;
  overflow: boolean;
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

async function httpAttempt(url: string, start: number, opts: FetchOptions): Promise<Attempt> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let position = start;
  let fetched = 0;
  let overflow = false;
  try {
    let res: IncomingMessage;
    try {
      const range = opts.rangeOnly
        ? `bytes=${start}-${opts.size - 1}`
        : start > 0
          ? `bytes=${start}-`
          : undefined;
      res = await get(url, range ? { range } : {}, ac.signal);
    } catch (err) {
      throw new RetryableError(`request failed: ${(err as Error).message}`);
    }
    const status = res.statusCode ?? 0;
    if (status === 403) {
      res.resume();
      throw new ExpiredUrlError(url, "HTTP 403: the URL has expired or does not grant access");
    }
    if (status === 416 && start >= opts.size) {
      res.resume();
      return { position, fetched, overflow };
    }
    if (status >= 500 || status === 408 || status === 429) {
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
    // A stalled connection counts as a cut (socket idle timeout).
    const onIdle = () => res.destroy(new Error(`no data for ${opts.retry.idleTimeoutMs} ms`));
    const socket = res.socket;
    socket?.setTimeout(opts.retry.idleTimeoutMs, onIdle);
    // A kept-alive socket serves the next request (delta: many Range GETs): do not pile up listeners.
    res.once("close", () => socket?.setTimeout(0, onIdle));
    try {
      for await (const raw of res) {
        let chunk = raw as Buffer;
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
      if (opts.signal?.aborted) throw err;
      // A cut: report how far we got; the caller resumes from there with a Range request.
      opts.logger?.debug("connection cut", { position, error: (err as Error).message });
    }
    return { position, fetched, overflow };
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

async function fileAttempt(path: string, start: number, opts: FetchOptions): Promise<Attempt> {
  let position = start;
  let fetched = 0;
  let overflow = false;
  const stream = createReadStream(path, { start, highWaterMark: 1024 * 1024, signal: opts.signal });
  try {
    for await (const raw of stream) {
      const chunk = raw as Buffer;
      fetched += chunk.length;
      const kept = await deliver(chunk, position, opts);
      position += kept.length;
      if (kept.overflow) {
        overflow = true;
        break;
      }
    }
  } catch (err) {
    if (err instanceof SinkError) throw err.cause;
    if (opts.signal?.aborted) throw new AbortedError("read abandoned", { cause: err });
    throw new DownloadError(path, `cannot read image file (${(err as Error).message})`, { cause: err });
  } finally {
    stream.destroy();
  }
  if (position < opts.size && !overflow) {
    throw new DownloadError(path, `image file ends at byte ${position}, manifest says ${opts.size}`);
  }
  return { position, fetched, overflow };
}

/** Small documents (manifest, roots): the whole body, bounded, with the same retry policy. */
export async function fetchSmall(
  source: string,
  maxBytes: number,
  retry: RetryPolicy,
  clock: AgentClock,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let total = 0;
  for (let attempt = 0; ; attempt++) {
    parts.length = 0;
    total = 0;
    try {
      if (!isHttp(source)) {
        const { readFile } = await import("node:fs/promises");
        const buf = await readFile(source);
        if (buf.length > maxBytes) throw new DownloadError(source, `larger than ${maxBytes} bytes`);
        return new Uint8Array(buf);
      }
      const res = await get(source, {}, signal ?? new AbortController().signal).catch((err: Error) => {
        throw new RetryableError(err.message);
      });
      const status = res.statusCode ?? 0;
      if (status === 403) {
        res.resume();
        throw new ExpiredUrlError(source, "HTTP 403: the URL has expired or does not grant access");
      }
      if (status >= 500 || status === 429) {
        res.resume();
        throw new RetryableError(`HTTP ${status}`);
      }
      if (status !== 200) {
        res.resume();
        throw new DownloadError(source, `HTTP ${status}`);
      }
      try {
        for await (const c of res) {
          total += (c as Buffer).length;
          if (total > maxBytes) {
            res.destroy();
            throw new DownloadError(source, `larger than ${maxBytes} bytes`);
          }
          parts.push(c as Buffer);
        }
      } catch (err) {
        if (err instanceof DownloadError) throw err;
        throw new RetryableError((err as Error).message);
      }
      return new Uint8Array(Buffer.concat(parts));
    } catch (err) {
      if (signal?.aborted) throw new AbortedError("download abandoned", { cause: signal.reason });
      if (!(err instanceof RetryableError)) {
        if (err instanceof DownloadError) throw err;
        throw new DownloadError(source, (err as Error).message, { cause: err });
      }
      if (attempt >= retry.retries) {
        throw new DownloadError(source, `gave up after ${attempt + 1} attempts: ${err.message}`, {
          cause: err,
        });
      }
      await clock.sleep(backoffMs(attempt, retry.initialBackoffMs, retry.maxBackoffMs), signal);
    }
  }
}
