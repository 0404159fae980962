/**
 * A real HTTP file server for device tests: Range requests, a connection cut after N body bytes,
 * 403 for "expired" paths, and a count of body bytes actually sent.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FileServer {
  url(path: string): string;
  /** Serve `file` at `path`. */
  add(path: string, file: string): void;
  /** Answer 403 for this path from now on. */
  expire(path: string): void;
  /** Cut the next `times` responses after `bytes` body bytes. */
  cutAfter(bytes: number, times?: number): void;
  /** Stall every response after `bytes` body bytes until release() (a download that hangs mid-way). */
  holdAfter(bytes: number): void;
  release(): void;
  /** Ignore Range headers (answer 200 with the whole body). */
  noRanges(): void;
  bytesSent: number;
  requests: Array<{ path: string; range: string | undefined }>;
  stop(): Promise<void>;
}

export async function startFileServer(): Promise<FileServer> {
  const files = new Map<string, string>();
  const expired = new Set<string>();
  let cut: { bytes: number; times: number } | null = null;
  let ranges = true;
  let hold: { bytes: number; released: Promise<void>; release: () => void } | null = null;
  const state = { bytesSent: 0, requests: [] as Array<{ path: string; range: string | undefined }> };
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    state.requests.push({ path, range: req.headers.range });
    if (expired.has(path)) return void res.writeHead(403).end("Request has expired");
    const file = files.get(path);
    if (!file) return void res.writeHead(404).end("not found");
    const size = (await stat(file)).size;
    let start = 0;
    let end = size; // exclusive
    // Open (`bytes=N-`) and closed (`bytes=N-M`, what delta updates ask for) ranges, as S3 serves them.
    const m = ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "") : null;
    if (m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(size, Number(m[2]) + 1);
      if (start >= size) return void res.writeHead(416, { "content-range": `bytes */${size}` }).end();
      res.writeHead(206, {
        "content-range": `bytes ${start}-${end - 1}/${size}`,
        "content-length": end - start,
      });
    } else {
      res.writeHead(200, { "content-length": size, "accept-ranges": ranges ? "bytes" : "none" });
    }
    let limit = Number.POSITIVE_INFINITY;
    if (cut && cut.times > 0) {
      cut.times--;
      limit = cut.bytes;
    }
    let sent = 0;
    const stream = createReadStream(file, { start, end: end - 1, highWaterMark: 64 * 1024 });
    for await (const chunk of stream) {
      let buf = chunk as Buffer;
      if (sent + buf.length > limit) buf = buf.subarray(0, limit - sent);
      if (hold && sent + buf.length > hold.bytes) {
        const h = hold;
        const first = buf.subarray(0, Math.max(0, h.bytes - sent));
        if (first.length > 0 && !res.write(first)) await new Promise((r) => res.once("drain", r));
        state.bytesSent += first.length;
        sent += first.length;
        buf = buf.subarray(first.length);
        await h.released;
        if (res.destroyed) return;
      }
      if (buf.length > 0) {
        sent += buf.length;
        state.bytesSent += buf.length;
        if (!res.write(buf)) await new Promise((r) => res.once("drain", r));
      }
      if (sent >= limit) {
        stream.destroy();
        // Let the bytes reach the client, then drop the connection mid-body.
        await new Promise((r) => setTimeout(r, 20));
        res.socket?.destroy();
        return;
      }
    }
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: (p) => `http://127.0.0.1:${port}${p}`,
    add: (p, f) => void files.set(p, f),
    expire: (p) => void expired.add(p),
    cutAfter: (bytes, times = 1) => {
      cut = { bytes, times };
    },
    holdAfter: (bytes) => {
      let release = () => {};
      const released = new Promise<void>((r) => {
        release = r;
      });
      hold = { bytes, released, release };
    },
    release: () => {
      hold?.release();
      hold = null;
    },
    noRanges: () => {
      ranges = false;
    },
    get bytesSent() {
      return state.bytesSent;
    },
    get requests() {
      return state.requests;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
