/**
 * Least privilege, checked on the synthesized template: the presign role reads only `releases/*`, the
 * device policy never grants `*` and names only the connecting thing, and each function's role allows
 * exactly the IoT calls its bundled code makes (and at least its S3 and DynamoDB calls).
 */
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { THING_NAME_VARIABLE } from "../../infra/constructs/device-access.ts";
import { FUNCTION_ENTRIES } from "../../infra/keel-stack.ts";
import { iamActionsFor, type SdkCall, sdkCallsOf } from "./functions-scan.ts";
import { logicalIdOf, propertiesOf, type Synthesized, synthKeel } from "./synth.ts";
import {
  actionGranted,
  actionsOf,
  flatten,
  resourcesOf,
  roleStatements,
  type Statement,
} from "./template-helpers.ts";

let keel: Synthesized;
let calls: Record<keyof typeof FUNCTION_ENTRIES, SdkCall[]>;

const logicalId = (construct: IConstruct) => logicalIdOf(keel.stack, construct);

beforeAll(async () => {
  // GIVEN the default app and the AWS calls each bundled handler makes
  keel = synthKeel();
  calls = {
    registerRelease: await sdkCallsOf(FUNCTION_ENTRIES.registerRelease),
    rolloutApi: await sdkCallsOf(FUNCTION_ENTRIES.rolloutApi),
    advanceRollout: await sdkCallsOf(FUNCTION_ENTRIES.advanceRollout),
    provisioningHook: await sdkCallsOf(FUNCTION_ENTRIES.provisioningHook),
  };
});

describe("presign role", () => {
  it("can be assumed only by AWS IoT, and only on behalf of this account (confused deputy)", () => {
    const role = keel.json.Resources[logicalId(keel.stack.deviceAccess.presignRole)];
    expect(role?.Properties?.AssumeRolePolicyDocument).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Action: "sts:AssumeRole",
          Effect: "Allow",
          Principal: { Service: "iot.amazonaws.com" },
          Condition: { StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } } },
        },
      ],
    });
    expect(role?.Properties).not.toHaveProperty("ManagedPolicyArns");
  });

  it("allows s3:GetObject on releases/* and trust/root.*.json of the release bucket and nothing else", () => {
    // WHEN every statement attached to the role is collected
    const statements = roleStatements(keel.json, logicalId(keel.stack.deviceAccess.presignRole));
    // THEN there is exactly one, for the release objects
    expect(statements).toEqual([
      {
        Effect: "Allow",
        Action: "s3:GetObject",
        Resource: [
          { "Fn::Join": ["", [{ "Fn::GetAtt": [logicalId(keel.stack.bucket), "Arn"] }, "/releases/*"]] },
          {
            "Fn::Join": ["", [{ "Fn::GetAtt": [logicalId(keel.stack.bucket), "Arn"] }, "/trust/root.*.json"]],
          },
        ],
      },
    ]);
  });
});

describe("device IoT policy", () => {
  const statements = () =>
    (
      propertiesOf(keel.json, logicalId(keel.stack.deviceAccess.devicePolicy)).PolicyDocument as {
        Statement: Statement[];
      }
    ).Statement;
  const iotArn = (rest: string) => `arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:${rest}`;

  it("never grants a wildcard action or a wildcard resource", () => {
    for (const s of statements()) {
      expect(s.Effect).toBe("Allow");
      for (const action of actionsOf(s)) expect(action).not.toContain("*");
      for (const resource of resourcesOf(s)) {
        expect(resource).not.toBe("*");
        // The only `*` is below the thing's own jobs topic tree.
        expect(resource.replace(`/${THING_NAME_VARIABLE}/jobs/*`, "")).not.toContain("*");
        expect(resource).toContain(THING_NAME_VARIABLE);
      }
    }
  });

  it("lets a thing connect only as itself, with a certificate attached to it", () => {
    const connect = statements().filter((s) => actionsOf(s).includes("iot:Connect"));
    expect(connect).toHaveLength(1);
    expect(resourcesOf(connect[0] as Statement)).toEqual([iotArn(`client/${THING_NAME_VARIABLE}`)]);
    expect(connect[0]?.Condition).toEqual({ Bool: { "iot:Connection.Thing.IsAttached": "true" } });
  });

  it("allows publish/receive/subscribe only on $aws/things/<own name>/jobs/*", () => {
    const byAction = new Map<string, string[]>();
    for (const s of statements()) for (const a of actionsOf(s)) byAction.set(a, resourcesOf(s));
    expect([...byAction.keys()].sort()).toEqual([
      "iot:Connect",
      "iot:Publish",
      "iot:Receive",
      "iot:Subscribe",
    ]);
    const jobs = `$aws/things/${THING_NAME_VARIABLE}/jobs/*`;
    expect(byAction.get("iot:Publish")).toEqual([iotArn(`topic/${jobs}`)]);
    expect(byAction.get("iot:Receive")).toEqual([iotArn(`topic/${jobs}`)]);
    expect(byAction.get("iot:Subscribe")).toEqual([iotArn(`topicfilter/${jobs}`)]);
  });
});

describe("function roles", () => {
  const fns = () =>
    ({
      registerRelease: keel.stack.registerRelease,
      rolloutApi: keel.stack.rolloutApi,
      advanceRollout: keel.stack.advanceRollout,
      provisioningHook: keel.stack.fleetProvisioning.hook,
    }) as const;
  const granted = (name: keyof ReturnType<typeof fns>) =>
    roleStatements(keel.json, logicalId(fns()[name].role)).filter((s) => s.Effect === "Allow");

  it.each(Object.keys(FUNCTION_ENTRIES) as Array<keyof typeof FUNCTION_ENTRIES>)(
    "%s: allows every AWS call its bundled code makes",
    (name) => {
      const actions = granted(name).flatMap(actionsOf);
      const missing = calls[name]
        .flatMap(iamActionsFor)
        .filter((a, i, all) => all.indexOf(a) === i && !actionGranted(actions, a));
      expect(missing).toEqual([]);
    },
  );

  it.each(Object.keys(FUNCTION_ENTRIES) as Array<keyof typeof FUNCTION_ENTRIES>)(
    "%s: allows exactly the IoT actions its bundled code calls",
    (name) => {
      const grantedIot = new Set(
        granted(name)
          .flatMap(actionsOf)
          .filter((a) => a.startsWith("iot:")),
      );
      const usedIot = new Set(
        calls[name].filter((c) => c.client === "@aws-sdk/client-iot").flatMap(iamActionsFor),
      );
      expect([...grantedIot].sort()).toEqual([...usedIot].sort());
    },
  );

  it("never allows a service-wide action, and `*` resources only for IoT actions that have no resource type", () => {
    const noResourceType = new Set([
      "iot:CreateCertificateFromCsr",
      "iot:CreateKeysAndCertificate",
      "iot:DescribeEndpoint",
      "iot:ListThingGroups",
    ]);
    for (const f of Object.values(fns())) {
      for (const s of roleStatements(keel.json, logicalId(f.role))) {
        for (const a of actionsOf(s)) expect(a).not.toMatch(/(^\*$|:\*$)/);
        if (resourcesOf(s).includes("*")) {
          expect(actionsOf(s).every((a) => noResourceType.has(a))).toBe(true);
        }
      }
    }
  });

  it("scopes S3 access to the release bucket's releases/ and trust/ keys", () => {
    const bucketArn = `<${logicalId(keel.stack.bucket)}.Arn>`;
    for (const f of Object.values(fns())) {
      for (const s of roleStatements(keel.json, logicalId(f.role))) {
        if (!actionsOf(s).some((a) => a.startsWith("s3:"))) continue;
        for (const r of resourcesOf(s)) {
          expect([bucketArn, `${bucketArn}/releases/*`, `${bucketArn}/trust/*`]).toContain(r);
        }
      }
    }
  });

  it("lets only the functions that create jobs pass the presign role to IoT (and the API the provisioning role)", () => {
    const passers = Object.entries(fns())
      .filter(([, f]) =>
        roleStatements(keel.json, logicalId(f.role)).some((s) => actionsOf(s).includes("iam:PassRole")),
      )
      .map(([name]) => name)
      .sort();
    expect(passers).toEqual(["advanceRollout", "rolloutApi"]);
    const presign = flatten({ "Fn::GetAtt": [logicalId(keel.stack.deviceAccess.presignRole), "Arn"] });
    const provisioning = flatten({
      "Fn::GetAtt": [logicalId(keel.stack.fleetProvisioning.provisioningRole), "Arn"],
    });
    const passed = (name: "rolloutApi" | "advanceRollout") =>
      granted(name)
        .filter((s) => actionsOf(s).includes("iam:PassRole"))
        .flatMap(resourcesOf)
        .sort();
    expect(passed("advanceRollout")).toEqual([presign]);
    expect(passed("rolloutApi")).toEqual([presign, provisioning].sort());
  });
});
