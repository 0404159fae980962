/** Persistence of the stand-in: what it refuses to load, so a bad state file never starts a half-empty cloud. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, test } from "vitest";
import { createManualClock } from "../../../local/clock.ts";
import { LOCAL_ACCOUNT, LOCAL_CREDENTIALS, LOCAL_REGION } from "../../../local/contracts.ts";
import { IotStoreError } from "../../../local/iot/errors.ts";
import { createIotStandIn } from "../../../local/iot/standin.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "keel-iot-store-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const options = () => ({
  dataDir: dir,
  region: LOCAL_REGION,
  account: LOCAL_ACCOUNT,
  clock: createManualClock(),
  ca: {
    caCertPem: "",
    caFile: join(dir, "ca.pem"),
    issueDeviceCertificate: () => Promise.reject(new Error("not used")),
    issueCertificateForKey: () => Promise.reject(new Error("not used")),
  },
  s3: { endpoint: "http://127.0.0.1:1", region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS },
});

test("a state file that is not JSON is refused with an IotStoreError naming the file", async () => {
  await writeFile(join(dir, "iot-state.json"), "{truncated");
  const err = await createIotStandIn(options()).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(IotStoreError);
  expect((err as IotStoreError).message).toMatch(/iot-state\.json.*not valid UTF-8 JSON/);
});

test("a state file that does not match the schema is refused with the field path", async () => {
  await writeFile(
    join(dir, "iot-state.json"),
    JSON.stringify({
      version: 1,
      things: [{ thingName: 5 }],
      groups: [],
      certificates: [],
      jobs: [],
      executions: [],
    }),
  );
  const err = await createIotStandIn(options()).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(IotStoreError);
  expect((err as IotStoreError).message).toMatch(/things\[0\]\.thingName/);
});
