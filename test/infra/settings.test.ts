/**
 * Settings from props and from `-c key=value` context: valid ones reach the template, invalid ones stop
 * synth with a SchemaError naming the field. Bundling is skipped here (aws:cdk:bundling-stacks = []):
 * these tests are about configuration, not code.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { SchemaError } from "../../core/errors.ts";
import { createKeelApp } from "../../infra/keel-app.ts";
import { KeelStack, type KeelStackProps } from "../../infra/keel-stack.ts";
import { resourcesOfType, type TemplateJson } from "./synth.ts";

const NO_BUNDLING = { "aws:cdk:bundling-stacks": [] };

function stackWith(props: KeelStackProps): KeelStack {
  return new KeelStack(
    new App({ context: NO_BUNDLING, outdir: mkdtempSync(join(tmpdir(), "keel-cdk-")) }),
    "Test",
    props,
  );
}

function appWith(context: Record<string, unknown>) {
  return createKeelApp(
    { context: { ...NO_BUNDLING, ...context }, outdir: mkdtempSync(join(tmpdir(), "keel-cdk-")) },
    {},
  );
}

function schemaIssues(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    if (err instanceof SchemaError) return [...err.issues];
    throw err;
  }
  throw new Error("expected a SchemaError, nothing was thrown");
}

describe("KeelStack props", () => {
  it("throws when a fleet name has characters a thing group name cannot hold", () => {
    expect(schemaIssues(() => stackWith({ fleets: ["edge", "lab one"] }))).toEqual([
      { path: "fleets[1]", message: expect.stringContaining("letters, digits") },
    ]);
  });

  it("throws when a fleet is listed twice", () => {
    expect(schemaIssues(() => stackWith({ fleets: ["edge", "edge"] }))).toEqual([
      { path: "fleets", message: "fleet names must be unique" },
    ]);
  });

  it("throws when logRetentionDays is not a CloudWatch Logs retention period", () => {
    expect(schemaIssues(() => stackWith({ logRetentionDays: 10 }))).toEqual([
      { path: "logRetentionDays", message: expect.stringContaining("1, 3, 5, 7, 14, 30") },
    ]);
  });

  it("throws when a physical name is not valid for its service", () => {
    const issues = schemaIssues(() =>
      stackWith({ bucketName: "Keel_Releases", tableName: "t", devicePolicyName: "has space" }),
    );
    expect(issues.map((i) => i.path).sort()).toEqual(["bucketName", "devicePolicyName", "tableName"]);
  });

  it("subscribes alarmEmail to the alarm topic, and refuses an address that is not one", () => {
    Template.fromStack(stackWith({ alarmEmail: "ops@example.com" })).hasResourceProperties(
      "AWS::SNS::Subscription",
      { Protocol: "email", Endpoint: "ops@example.com" },
    );
    expect(schemaIssues(() => stackWith({ alarmEmail: "ops at example" })).map((i) => i.path)).toEqual([
      "alarmEmail",
    ]);
  });

  it("uses the given physical names", () => {
    const stack = stackWith({
      bucketName: "keel-releases-test",
      tableName: "keel-state",
      devicePolicyName: "keel-device",
    });
    const t = Template.fromStack(stack);
    t.hasResourceProperties("AWS::S3::Bucket", { BucketName: "keel-releases-test" });
    t.hasResourceProperties("AWS::DynamoDB::Table", { TableName: "keel-state" });
    t.hasResourceProperties("AWS::IoT::Policy", { PolicyName: "keel-device" });
  });
});

describe("CDK context", () => {
  it("reads -c fleets=edge,lab and -c logRetentionDays=60 from their string form", () => {
    // GIVEN context as the CLI passes it (strings) WHEN the app is built
    const { stack } = appWith({ fleets: " edge, lab ", logRetentionDays: "60", stackName: "KeelTest" });
    const json = Template.fromStack(stack).toJSON() as TemplateJson;
    // THEN the stack has that name, the functions get the fleets and the log groups the retention
    expect(stack.stackName).toBe("KeelTest");
    const fns = resourcesOfType(json, "AWS::Lambda::Function").filter(([, p]) => p.Runtime === "nodejs22.x");
    // register-release, advance-rollout, the rollout API and the pre-provisioning hook.
    expect(fns).toHaveLength(4);
    for (const [, p] of fns) {
      expect((p.Environment as { Variables: Record<string, string> }).Variables.FLEETS).toBe("edge,lab");
    }
    for (const [, p] of resourcesOfType(json, "AWS::Logs::LogGroup")) expect(p.RetentionInDays).toBe(60);
  });

  it("accepts cdk.json's JSON types (a fleets array, a number)", () => {
    const { stack } = appWith({ fleets: ["edge"], logRetentionDays: 7 });
    Template.fromStack(stack).hasResourceProperties("AWS::Logs::LogGroup", { RetentionInDays: 7 });
  });

  it("defaults to stack Keel, any fleet, 30 days, retain", () => {
    const { stack } = appWith({});
    expect(stack.stackName).toBe("Keel");
    const json = Template.fromStack(stack).toJSON() as TemplateJson;
    for (const [, p] of resourcesOfType(json, "AWS::Logs::LogGroup")) expect(p.RetentionInDays).toBe(30);
    for (const [, p] of resourcesOfType(json, "AWS::Lambda::Function")) {
      expect(
        (p.Environment as { Variables?: Record<string, string> } | undefined)?.Variables ?? {},
      ).not.toHaveProperty("FLEETS");
    }
    for (const r of Object.values(json.Resources).filter((r) => r.Type === "AWS::DynamoDB::Table")) {
      expect(r.DeletionPolicy).toBe("Retain");
    }
  });

  it("throws when removalPolicy is neither retain nor destroy", () => {
    expect(schemaIssues(() => appWith({ removalPolicy: "keep" }))).toEqual([
      { path: "removalPolicy", message: expect.stringContaining('"retain"') },
    ]);
  });

  it("throws when logRetentionDays is not a number", () => {
    expect(schemaIssues(() => appWith({ logRetentionDays: "a month" })).map((i) => i.path)).toEqual([
      "logRetentionDays",
    ]);
  });

  it("throws when the stack name is not a CloudFormation stack name", () => {
    expect(schemaIssues(() => appWith({ stackName: "keel_prod" })).map((i) => i.path)).toEqual(["stackName"]);
  });

  it("with removalPolicy=destroy, deletes and empties what it would otherwise retain", () => {
    const { stack } = appWith({ removalPolicy: "destroy" });
    const json = Template.fromStack(stack).toJSON() as TemplateJson;
    const retained = Object.entries(json.Resources).filter(([, r]) => r.DeletionPolicy === "Retain");
    expect(retained).toEqual([]);
    expect(resourcesOfType(json, "Custom::S3AutoDeleteObjects")).toHaveLength(2);
    Template.fromStack(stack).hasResourceProperties("AWS::DynamoDB::Table", {
      DeletionProtectionEnabled: false,
    });
  });
});
