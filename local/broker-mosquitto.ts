/**
 * `--broker mosquitto`: a real mosquitto child process with a generated config under the data dir, enforcing
 * the same rules as the aedes broker (docs/architecture.md, device IoT policy):
 * - TLS listener with require_certificate against the local CA: no certificate, or one from another CA, is
 *   refused at the handshake.
 * - A CRL (crlfile) revoking every device certificate the local CA issued that is not ACTIVE in the registry:
 *   unknown and INACTIVE certificates are refused at the handshake.
 * - Keel's plugin (local/mosquitto-client-id.c, built with the system C compiler on first use) checks every
 *   CONNECT before mosquitto looks for an existing session: the client id must be a thing the certificate
 *   is attached to (AWS IoT's `iot:Connect` on `client/${iot:Connection.Thing.ThingName}`). A valid
 *   certificate asking for another thing's client id gets CONNACK "not authorized" and the thing connected
 *   under that id stays connected. (`use_identity_as_username` would skip plugins at CONNECT, so the
 *   plugin sets the username to the certificate's CN itself.)
 * - An ACL file giving each certificate CN read/write on `$aws/things/<thing>/jobs/#` of the things it is
 *   attached to only; the service certificate gets everything.
 * - A claim certificate (fleet provisioning) gets `<CN> @claim` in the policy file, write on the request topics
 *   and read on the answers its policy allows in the ACL file; the plugin routes its requests and the
 *   answers (local/provisioning-topics.ts), so an answer reaches the asking connection only.
 * Registry changes rewrite the policy file, the ACL file and the CRL and send SIGHUP, which makes mosquitto
 * and the plugin reload all three; connections that no longer pass are then closed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { access, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import mqtt, { type MqttClient } from "mqtt";
import { type LocalCertificateAuthority, serviceClientOf } from "./ca.ts";
import type { DeviceAuthority, RunningBroker } from "./contracts.ts";
import { LocalServiceError } from "./errors.ts";
import { freePort, LOOPBACK } from "./ports.ts";
import type { ClaimAccess } from "./provisioning-topics.ts";

export interface MosquittoOptions {
  ca: LocalCertificateAuthority;
  authority: DeviceAuthority;
  /** Config, ACL, CRL and mosquitto's persistence live here. */
  dir: string;
  port?: number;
  /** Executable; default `mosquitto` on PATH. */
  command?: string;
}

/** `New client connected from 127.0.0.1:40000 as thing-1 (p2, c1, k60, u'keel-device-…').` */
const NEW_CLIENT = /New client connected from \S+ as (\S+) \(.*u'([^']*)'\)/;
const RELOADED = /Reloading config/;
/** `Client thing-1 disconnected.` / `Client thing-1 closed its connection.` */
const CLIENT_GONE = /^Client (\S+) (?:disconnected|closed its connection)/;
const PROBE_CLIENT_ID = "keel-broker-probe";
const PROBE_TOPIC = "keel/broker/probe";
/** Logged once the listeners are open. */
const RUNNING = /mosquitto version \S+ running/;

export async function startMosquittoBroker(options: MosquittoOptions): Promise<RunningBroker> {
  const { ca, authority, dir } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const port = options.port ?? (await freePort());
  const files = {
    conf: join(dir, "mosquitto.conf"),
    acl: join(dir, "acl"),
    crl: join(dir, "crl.pem"),
    policy: join(dir, "client-ids"),
    cert: join(dir, "server.cert.pem"),
    key: join(dir, "server.key.pem"),
  };
  // Registry changes: coalesce bursts (1,000 registrations) into few reloads, one in flight at a time.
  // Subscribed before the first policy is written so no change is missed; reloads wait until mosquitto runs.
  let dirty = false;
  let stopped = false;
  let markReady: () => void = () => {};
  let running = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const unsubscribe = authority.onChange(() => {
    if (dirty || stopped) return;
    dirty = true;
    running = running.then(async () => {
      if (stopped) return;
      dirty = false;
      try {
        await reload();
      } catch (err) {
        // Stopping interrupts a reload in flight; nothing to report then.
        if (stopped) return;
        // Keep later changes flowing; this one is retried with the next change.
        process.stderr.write(
          `${JSON.stringify({ level: "error", component: "mosquitto", msg: "policy reload failed", error: String(err) })}\n`,
        );
      }
    });
  });

  const plugin = await buildClientIdPlugin();
  await writeAtomic(files.cert, ca.server.cert);
  await writeAtomic(files.key, ca.server.key);
  await writePolicy();
  await writeAtomic(files.conf, config());

  const serviceClient = serviceClientOf(ca);
  const url = `mqtts://${LOOPBACK}:${port}`;
  /** Connected clients as mosquitto reports them: client id → certificate CN. */
  const connected = new Map<string, string>();

  const child = spawn(options.command ?? "mosquitto", ["-c", files.conf], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  // Never leave a broker behind when this process ends without calling stop().
  const killOnExit = () => child.kill("SIGTERM");
  process.once("exit", killOnExit);
  child.once("exit", () => process.off("exit", killOnExit));
  const log: string[] = [];
  let pendingReloads: Array<() => void> = [];
  let started: (() => void) | undefined;
  const onLine = (line: string) => {
    if (process.env.KEEL_MOSQUITTO_LOG) process.stderr.write(`mosquitto[${port}]: ${line}\n`);
    log.push(line);
    if (log.length > 200) log.shift();
    if (RUNNING.test(line)) started?.();
    if (RELOADED.test(line)) pendingReloads.shift()?.();
    const m = NEW_CLIENT.exec(line);
    if (m?.[1] && m[2] !== undefined) {
      connected.set(m[1], m[2]);
      // The plugin checked this CONNECT against the policy file; a registry change since then is caught here.
      if (!allowed(m[1], m[2])) kick(m[1]);
    }
    const gone = CLIENT_GONE.exec(line);
    if (gone?.[1]) connected.delete(gone[1]);
  };
  for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on("line", onLine);

  let probe: MqttClient;
  try {
    await waitForStart(
      child,
      () => log.join("\n"),
      (resolve) => (started = resolve),
    );
    // Our own service connection, to learn when a reload is over (see reload()).
    probe = await mqtt.connectAsync(url, {
      ...serviceClient,
      clientId: PROBE_CLIENT_ID,
      reconnectPeriod: 500,
    });
  } catch (err) {
    stopped = true;
    unsubscribe();
    await stopChild(child);
    if (err instanceof LocalServiceError) throw err;
    throw new LocalServiceError("mosquitto", `started but refused the service client\n${log.join("\n")}`, {
      cause: err,
    });
  }
  markReady();

  /**
   * mosquitto logs "Reloading config." when it starts a reload and clears its reload flag only when done, so
   * a SIGHUP that arrives during a reload is lost. A QoS 1 round trip after the log line is answered by the
   * same single-threaded loop, so once it returns the reload is over: new connections see the new files and
   * the next SIGHUP cannot be lost.
   */
  async function reload(): Promise<void> {
    await writePolicy();
    await new Promise<void>((resolve) => {
      pendingReloads.push(resolve);
      child.kill("SIGHUP");
    });
    await probe.publishAsync(PROBE_TOPIC, "", { qos: 1 });
    // A certificate made inactive or detached stops working at once, as with aedes: the CRL and ACL now
    // refuse it for new connections; existing ones are closed here.
    for (const [clientId, commonName] of connected) {
      if (!allowed(clientId, commonName)) kick(clientId);
    }
  }

  function allowed(clientId: string, commonName: string): boolean {
    if (commonName === ca.serviceClient.commonName) return true;
    const certificateId = certificateIdByCommonName().get(commonName);
    return certificateId !== undefined && authority.checkConnect(certificateId, clientId) === null;
  }

  /** Takes the client id over with the service identity: mosquitto closes the offending connection. */
  function kick(clientId: string): void {
    const takeover = mqtt.connect(url, { ...serviceClient, clientId, reconnectPeriod: 0, clean: true });
    takeover.once("connect", () => takeover.end(true));
    takeover.once("error", () => takeover.end(true));
  }

  function certificateIdByCommonName(): Map<string, string> {
    const byName = new Map<string, string>();
    for (const id of ca.issuedCertificateIds()) {
      const name = ca.commonNameOf(id);
      if (name) byName.set(name, id);
    }
    return byName;
  }

  async function writePolicy(): Promise<void> {
    const active = authority.listActiveCertificates();
    const activeIds = new Set(active.map((c) => c.certificateId));
    const lines = [
      "# Generated by keel from the IoT registry; rewritten on every registry change.",
      `user ${ca.serviceClient.commonName}`,
      "topic readwrite #",
      "topic readwrite $aws/#",
      "topic readwrite $keel/#",
    ];
    const claims = new Map<string, ClaimAccess>();
    for (const { certificateId, things } of active) {
      const name = ca.commonNameOf(certificateId);
      const claim = things.length === 0 ? authority.claimAccess?.(certificateId) : undefined;
      if (name && claim) {
        claims.set(name, claim);
        lines.push(
          "",
          `user ${name}`,
          ...claim.publish.map((t) => `topic write ${t}`),
          ...claim.subscribe.map((t) => `topic read ${t}`),
        );
      }
      if (!name || things.length === 0) continue;
      lines.push("", `user ${name}`, ...things.map((t) => `topic readwrite $aws/things/${t}/jobs/#`));
    }
    await writeAtomic(files.acl, `${lines.join("\n")}\n`);
    // "<CN> <client id>" pairs the plugin accepts at CONNECT; the service may use any client id.
    const pairs = [`${ca.serviceClient.commonName} *`];
    for (const { certificateId, things } of active) {
      const name = ca.commonNameOf(certificateId);
      if (name) pairs.push(...things.map((t) => `${name} ${t}`));
    }
    for (const name of claims.keys()) pairs.push(`${name} @claim`);
    await writeAtomic(files.policy, `${pairs.join("\n")}\n`);
    const revoked = ca.issuedCertificateIds().filter((id) => !activeIds.has(id));
    await writeAtomic(files.crl, ca.revocationList(revoked));
  }

  function config(): string {
    return [
      "# Generated by keel (local/broker-mosquitto.ts); rewritten on every start.",
      // Run as root, mosquitto would switch to the `mosquitto` user, which cannot read our 0700 data dir.
      ...(userInfo().uid === 0 ? ["user root"] : []),
      "per_listener_settings false",
      "allow_anonymous false",
      `acl_file ${files.acl}`,
      `plugin ${plugin}`,
      `plugin_opt_policy ${files.policy}`,
      "persistence true",
      `persistence_location ${dir}/`,
      "log_dest stderr", // unbuffered: we read it line by line
      "log_type error",
      "log_type warning",
      "log_type notice",
      "log_type information",
      "log_timestamp false",
      "connection_messages true",
      `listener ${port} ${LOOPBACK}`,
      `cafile ${ca.caFile}`,
      `crlfile ${files.crl}`,
      `certfile ${files.cert}`,
      `keyfile ${files.key}`,
      "require_certificate true",
      "",
    ].join("\n");
  }

  return {
    kind: "mosquitto",
    url,
    serviceClient,
    async settled() {
      await running;
    },
    async stop() {
      // No waiting for a reload in flight: stopping must not depend on mosquitto answering.
      stopped = true;
      unsubscribe();
      for (const resolve of pendingReloads) resolve();
      pendingReloads = [];
      await probe.endAsync(true).catch(() => {});
      await stopChild(child);
    },
  };
}

const PLUGIN_SOURCE = fileURLToPath(new URL("./mosquitto-client-id.c", import.meta.url));
/** Debian packages the plugin build needs (compiler, mosquitto plugin headers, OpenSSL headers). */
export const PLUGIN_BUILD_PACKAGES = "gcc mosquitto-dev libmosquitto-dev libssl-dev";

/**
 * Builds local/mosquitto-client-id.c once per source version into the temp dir (parallel test workers
 * share it: each compiles to its own name, then renames into place) and returns the shared object's path.
 */
export async function buildClientIdPlugin(): Promise<string> {
  const source = await readFile(PLUGIN_SOURCE);
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), "keel-mosquitto-plugin");
  const out = join(dir, `keel-client-id-${hash}.so`);
  if (
    await access(out).then(
      () => true,
      () => false,
    )
  )
    return out;
  await mkdir(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const args = ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", tmp, PLUGIN_SOURCE, "-lcrypto"];
  const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const cc = spawn(process.env.CC ?? "cc", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    cc.stdout.on("data", (d: Buffer) => (output += d.toString()));
    cc.stderr.on("data", (d: Buffer) => (output += d.toString()));
    cc.once("error", (err) => resolve({ code: null, output: String(err) }));
    cc.once("close", (code) => resolve({ code, output }));
  });
  if (result.code !== 0) {
    await rm(tmp, { force: true });
    throw new LocalServiceError(
      "mosquitto",
      `cannot build the client-id plugin (apt-get install ${PLUGIN_BUILD_PACKAGES})\n${result.output}`,
    );
  }
  await rename(tmp, out);
  return out;
}

function waitForStart(
  child: ChildProcess,
  output: () => string,
  onStarted: (resolve: () => void) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (message: string, cause?: unknown) =>
      reject(new LocalServiceError("mosquitto", `${message}\n${output()}`, { cause }));
    child.once("error", (err) => fail("cannot start (is mosquitto installed?)", err));
    // A port taken between freePort() and mosquitto's bind shows up here as an exit with "Address in use".
    child.once("exit", (code, signal) => fail(`exited during start (code ${code}, signal ${signal})`));
    onStarted(() => {
      child.removeAllListeners("exit");
      child.removeAllListeners("error");
      // Later failures surface as refused connections; keep them from crashing the process.
      child.on("error", () => {});
      resolve();
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    // SIGTERM lets mosquitto save its persistence file before exiting.
    child.kill("SIGTERM");
  });
}

async function writeAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, path);
}
