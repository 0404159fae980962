/**
 * A real MQTT broker for jobs-client tests (docs/style.md#tests): aedes in-process behind node:tls with
 * mutual TLS (certificates made by the real openssl), plus a small fake IoT Jobs responder speaking the
 * `$aws/things/T/jobs/...` topics of docs/iot-jobs.md §1: start-next, get, update, notify-next.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer, type Server } from "node:tls";
import { Aedes } from "aedes";

export interface Certs {
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Paths of the device's files. */
  files: { cert: string; key: string; ca: string };
}

/** CA, a server certificate for 127.0.0.1 and a client certificate for `thing`, with openssl. */
export function makeCerts(dir: string, thing: string): Certs {
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test-ca", "-days", "2"]);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  /** A key and a certificate for `cn`, signed by the CA: `<name>.key`, `<name>.pem`. */
  const issue = (name: string, cn: string, ...extra: string[]) => {
    run(["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`]);
    run([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      ...extra,
    ]);
  };
  issue("server", "127.0.0.1", "-extfile", "san.ext");
  issue("device", thing);
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return {
    ca: read("ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    files: { cert: join(dir, "device.pem"), key: join(dir, "device.key"), ca: join(dir, "ca.pem") },
  };
}

export interface FakeExecution {
  jobId: string;
  executionNumber: number;
  status: string;
  statusDetails: Record<string, string>;
  versionNumber: number;
  jobDocument: unknown;
  queuedAt: number;
}

export interface FakeJobs {
  url: string;
  /** Every update request received, in order. */
  updates: Array<{ jobId: string; status: string; statusDetails: Record<string, string> }>;
  executions: Map<string, FakeExecution>;
  queue(jobId: string, jobDocument: unknown): void;
  cancel(jobId: string): void;
  /** Drop every update with a terminal status (the device must retry). */
  dropTerminalUpdates: number;
  /** Publish this payload on notify-next (duplicates). */
  notifyNext(): void;
  connectedClients(): number;
  stop(): Promise<void>;
}

const PENDING = new Set(["QUEUED", "IN_PROGRESS"]);

export async function startFakeJobs(certs: Certs, thing: string): Promise<FakeJobs> {
  const broker = await Aedes.createBroker();
  const executions = new Map<string, FakeExecution>();
  const updates: FakeJobs["updates"] = [];
  const prefix = `$aws/things/${thing}/jobs/`;
  const now = () => Math.floor(Date.now() / 1000);
  const publish = (topic: string, body: unknown) =>
    broker.publish(
      {
        cmd: "publish",
        topic,
        payload: Buffer.from(JSON.stringify(body)),
        qos: 1,
        dup: false,
        retain: false,
      },
      () => {},
    );
  const head = (): FakeExecution | undefined =>
    [...executions.values()]
      .filter((e) => PENDING.has(e.status))
      .sort((a, b) =>
        a.status === b.status ? a.queuedAt - b.queuedAt : a.status === "IN_PROGRESS" ? -1 : 1,
      )[0];
  let lastHead: string | undefined;
  const maybeNotifyNext = (force = false) => {
    const h = head();
    if (!force && h?.jobId === lastHead) return;
    lastHead = h?.jobId;
    publish(`${prefix}notify-next`, h ? { timestamp: now(), execution: h } : { timestamp: now() });
  };
  const fake: FakeJobs = {
    url: "",
    updates,
    executions,
    dropTerminalUpdates: 0,
    queue(jobId, jobDocument) {
      executions.set(jobId, {
        jobId,
        executionNumber: 1,
        status: "QUEUED",
        statusDetails: {},
        versionNumber: 1,
        jobDocument,
        queuedAt: Date.now(),
      });
      maybeNotifyNext();
    },
    cancel(jobId) {
      const e = executions.get(jobId);
      if (e) e.status = "CANCELED";
      maybeNotifyNext();
    },
    notifyNext: () => maybeNotifyNext(true),
    connectedClients: () => broker.connectedClients,
    async stop() {
      await new Promise<void>((r) => {
        server.close(() => r());
        broker.close();
      });
    },
  };
  broker.on("publish", (packet, client) => {
    if (!client || !packet.topic.startsWith(prefix)) return;
    const rest = packet.topic.slice(prefix.length).split("/");
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(packet.payload.toString());
    } catch {
      return;
    }
    const token = body.clientToken;
    if (rest[0] === "start-next" && rest.length === 1) {
      const h = head();
      if (h && h.status === "QUEUED") {
        h.status = "IN_PROGRESS";
        h.versionNumber++;
      }
      publish(`${prefix}start-next/accepted`, {
        clientToken: token,
        timestamp: now(),
        ...(h ? { execution: h } : {}),
      });
      return;
    }
    const jobId = rest[0] ?? "";
    const e = executions.get(jobId);
    if (rest[1] === "get" && rest.length === 2) {
      if (!e)
        publish(`${prefix}${jobId}/get/rejected`, {
          clientToken: token,
          code: "ResourceNotFound",
          message: "no such job",
        });
      else publish(`${prefix}${jobId}/get/accepted`, { clientToken: token, timestamp: now(), execution: e });
      return;
    }
    if (rest[1] === "update" && rest.length === 2) {
      const status = String(body.status);
      const details = (body.statusDetails ?? {}) as Record<string, string>;
      if (!e) {
        publish(`${prefix}${jobId}/update/rejected`, {
          clientToken: token,
          code: "ResourceNotFound",
          message: "no such job",
        });
        return;
      }
      if (!PENDING.has(e.status)) {
        publish(`${prefix}${jobId}/update/rejected`, {
          clientToken: token,
          code: "InvalidStateTransition",
          message: `execution is ${e.status}`,
        });
        return;
      }
      if (status !== "IN_PROGRESS" && fake.dropTerminalUpdates > 0) {
        fake.dropTerminalUpdates--;
        return; // lost: the device must retry
      }
      updates.push({ jobId, status, statusDetails: details });
      e.status = status;
      e.statusDetails = details;
      e.versionNumber++;
      publish(`${prefix}${jobId}/update/accepted`, { clientToken: token, timestamp: now() });
      maybeNotifyNext();
    }
  });
  const server: Server = createServer(
    {
      key: certs.serverKey,
      cert: certs.serverCert,
      ca: certs.ca,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => broker.handle(socket),
  );
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  fake.url = `mqtts://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  return fake;
}
