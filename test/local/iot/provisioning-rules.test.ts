/**
 * The pure parts of fleet provisioning in the stand-in: IoT policy evaluation (what a claim certificate may
 * publish and subscribe to) and provisioning template bodies (checked when created, rendered per request).
 */
import { describe, expect, it } from "vitest";
import {
  claimPolicyDocument,
  provisioningTemplateBody,
} from "../../../functions/provisioning-hook/template.ts";
import { parsePolicyDocument, policiesAllow } from "../../../local/iot/iot-policy.ts";
import {
  parseTemplateBody,
  renderTemplate,
  TemplateError,
} from "../../../local/iot/provisioning-template.ts";

const ARN = "arn:aws:iot:us-east-1:000000000000";
const topic = (t: string) => `${ARN}:topic/${t}`;

describe("IoT policy evaluation", () => {
  const claim = parsePolicyDocument(
    claimPolicyDocument({ region: "us-east-1", account: "000000000000" }, "edge"),
    "claim policy",
  );

  it("lets Keel's claim policy publish only the CSR request and its fleet's template", () => {
    expect(policiesAllow([claim], "iot:Publish", topic("$aws/certificates/create-from-csr/json"))).toBe(true);
    expect(
      policiesAllow([claim], "iot:Publish", topic("$aws/provisioning-templates/keel-edge/provision/json")),
    ).toBe(true);
    expect(policiesAllow([claim], "iot:Publish", topic("$aws/certificates/create/json"))).toBe(false);
    expect(
      policiesAllow([claim], "iot:Publish", topic("$aws/provisioning-templates/keel-other/provision/json")),
    ).toBe(false);
    expect(policiesAllow([claim], "iot:Publish", topic("$aws/things/edge-1/jobs/start-next"))).toBe(false);
    expect(
      policiesAllow(
        [claim],
        "iot:Subscribe",
        `${ARN}:topicfilter/$aws/certificates/create-from-csr/json/accepted`,
      ),
    ).toBe(true);
    expect(policiesAllow([claim], "iot:Subscribe", `${ARN}:topicfilter/$aws/things/edge-1/jobs/#`)).toBe(
      false,
    );
  });

  it("lets a Deny win, ignores statements with conditions, and matches actions case-insensitively", () => {
    const allow = parsePolicyDocument(
      JSON.stringify({ Statement: [{ Effect: "Allow", Action: "IOT:*", Resource: `${ARN}:topic/*` }] }),
      "p",
    );
    const deny = parsePolicyDocument(
      JSON.stringify({
        Statement: { Effect: "Deny", Action: "iot:Publish", Resource: `${ARN}:topic/$aws/*` },
      }),
      "p",
    );
    const conditional = parsePolicyDocument(
      JSON.stringify({
        Statement: [
          { Effect: "Allow", Action: "iot:Publish", Resource: "*", Condition: { Bool: { x: "true" } } },
        ],
      }),
      "p",
    );
    expect(policiesAllow([allow], "iot:Publish", topic("a/b"))).toBe(true);
    expect(policiesAllow([allow, deny], "iot:Publish", topic("$aws/x"))).toBe(false);
    expect(policiesAllow([conditional], "iot:Publish", topic("a"))).toBe(false);
  });

  it("refuses a document that is not a policy, naming the field", () => {
    expect(() => parsePolicyDocument("{}", "policyDocument")).toThrow(/Statement/);
    expect(() =>
      parsePolicyDocument(
        JSON.stringify({ Statement: [{ Effect: "Maybe", Action: "a", Resource: "b" }] }),
        "p",
      ),
    ).toThrow(/Effect/);
  });
});

describe("provisioning templates", () => {
  const params = {
    ThingName: "edge-1",
    BucketGroup: "edge-b07",
    "AWS::IoT::Certificate::Id": "c".repeat(64),
  };

  it("renders Keel's template: thing, fleet attribute, bucket group, ACTIVE certificate, device policy", () => {
    expect(
      renderTemplate(parseTemplateBody(provisioningTemplateBody("edge", "keel-device")), params),
    ).toEqual({
      thingName: "edge-1",
      attributes: { fleet: "edge" },
      thingGroups: ["edge-b07"],
      certificateStatus: "ACTIVE",
      policyNames: ["keel-device"],
      deviceConfiguration: { fleet: "edge" },
    });
  });

  it("joins with Fn::Join and falls back to a parameter's Default", () => {
    const body = parseTemplateBody(
      JSON.stringify({
        Parameters: {
          Serial: { Type: "String" },
          Prefix: { Type: "String", Default: "node" },
          "AWS::IoT::Certificate::Id": { Type: "String" },
        },
        Resources: {
          t: {
            Type: "AWS::IoT::Thing",
            Properties: { ThingName: { "Fn::Join": ["-", [{ Ref: "Prefix" }, { Ref: "Serial" }]] } },
          },
          c: {
            Type: "AWS::IoT::Certificate",
            Properties: { CertificateId: { Ref: "AWS::IoT::Certificate::Id" }, Status: "INACTIVE" },
          },
        },
      }),
    );
    const r = renderTemplate(body, { Serial: "42", "AWS::IoT::Certificate::Id": "c" });
    expect([r.thingName, r.certificateStatus]).toEqual(["node-42", "INACTIVE"]);
    expect(() => renderTemplate(body, { "AWS::IoT::Certificate::Id": "c" })).toThrow(
      /parameter Serial has no value/,
    );
  });

  it.each<[string, unknown, RegExp]>([
    ["not JSON", "{", /not valid UTF-8 JSON/],
    ["a reference to an undeclared parameter", { ...keel(), Parameters: {} }, /undeclared parameter/],
    [
      "no certificate resource",
      { ...keel(), Resources: { t: keel().Resources.thing } },
      /exactly one AWS::IoT::Certificate/,
    ],
    [
      "an unknown resource type",
      { ...keel(), Resources: { x: { Type: "AWS::S3::Bucket", Properties: {} } } },
      /Type/,
    ],
  ])("refuses a body with %s", (_what, body, message) => {
    expect(() => parseTemplateBody(typeof body === "string" ? body : JSON.stringify(body))).toThrow(message);
  });

  it("names its own error type for bodies that parse but cannot be used", () => {
    expect(() => parseTemplateBody(JSON.stringify({ ...keel(), Parameters: {} }))).toThrow(TemplateError);
  });
});

/** Keel's template body as an object, to break one part at a time. */
function keel(): { Parameters: unknown; Resources: Record<string, unknown> & { thing: unknown } } {
  return JSON.parse(provisioningTemplateBody("edge", undefined));
}
