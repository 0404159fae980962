/**
 * `keel dev --services-only` as an operator runs it: the real CLI in a child process writes local.json,
 * serves S3 to the SDK, and on SIGTERM stops everything, removes local.json and exits 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { access } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DescribeEndpointCommand, IoTClient } from "@aws-sdk/client-iot";
import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterEach, expect, it } from "vitest";
import { readLocalCloudInfo } from "../../local/cloud.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { tempDir } from "../local/helpers.ts";

const KEEL = resolve(import.meta.dirname, "../../bin/keel.mjs");
let child: ChildProcess | undefined;
let dir: Awaited<ReturnType<typeof tempDir>> | undefined;

afterEach(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await dir?.remove();
});

it.each(["aedes", "mosquitto"])(
  "keel dev --services-only --broker %s serves until SIGTERM, then stops cleanly and exits 0",
  async (broker) => {
    dir = await tempDir(`dev-cli-${broker}`);
    const keelDir = join(dir.path, ".keel");
    const args = ["dev", "--services-only", "--broker", broker, "--time-scale", "60", "--dir", keelDir];
    const proc = spawn(process.execPath, [KEEL, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    let stdout = "";
    let stderr = "";
    proc.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<number | null>((res) => proc.once("exit", (code) => res(code)));
    // The table is printed after local.json is written: wait for it rather than polling the file.
    await new Promise<void>((res, rej) => {
      proc.stdout?.on("data", (b: Buffer) => {
        stdout += b.toString();
        if (stdout.includes("Press Ctrl-C to stop")) res();
      });
      void exited.then((code) => rej(new Error(`keel dev exited early (${code}): ${stderr}`)));
    });
    const info = await readLocalCloudInfo(keelDir);
    if (!info) throw new Error("no local.json");
    expect(stdout).toContain(info.mqtt);
    expect(stdout).toContain(`(${broker})`);
    expect(stdout).toContain("60x");
    const common = { region: info.region, credentials: LOCAL_CREDENTIALS };
    const s3 = new S3Client({ ...common, endpoint: info.s3, forcePathStyle: true });
    await s3.send(new HeadBucketCommand({ Bucket: info.bucket }));
    s3.destroy();
    const iot = new IoTClient({ ...common, endpoint: info.iot });
    const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
    expect(info.mqtt).toContain(endpoint.endpointAddress ?? "no address");
    iot.destroy();

    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stderr).toContain("local cloud stopped");
    await expect(access(join(keelDir, "local.json"))).rejects.toThrow();
    await access(join(keelDir, "ca", "ca.cert.pem"));
  },
);

it("keel dev refuses a bad --broker with a clear error", async () => {
  const proc = spawn(process.execPath, [KEEL, "dev", "--services-only", "--broker", "rabbit"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const code = await new Promise<number | null>((res) => proc.once("exit", (c) => res(c)));
  expect(code).toBe(1);
  expect(stderr).toMatch(/broker/);
});
