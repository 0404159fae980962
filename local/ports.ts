/**
 * Free loopback ports for services that cannot listen on port 0 and report back (mosquitto, s3rver's
 * config). The port is free when returned; a tiny race with another process remains, so callers that can
 * listen on 0 should.
 */
import { createServer } from "node:net";

export const LOOPBACK = "127.0.0.1";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}
