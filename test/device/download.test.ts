import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DownloadError, ExpiredUrlError } from "../../device/errors.ts";
import { DEFAULT_RETRY, type FetchOptions, fetchRange } from "../../device/install/download.ts";
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
    expect((err as Error).message).toMatch(/403.*expired/);
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
    expect((err2 as Error).message).toMatch(/gave up after 5 failed attempts/);
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

  it("reads a local file the same way (standalone install)", async () => {
    const s = sink();
    await fetchImage({ source: () => join(dir, "image"), onChunk: s.onChunk });
    expect(Buffer.compare(s.out, await readFile(join(dir, "image")))).toBe(0);
  });
});
