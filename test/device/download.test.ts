import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describeError } from "../../core/errors.ts";
import {
  AbortedError,
  DownloadError,
  DownloadTimeoutError,
  ExpiredUrlError,
  RangeUnsupportedError,
} from "../../device/errors.ts";
import { DEFAULT_RETRY, type FetchOptions, fetchRange, fetchSmall } from "../../device/install/download.ts";
import { type FileServer, startFileServer } from "./helpers/http-server.ts";
import { recordingClock } from "./helpers/node.ts";
import { randomImage } from "./helpers/release.ts";

const SIZE = 3 * 1024 * 1024 + 123;
/** The server writes 64 KiB reads; one of them may be in flight when the connection drops. */
const CHUNK = 64 * 1024;

describe("fetchRange against a real HTTP server", () => {
  let dir: string;
  let image: Uint8Array;
  let server: FileServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-dl-"));
    image = randomImage(SIZE);
    await writeFile(join(dir, "image"), image);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await server?.stop();
    server = await startFileServer();
    server.add("/image", join(dir, "image"));
  });

  /** Collects what fetchRange hands over into a buffer, checking positions are consecutive. */
  function sink(start = 0) {
    const out = Buffer.alloc(SIZE);
    let next = start;
    return {
      out,
      onChunk: async (chunk: Buffer, position: number) => {
        expect(position).toBe(next);
        chunk.copy(out, position);
        next += chunk.length;
      },
    };
  }

  /** fetchRange of the served image, from byte 0, with the default retry policy; tests name only what differs. */
  function fetchImage(opts: Partial<FetchOptions> = {}) {
    return fetchRange({
      source: () => server.url("/image"),
      start: 0,
      size: SIZE,
      onChunk: async () => {},
      retry: DEFAULT_RETRY,
      clock: recordingClock(),
      ...opts,
    });
  }

  it("resumes with Range after a cut and never fetches more than the image plus one chunk", async () => {
    // Prepare
    server.cutAfter(1024 * 1024, 1);
    const s = sink();
    // Act
    const r = await fetchImage({ onChunk: s.onChunk });
    // Assess
    expect(Buffer.compare(s.out, Buffer.from(image))).toBe(0);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]?.range).toBeUndefined();
    expect(server.requests[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(server.requests[1]?.range ?? "")?.[0])).toBeGreaterThan(0);
    expect(server.bytesSent).toBeLessThanOrEqual(SIZE + CHUNK);
    expect(r.fetched).toBeLessThanOrEqual(SIZE);
  });

  it("survives several cuts in a row, each resuming where the last one stopped", async () => {
    server.cutAfter(700 * 1024, 3);
    const s = sink();
    await fetchImage({ onChunk: s.onChunk });
    expect(Buffer.compare(s.out, Buffer.from(image))).toBe(0);
    const starts = server.requests.map((q) => Number(/\d+/.exec(q.range ?? "bytes=0-")?.[0]));
    expect(starts).toHaveLength(4);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    expect(server.bytesSent).toBeLessThanOrEqual(SIZE + CHUNK);
  });

  it("starts at a saved offset with a Range request (restart mid-download)", async () => {
    const start = 1024 * 1024;
    const s = sink(start);
    await fetchImage({ start, onChunk: s.onChunk });
    expect(server.requests[0]?.range).toBe(`bytes=${start}-`);
    expect(server.bytesSent).toBe(SIZE - start);
    expect(Buffer.compare(s.out.subarray(start), Buffer.from(image).subarray(start))).toBe(0);
  });

  it("says the URL expired on HTTP 403, without retrying it", async () => {
    server.expire("/image");
    const err = await fetchImage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExpiredUrlError);
    expect(describeError(err)).toMatch(/403.*expired/);
    expect(server.requests).toHaveLength(1);
  });

  it("asks for a fresh URL once on 403 and goes on with it", async () => {
    server.expire("/old");
    let url = server.url("/old");
    const s = sink();
    await fetchImage({
      source: () => url,
      onChunk: s.onChunk,
      refresh: async () => {
        url = server.url("/image");
      },
    });
    expect(Buffer.compare(s.out, Buffer.from(image))).toBe(0);
  });

  it("gives up after the bounded retries with capped backoff when nothing arrives", async () => {
    const clock = recordingClock();
    const retry = { ...DEFAULT_RETRY, retries: 4, initialBackoffMs: 100, maxBackoffMs: 300 };
    const err = await fetchImage({ source: () => server.url("/missing-server-error"), retry, clock }).catch(
      (e: unknown) => e,
    );
    // 404 is final: no retry at all
    expect(err).toBeInstanceOf(DownloadError);
    expect(server.requests).toHaveLength(1);
    // Now a server that is down: connection refused each time
    await server.stop();
    const err2 = await fetchImage({ retry, clock }).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(DownloadError);
    expect(describeError(err2)).toMatch(/gave up after 5 failed attempts/);
    expect(clock.waits).toEqual([100, 200, 300, 300]);
  });

  it("refuses bytes beyond the manifest size instead of writing them", async () => {
    const size = SIZE - 1000;
    let written = 0;
    const r = await fetchImage({
      size,
      onChunk: async (c) => {
        written += c.length;
      },
    });
    expect(r.overflow).toBe(true);
    expect(written).toBe(size);
  });

  it("skips what it already has when the server ignores Range", async () => {
    server.noRanges();
    server.cutAfter(1024 * 1024, 1);
    const s = sink();
    await fetchImage({ onChunk: s.onChunk });
    expect(Buffer.compare(s.out, Buffer.from(image))).toBe(0);
  });

  it("rangeOnly asks for exactly [start, size) and refuses a server that answers 200 instead", async () => {
    // A server without Range support answers the closed range with the whole object (HTTP 200).
    server.noRanges();
    const err = await fetchImage({ start: 1000, rangeOnly: true }).catch((e: unknown) => e);
    expect(server.requests.map((r) => r.range)).toEqual([`bytes=1000-${SIZE - 1}`]);
    expect(err).toBeInstanceOf(RangeUnsupportedError);
  });

  it("reads a local file the same way (standalone install)", async () => {
    const s = sink();
    await fetchImage({ source: () => join(dir, "image"), onChunk: s.onChunk });
    expect(Buffer.compare(s.out, await readFile(join(dir, "image")))).toBe(0);
  });
});

/**
 * Servers that stall at each point of a response. Every network read must end in a named error
 * (DownloadTimeoutError with its phase) instead of hanging, for images and for small documents alike.
 */
describe("deadlines on every network read", () => {
  type Mode = "no-headers" | "no-body" | "trickle";
  let server: Server;
  let mode: Mode = "no-headers";
  let requests = 0;
  const BODY = 64;
  const fast = {
    ...DEFAULT_RETRY,
    retries: 1,
    initialBackoffMs: 1,
    maxBackoffMs: 1,
    headersTimeoutMs: 150,
    idleTimeoutMs: 150,
    documentTimeoutMs: 60_000,
    imageTimeoutMs: 60_000,
  };
  beforeAll(async () => {
    server = createServer((_req, res) => {
      requests++;
      if (mode === "no-headers") return; // the request is read; no answer ever comes
      res.writeHead(200, { "content-length": BODY });
      if (mode === "no-body") return void res.flushHeaders();
      // One byte every 50 ms: never idle for long, but never done in time either.
      const timer = setInterval(() => {
        if (res.destroyed) return void clearInterval(timer);
        res.write("x");
      }, 50);
      res.on("close", () => clearInterval(timer));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => {
    requests = 0;
  });
  const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/doc`;
  const image = (retry: typeof fast) =>
    fetchRange({
      source: url,
      start: 0,
      size: BODY,
      onChunk: async () => {},
      retry,
      clock: recordingClock(),
    });
  const doc = (retry: typeof fast) => fetchSmall(url(), 1024, retry, recordingClock());

  async function timeout(p: Promise<unknown>): Promise<DownloadTimeoutError> {
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadTimeoutError);
    return err as DownloadTimeoutError;
  }

  it.each([
    ["image", image],
    ["document", doc],
  ])("%s: no response headers → retried, then DownloadTimeoutError(headers)", async (_what, fetch) => {
    mode = "no-headers";
    const err = await timeout(fetch(fast));
    expect(err.phase).toBe("headers");
    expect(err.message).toMatch(/gave up after 2 failed attempts: .*no response headers within 150 ms/);
    expect(requests).toBe(2);
  });

  it.each([
    ["image", image],
    ["document", doc],
  ])("%s: headers but no body byte → retried, then DownloadTimeoutError(idle)", async (_what, fetch) => {
    mode = "no-body";
    const err = await timeout(fetch(fast));
    expect(err.phase).toBe("idle");
    expect(err.message).toMatch(/no data for 150 ms/);
    expect(requests).toBe(2);
  });

  it.each([
    ["image", image, { imageTimeoutMs: 400 }],
    ["document", doc, { documentTimeoutMs: 400 }],
  ])(
    "%s: a trickle that is never idle ends at the total deadline, not retried",
    async (_what, fetch, total) => {
      mode = "trickle";
      const err = await timeout(fetch({ ...fast, ...total }));
      expect(err.phase).toBe("total");
      expect(err.message).toMatch(/not finished within 400 ms/);
      expect(requests).toBe(1);
    },
  );

  it("the caller's abort still wins over a deadline and says so", async () => {
    mode = "no-headers";
    const ac = new AbortController();
    const p = fetchSmall(url(), 1024, { ...fast, headersTimeoutMs: 60_000 }, recordingClock(), ac.signal);
    setTimeout(() => ac.abort(new Error("job cancelled")), 50);
    expect(await p.catch((e: unknown) => e)).toBeInstanceOf(AbortedError);
  });
});

describe("idle deadline and Range resume together", () => {
  let dir: string;
  let server: FileServer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-dl-idle-"));
    server = await startFileServer();
  });
  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a response that stalls mid-body is cut at the idle deadline and resumed where it stopped", async () => {
    const size = 512 * 1024;
    const image = randomImage(size);
    await writeFile(join(dir, "image"), image);
    server.add("/image", join(dir, "image"));
    // Every response stalls after 200 KiB of its body: three resumes complete the image.
    server.holdAfter(200 * 1024);
    const out = Buffer.alloc(size);
    const r = await fetchRange({
      source: () => server.url("/image"),
      start: 0,
      size,
      onChunk: async (c, p) => void c.copy(out, p),
      retry: { ...DEFAULT_RETRY, retries: 0, idleTimeoutMs: 150 },
      clock: recordingClock(),
    });
    expect(Buffer.compare(out, Buffer.from(image))).toBe(0);
    expect(r.requests).toBe(3);
    expect(server.requests.map((q) => q.range)).toEqual([undefined, "bytes=204800-", "bytes=409600-"]);
  });
});
