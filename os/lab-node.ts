/**
 * A KeelOS node of a local cloud (`keel dev --vm`): the files its persistence partition needs to join
 * that cloud — agent.json, the device certificate and key from registration, the cloud's CA and trust
 * root — and the loopback relay that lets the guest reach the host's 127.0.0.1 services as 10.0.2.2
 * through QEMU user networking (docs/os-image.md#keel-dev---vm-a-real-node-in-the-local-fleet).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OsInputError } from "./errors.ts";
import { NODE_LAYOUT } from "./rootfs.ts";

export { QEMU_HARDWARE } from "./rootfs.ts";

export interface LabNode {
  thing: string;
  certificatePem: string;
  privateKey: string;
  /** PEM file of the CA that signed the broker's certificate. */
  caFile: string;
  /** The cloud's trust root (root.json) its releases are signed under. */
  rootFile: string;
  /** mqtts://127.0.0.1:PORT */
  mqtt: string;
  /** http://127.0.0.1:PORT: the presigned S3 URLs point here. */
  s3: string;
  /** The version and release counter in slot A at the factory. */
  factory: { version: string; releaseCounter: number };
  /** A root shell on the serial console (lab machines only). */
  serialShell?: boolean;
  /** Failed /healthz checks (3 s apart) before a trial slot is given up; default 20. */
  healthRetries?: number;
}

/** The loopback port of a local endpoint URL; anything but a 127.0.0.1 URL with a port is refused. */
export function loopbackPort(url: string): number {
  let u: URL;
  try {
    u = new URL(url.replace(/^mqtts?:/, "http:"));
  } catch (err) {
    throw new OsInputError(`${url} is not a URL`, { cause: err });
  }
  const port = Number(u.port);
  if (u.hostname !== "127.0.0.1" || !Number.isInteger(port) || port < 1) {
    throw new OsInputError(`${url} is not a 127.0.0.1 endpoint with a port; a lab node relays only those`);
  }
  return port;
}

/** agent.json of a lab node: every path where the image puts it, the broker of the local cloud. */
export function labAgentConfig(node: LabNode): Record<string, unknown> {
  return {
    thingName: node.thing,
    ...NODE_LAYOUT,
    trustRoot: "/etc/keel/root.json",
    mqtt: {
      endpoint: node.mqtt,
      cert: "/etc/keel/device.pem.crt",
      key: "/etc/keel/device.pem.key",
      ca: "/etc/keel/ca.pem",
    },
    health: [{ type: "http", retries: node.healthRetries ?? 20, intervalSeconds: 3 }],
    reboot: { command: "systemctl reboot" },
    factory: node.factory,
  };
}

/**
 * Writes the node's /etc/keel files into `dir`; returns agent.json and the other files, as
 * `keel os build --agent-config … --config-file …` takes them.
 */
export async function writeLabNodeConfig(
  dir: string,
  node: LabNode,
): Promise<{ agentConfig: string; configFiles: string[] }> {
  const relay = { host: "10.0.2.2", ports: [loopbackPort(node.mqtt), loopbackPort(node.s3)] };
  const files: Record<string, string> = {
    "device.pem.crt": node.certificatePem,
    "device.pem.key": node.privateKey,
    "ca.pem": await readFile(node.caFile, "utf8"),
    "root.json": await readFile(node.rootFile, "utf8"),
    "loopback-forward": JSON.stringify(relay),
    ...(node.serialShell ? { "serial-shell": "lab node: a root shell on ttyS0\n" } : {}),
  };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body, { mode: 0o600 });
  const agentConfig = join(dir, "agent.json");
  await writeFile(agentConfig, `${JSON.stringify(labAgentConfig(node), null, 2)}\n`, { mode: 0o600 });
  return { agentConfig, configFiles: Object.keys(files).map((f) => join(dir, f)) };
}
