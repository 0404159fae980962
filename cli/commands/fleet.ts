/**
 * `keel fleet register|status`: provision a device (thing, certificate, bucket group) and write what the
 * node needs — certificate, key, CA and an agent.json snippet — into a folder; summarize a fleet.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { describeError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import {
  type FleetStatus,
  RegisteredThingSchema,
  RegisteredThingWithKeySchema,
} from "../../functions/rollout-api/contract.ts";
import {
  ApiClient,
  addTargetOptions,
  type CloudTarget,
  getFleetStatus,
  resolveTarget,
  type TargetFlags,
} from "../api-client.ts";
import { CliFileError } from "../errors.ts";
import { exists, writeNewFile } from "../inputs.ts";
import { registerEnrolmentCommands } from "./enrolment.ts";
import { registerClaimCommands } from "./fleet-claim.ts";
import { registerSetTarget, renderTarget } from "./fleet-target.ts";
import { register as registerWindows } from "./fleet-windows.ts";

const DEVICE_FILES = ["cert.pem", "key.pem", "ca.pem", "agent.snippet.json"] as const;

/** AWS IoT's server certificates chain to Amazon Root CA 1. */
const AMAZON_ROOT_CA_URL = "https://www.amazontrust.com/repository/AmazonRootCA1.pem";

export async function caPem(target: CloudTarget): Promise<string> {
  if (target.local) {
    try {
      return await readFile(target.local.caFile, "utf8");
    } catch (err) {
      throw new CliFileError(target.local.caFile, `cannot read the local CA (${describeError(err)})`, {
        cause: err,
      });
    }
  }
  const res = await fetch(AMAZON_ROOT_CA_URL).catch((err: unknown) => {
    throw new CliFileError(AMAZON_ROOT_CA_URL, `cannot download Amazon Root CA 1 (${describeError(err)})`, {
      cause: err,
    });
  });
  if (!res.ok) throw new CliFileError(AMAZON_ROOT_CA_URL, `download failed: HTTP ${res.status}`);
  return res.text();
}

/** mqtts://host:port for agent.json: the local broker as is; AWS IoT's ATS endpoint on 8883. */
export function mqttEndpoint(target: Pick<CloudTarget, "local">, endpoint: string | undefined): string {
  if (target.local) return target.local.mqtt;
  if (!endpoint) throw new CliFileError("(API answer)", "the registration returned no IoT endpoint");
  return `mqtts://${endpoint}${/:\d+$/.test(endpoint) ? "" : ":8883"}`;
}

export function renderFleet(s: FleetStatus): string {
  const lines = [
    `fleet ${s.fleet}: ${s.devices ?? s.things.length} device(s)${s.highestVersion ? `, reached ${s.highestVersion}` : ""}`,
  ];
  lines.push(...renderTarget(s.target));
  if (s.activeRollout)
    lines.push(
      `active rollout ${s.activeRollout.id} (${s.activeRollout.status}, release ${s.activeRollout.release})`,
    );
  lines.push("", "VERSION     DEVICES");
  for (const [v, n] of Object.entries(s.versions ?? {}).sort()) lines.push(`${v.padEnd(10)}  ${n}`);
  if (s.things.length > 0) {
    const width = Math.max(6, ...s.things.map((t) => t.thingName.length));
    lines.push("", `${"DEVICE".padEnd(width)}  BUCKET  VERSION     LAST STATUS`);
    for (const t of s.things) {
      lines.push(
        `${t.thingName.padEnd(width)}  ${String(t.bucket).padStart(6)}  ${(t.version ?? "-").padEnd(10)}  ${t.lastStatus ?? "-"}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** A CSR file, read as text; the API checks its content (a bad one is a 400 that changes nothing). */
async function readCsrFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new CliFileError(path, `cannot read the CSR (${describeError(err)})`, { cause: err });
  }
}

export function register(program: Command): void {
  const fleet = program.command("fleet").description("register devices and see what each fleet runs");

  addTargetOptions(
    fleet
      .command("register")
      .description(
        "create the thing, its certificate and bucket group; write cert, key (unless --csr), CA and an agent.json snippet",
      )
      .argument("<thing>", "thing name (also the MQTT client id)")
      .requiredOption("--fleet <name>", "fleet to join")
      .requiredOption("--out <dir>", "folder to write the device's files into")
      .option(
        "--csr <file>",
        "a CSR made on the node (keel-agent enroll --csr-only, or openssl): no private key is made in the cloud",
      )
      .option(
        "--version <semver>",
        "version the node was installed with (shown by fleet status until it reports)",
      ),
  ).action(
    async (
      thing: string,
      flags: TargetFlags & { fleet: string; out: string; version?: string; csr?: string },
    ) => {
      const target = await resolveTarget(flags);
      const api = new ApiClient(target);
      const ca = await caPem(target);
      const csr = flags.csr === undefined ? undefined : await readCsrFile(flags.csr);
      await mkdir(flags.out, { recursive: true });
      // Check before registering: the certificate (and a cloud-made key) exist only in the API's answer.
      const files = DEVICE_FILES.filter((f) => csr === undefined || f !== "key.pem");
      for (const f of files) {
        const path = join(flags.out, f);
        if (await exists(path))
          throw new CliFileError(path, "already exists; refusing to overwrite it (use another --out)");
      }
      const body = {
        thingName: thing,
        ...(flags.version ? { version: flags.version } : {}),
        ...(csr !== undefined ? { csr } : {}),
      };
      const answer = await api.post(`/fleets/${encodeURIComponent(flags.fleet)}/things`, body);
      const t = parseWith(
        csr === undefined ? RegisteredThingWithKeySchema : RegisteredThingSchema,
        answer,
        "API answer",
      );
      const snippet = {
        thingName: t.thingName,
        // With --csr, key.pem is the key the node made with its CSR; it is already on the node.
        mqtt: { endpoint: mqttEndpoint(target, t.endpoint), cert: "cert.pem", key: "key.pem", ca: "ca.pem" },
      };
      await writeNewFile(join(flags.out, "cert.pem"), t.certificatePem, 0o644);
      if (csr === undefined) await writeNewFile(join(flags.out, "key.pem"), t.privateKey ?? "", 0o600);
      await writeNewFile(join(flags.out, "ca.pem"), ca, 0o644);
      await writeNewFile(
        join(flags.out, "agent.snippet.json"),
        `${JSON.stringify(snippet, null, 2)}\n`,
        0o644,
      );
      process.stdout.write(
        `registered ${t.thingName} in fleet ${t.fleet} (bucket group ${t.group}); wrote ${files.join(", ")} to ${flags.out}` +
          `${csr === undefined ? "" : " (no private key: the node keeps the one its CSR was made with, as key.pem)"}\n`,
      );
    },
  );

  registerClaimCommands(fleet);

  registerSetTarget(fleet);

  addTargetOptions(
    fleet
      .command("status")
      .description("devices per version, and the fleet's active rollout")
      .argument("<fleet>", "fleet name"),
  ).action(async (name: string, flags: TargetFlags) => {
    const api = new ApiClient(await resolveTarget(flags));
    process.stdout.write(renderFleet(await getFleetStatus(api, name)));
  });

  registerWindows(fleet);
  registerEnrolmentCommands(fleet);
}
