/**
 * Fleet provisioning by claim end to end on the local cloud, on aedes and mosquitto: the operator sets the
 * fleet's claim rule and makes its claim certificate with the real CLI (`keel fleet claim-rule|claim-cert`
 * through the rollout API); `keel-agent enroll-claim` (device/enrol/claim.ts) runs with the real
 * pre-provisioning hook Lambda: the node makes its key, sends only a CSR, gets its thing provisioned
 * into its fleet's bucket group, writes its certificate and agent.json, then connects as its own thing and
 * hears a job. A refused name changes nothing; a second run (or one after a crash) reuses key and certificate.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CreateJobCommand, DescribeThingCommand, IoTClient } from "@aws-sdk/client-iot";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketGroupName, bucketOf } from "../../core/waves.ts";
import { loadAgentConfig } from "../../device/config.ts";
import { enrolByClaim } from "../../device/enrol/claim.ts";
import { silentLogger } from "../../device/logger.ts";
import { createManualClock } from "../../local/clock.ts";
import { startLocalCloud } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "../../local/contracts.ts";
import { type FunctionsWiring, startFunctionsWiring } from "../../local/functions-wiring.ts";
import { keel } from "../cli/helpers.ts";
import { tempDir } from "../local/helpers.ts";

const FLEET = "plant";
const BASE_CONFIG = {
  hardware: "rpi4",
  slots: { A: "slot-a.img", B: "slot-b.img" },
  bootloader: { type: "grub", envFile: "grubenv" },
};

describe.each(["aedes", "mosquitto"] as const)("keel-agent enroll-claim on %s", (broker) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cloud: LocalCloud;
  let wiring: FunctionsWiring;
  let iot: IoTClient;
  const files = { ca: "", claimCert: "", claimKey: "" };

  /** A fresh node directory holding the factory agent.json (no thingName, no mqtt). */
  async function node(name: string): Promise<string> {
    const config = join(dir.path, `${name}.json`);
    await writeFile(config, JSON.stringify(BASE_CONFIG));
    return config;
  }
  const enrol = (config: string, thingName: string) =>
    enrolByClaim({
      config,
      fleet: FLEET,
      thingName,
      endpoint: cloud.info.mqtt,
      ...files,
      identityDir: join(dir.path, `${thingName}-identity`),
      timeoutMs: 10_000,
      log: silentLogger,
    });

  beforeAll(async () => {
    dir = await tempDir(`enrol-claim-${broker}`);
    cloud = await startLocalCloud({ dir: join(dir.path, ".keel"), broker, clock: createManualClock() });
    wiring = await startFunctionsWiring(cloud, {
      logLevel: "silent",
      infoFile: join(dir.path, ".keel", "local.json"),
    });
    iot = new IoTClient({
      region: cloud.info.region,
      endpoint: cloud.info.iot,
      credentials: LOCAL_CREDENTIALS,
    });
    // The operator's side, through the real CLI and rollout API: the fleet's rule, then its claim certificate.
    const rule = await keel(dir.path, "fleet", "claim-rule", FLEET, "--pattern", "plant-[0-9]+", "--local");
    expect(rule.stderr).toBe("");
    const made = await keel(dir.path, "fleet", "claim-cert", FLEET, "--out", "factory", "--local");
    expect(made.stdout).toContain("keel-agent enroll-claim");
    files.ca = join(dir.path, "factory", "ca.pem");
    files.claimCert = join(dir.path, "factory", "claim.pem");
    files.claimKey = join(dir.path, "factory", "claim.key");
    // mosquitto reloads its policy after a registry change; a factory image is made long after this.
    await cloud.broker.settled?.();
  }, 60_000);

  afterAll(async () => {
    iot?.destroy();
    await wiring?.stop();
    await cloud?.stop();
    await dir?.remove();
  });

  it("enrols: key made on the node, thing in its bucket group, agent.json completed; the node then takes a job", async () => {
    const config = await node("n1");
    expect(await enrol(config, "plant-1")).toEqual({ thingName: "plant-1", already: false });
    const agent = await loadAgentConfig(config, {});
    expect(agent.thingName).toBe("plant-1");
    const group = bucketGroupName(FLEET, bucketOf("plant-1"));
    const thing = await iot.send(new DescribeThingCommand({ thingName: "plant-1" }));
    expect(thing.attributes).toEqual({ fleet: FLEET });

    const mqttConfig = agent.mqtt;
    if (!mqttConfig) throw new Error("agent.json has no mqtt after enrolment");
    await cloud.broker.settled?.();
    const device = await mqtt.connectAsync(mqttConfig.endpoint, {
      clientId: "plant-1",
      ca: await readFile(mqttConfig.ca, "utf8"),
      cert: await readFile(mqttConfig.cert, "utf8"),
      key: await readFile(mqttConfig.key, "utf8"),
      reconnectPeriod: 0,
    });
    try {
      await device.subscribeAsync("$aws/things/plant-1/jobs/notify-next", { qos: 1 });
      const heard = new Promise<string>((resolve) =>
        device.once("message", (_t, p) => resolve(p.toString())),
      );
      await iot.send(
        new CreateJobCommand({
          jobId: `enrolled-${broker}`,
          targets: [`arn:aws:iot:${cloud.info.region}:${cloud.info.account}:thinggroup/${group}`],
          document: JSON.stringify({ op: "hello" }),
        }),
      );
      expect(JSON.parse(await heard)).toMatchObject({ execution: { jobId: `enrolled-${broker}` } });
    } finally {
      await device.endAsync(true);
    }
  });

  it("finishes after a crash between the certificate and agent.json, without a new certificate", async () => {
    const config = await node("n2");
    await enrol(config, "plant-2");
    const cert = await readFile(join(dir.path, "plant-2-identity", "cert.pem"), "utf8");
    // The crash: the certificate is on disk, agent.json is still the factory one.
    await writeFile(config, JSON.stringify(BASE_CONFIG));
    expect(await enrol(config, "plant-2")).toEqual({ thingName: "plant-2", already: true });
    expect((await loadAgentConfig(config, {})).thingName).toBe("plant-2");
    expect(await readFile(join(dir.path, "plant-2-identity", "cert.pem"), "utf8")).toBe(cert);
  });

  it("is refused for a name the fleet's claim rule does not allow, and agent.json stays as it was", async () => {
    const config = await node("n3");
    const before = await readFile(config, "utf8");
    await expect(enrol(config, "intruder-3")).rejects.toThrow(/rejected: AccessDenied \(403\)/);
    expect(await readFile(config, "utf8")).toBe(before);
    await expect(iot.send(new DescribeThingCommand({ thingName: "intruder-3" }))).rejects.toThrow();
  });
});
