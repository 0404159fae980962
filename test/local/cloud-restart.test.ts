/**
 * Restart mid-job on the real local cloud (issue 3, "Include restarts"): a device over mutual TLS starts a
 * job, the whole local cloud stops and starts again on the same directory, and the device — reconnecting on
 * its own to the same address — finishes the job. Nothing is lost on aedes or on mosquitto.
 */
import {
  AttachThingPrincipalCommand,
  CreateJobCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  IoTClient,
} from "@aws-sdk/client-iot";
import mqtt from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { startLocalCloud } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS, type LocalCloud } from "../../local/contracts.ts";
import { tempDir } from "./helpers.ts";
import { Device } from "./iot/helpers.ts";

describe.each(["aedes", "mosquitto"] as const)("restart mid-job with %s", (broker) => {
  let cloud: LocalCloud | undefined;
  let device: Device | undefined;
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  afterAll(async () => {
    await device?.client.endAsync(true);
    await cloud?.stop();
    await dir?.remove();
  });

  it("the device reconnects after the restart and finishes the job; thing, certificate, job and execution survive", async () => {
    dir = await tempDir(`restart-${broker}`);
    cloud = await startLocalCloud({ dir: dir.path, broker });
    const before = cloud.info;
    const iot = new IoTClient({
      region: before.region,
      endpoint: before.iot,
      credentials: LOCAL_CREDENTIALS,
    });
    await iot.send(new CreateThingCommand({ thingName: "rack-7" }));
    const keys = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: "rack-7", principal: keys.certificateArn }));
    await cloud.broker.settled?.();
    const client = await mqtt.connectAsync(before.mqtt, {
      clientId: "rack-7",
      ca: cloud.ca.caCertPem,
      cert: keys.certificatePem,
      key: keys.keyPair?.PrivateKey,
      reconnectPeriod: 100,
    });
    await client.subscribeAsync("$aws/things/rack-7/jobs/#", { qos: 1 });
    device = new Device("rack-7", client);
    await iot.send(
      new CreateJobCommand({
        jobId: "upgrade-1",
        targets: [`arn:aws:iot:${before.region}:${before.account}:thing/rack-7`],
        document: JSON.stringify({ version: "1.2.0" }),
      }),
    );
    const started = await device.request("start-next", { statusDetails: { phase: "downloading" } });
    expect(started.payload.execution).toMatchObject({ jobId: "upgrade-1", status: "IN_PROGRESS" });

    const reconnected = new Promise<void>((resolve) => client.once("connect", () => resolve()));
    await cloud.stop();
    cloud = await startLocalCloud({ dir: dir.path, broker });
    expect(cloud.info).toEqual(before);
    await reconnected;

    const done = await device.request("upgrade-1/update", {
      status: "SUCCEEDED",
      expectedVersion: 2,
      statusDetails: { phase: "committed" },
    });
    expect(done.topic).toBe("$aws/things/rack-7/jobs/upgrade-1/update/accepted");
    const execution = await iot.send(
      new DescribeJobExecutionCommand({ jobId: "upgrade-1", thingName: "rack-7" }),
    );
    expect(execution.execution).toMatchObject({
      status: "SUCCEEDED",
      statusDetails: { detailsMap: { phase: "committed" } },
    });
    const job = await iot.send(new DescribeJobCommand({ jobId: "upgrade-1" }));
    expect(job.job?.status).toBe("COMPLETED");
    expect(job.job?.jobProcessDetails?.numberOfSucceededThings).toBe(1);
    iot.destroy();
  });
});
