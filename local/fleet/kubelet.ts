/**
 * One HTTP server standing in for every simulated node's kubelet: GET /<thing>/healthz answers "ok" when
 * the image that node booted has a healthy kubelet, 500 otherwise — like the real `healthz` endpoint the
 * agent checks by default (http://127.0.0.1:10248/healthz).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface SimulatedKubelets {
  urlFor(thing: string): string;
  stop(): Promise<void>;
}

export async function startSimulatedKubelets(
  isHealthy: (thing: string) => boolean,
): Promise<SimulatedKubelets> {
  const server: Server = createServer((req, res) => {
    const m = /^\/([a-zA-Z0-9:_-]+)\/healthz$/.exec(req.url ?? "");
    if (req.method !== "GET" || !m?.[1]) {
      res.writeHead(404).end("not found");
      return;
    }
    if (isHealthy(m[1])) res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    else res.writeHead(500, { "content-type": "text/plain" }).end("kubelet not ready");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    urlFor: (thing) => `http://127.0.0.1:${port}/${encodeURIComponent(thing)}/healthz`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
