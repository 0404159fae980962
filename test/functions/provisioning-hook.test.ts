/**
 * The pre-provisioning hook Lambda against the local cloud (dynalite + the IoT stand-in): it allows only
 * thing names its fleet's claim rule lists, answers the thing's bucket group (and creates it), records the
 * thing, audits every decision, and refuses anything malformed or foreign.
 */
import { DescribeThingGroupCommand } from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketGroupName, bucketOf } from "../../core/waves.ts";
import { createClients, destroyClients } from "../../functions/clients.ts";
import { parseEnv } from "../../functions/env.ts";
import { createProvisioningHookHandler } from "../../functions/provisioning-hook/app.ts";
import { ClaimStore } from "../../functions/store-claim.ts";
import { startTestCloud, type TestCloud } from "./cloud.ts";
import { envFor } from "./fixtures.ts";

const ID = "a".repeat(64);
const CLAIM = "c".repeat(64);

describe("the pre-provisioning hook", () => {
  let cloud: TestCloud;
  let hook: ReturnType<typeof createProvisioningHookHandler>;
  let claims: ClaimStore;
  let clients: ReturnType<typeof createClients>;
  const templateArn = (name: string) => `arn:aws:iot:us-east-1:000000000000:provisioningtemplate/${name}`;
  const event = (thingName: unknown, extra: Record<string, unknown> = {}) => ({
    claimCertificateId: CLAIM,
    certificateId: ID,
    certificatePem: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
    templateArn: templateArn("keel-edge"),
    clientId: "factory-1",
    parameters: {
      ...(thingName === undefined ? {} : { ThingName: thingName }),
      "AWS::IoT::Certificate::Id": ID,
    },
    ...extra,
  });
  /** Audit entries share the manual clock's instant, so they are found by content, not by order. */
  const audited = async (action: string, reason?: RegExp) =>
    (await cloud.store.listAudit()).filter(
      (a) => a.action === action && (!reason || reason.test(String(a.detail?.reason))),
    );

  beforeAll(async () => {
    cloud = await startTestCloud();
    const env = parseEnv(envFor(cloud.info, { FLEETS: "edge,core" }));
    clients = createClients(env);
    hook = createProvisioningHookHandler(env, { clients, now: () => cloud.clock.now() });
    claims = new ClaimStore(clients.ddb, cloud.info.table);
    const rule = { updatedAt: "2026-01-01T00:00:00Z", updatedBy: "test" };
    await claims.putClaimRule("edge", {
      ...rule,
      thingNamePattern: "edge-[0-9]{3}",
      thingNames: ["edge-special"],
    });
    await claims.putClaimRule("core", { ...rule, thingNames: ["core-1"] });
  }, 60_000);

  afterAll(async () => {
    destroyClients(clients);
    await cloud?.stop();
  });

  it("allows a name the pattern matches: answers its bucket group (created), records and audits the thing", async () => {
    const group = bucketGroupName("edge", bucketOf("edge-042"));
    expect(await hook(event("edge-042"))).toEqual({
      allowProvisioning: true,
      parameterOverrides: { BucketGroup: group },
    });
    await cloud.iotClient.send(new DescribeThingGroupCommand({ thingGroupName: group }));
    expect(await cloud.store.getThing("edge-042")).toMatchObject({ fleet: "edge", group });
    expect(await audited("thing.claim-enrol")).toEqual([
      expect.objectContaining({ target: "edge-042", who: `claim:${CLAIM}`, fleets: ["edge"] }),
    ]);
  });

  it("allows a name the list holds", async () => {
    expect((await hook(event("edge-special"))).allowProvisioning).toBe(true);
  });

  it.each<[string, unknown, RegExp]>([
    ["a name the rule does not allow", event("edge-4200"), /not allowed by the fleet's claim rule/],
    [
      "a fleet without a claim rule",
      event("x-1", { templateArn: templateArn("keel-nofleet") }),
      /not one of this deployment's fleets/,
    ],
    [
      "a template that is not Keel's",
      event("edge-001", { templateArn: templateArn("other") }),
      /not a Keel fleet template/,
    ],
    ["no ThingName", event(undefined), /ThingName is missing/],
    ["an invalid thing name", event("edge 001"), /is not a valid thing name/],
  ])("refuses %s, and audits why", async (_what, e, reason) => {
    expect(await hook(e)).toEqual({ allowProvisioning: false });
    expect(await audited("thing.claim-refused", reason)).toHaveLength(1);
  });

  it("refuses a thing registered in another fleet", async () => {
    expect((await hook(event("core-1", { templateArn: templateArn("keel-core") }))).allowProvisioning).toBe(
      true,
    );
    await claims.putClaimRule("edge", { thingNames: ["core-1"], updatedAt: "x", updatedBy: "test" });
    expect(await hook(event("core-1"))).toEqual({ allowProvisioning: false });
    expect(await audited("thing.claim-refused", /registered in fleet core/)).toHaveLength(1);
  });

  it.each<[string, Record<string, unknown>]>([
    ["a claim certificate id that is not one", { claimCertificateId: "nope" }],
    ["a certificate id that is not one", { certificateId: 7 }],
    ["parameters that are not strings", { parameters: { ThingName: 1 } }],
    ["no template ARN", { templateArn: undefined }],
  ])("refuses an event with %s", async (_what, patch) => {
    expect(await hook({ ...event("edge-001"), ...patch })).toEqual({ allowProvisioning: false });
  });

  it("refuses when the fleet has no claim rule at all", async () => {
    const env = parseEnv(envFor(cloud.info));
    const anyFleet = createProvisioningHookHandler(env, { clients, now: () => cloud.clock.now() });
    expect(await anyFleet(event("f-1", { templateArn: templateArn("keel-unruled") }))).toEqual({
      allowProvisioning: false,
    });
    expect(await audited("thing.claim-refused", /no claim rule/)).toHaveLength(1);
  });
});
