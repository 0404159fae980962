/**
 * KeelStack's synthesized template: each resource docs/deploying.md names, with the properties that make
 * it what the design says (versioned, encrypted, TLS only, IAM-authenticated, …), plus a snapshot of the
 * whole template with asset hashes normalized.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Match } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { createTableInput } from "../../functions/table-definition.ts";
import { ROLLOUT_ABORTED_PATTERN, ROLLOUT_STALLED_PATTERN } from "../../infra/constructs/alarms.ts";
import { JOB_EVENT_TOPICS, JobEvents } from "../../infra/constructs/job-events.ts";
import { OUTPUTS } from "../../infra/keel-stack.ts";
import { logicalIdOf, propertiesOf, resourcesOfType, type Synthesized, synthKeel } from "./synth.ts";

const run = promisify(execFile);
let keel: Synthesized;
const ref = (id: string) => ({ Ref: id });
const getAtt = (id: string, attr: string) => ({ "Fn::GetAtt": [id, attr] });

const logicalId = (construct: IConstruct) => logicalIdOf(keel.stack, construct);
const jobEvents = () =>
  keel.stack.node.children.find((c): c is JobEvents => c instanceof JobEvents) as JobEvents;

beforeAll(() => {
  // GIVEN the app as `npx cdk synth -c fleets=edge,lab -c logRetentionDays=14` builds it
  keel = synthKeel({ fleets: "edge,lab", logRetentionDays: "14" });
});

describe("release bucket", () => {
  it("is versioned, SSE-encrypted, private and logs access to a separate bucket", () => {
    const bucketId = logicalId(keel.stack.bucket);
    const props = propertiesOf(keel.json, bucketId);
    expect(props).toMatchObject({
      VersioningConfiguration: { Status: "Enabled" },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: { DestinationBucketName: expect.objectContaining({ Ref: expect.any(String) }) },
    });
    const logBucket = (props.LoggingConfiguration as { DestinationBucketName: { Ref: string } })
      .DestinationBucketName.Ref;
    expect(logBucket).not.toBe(bucketId);
    expect(keel.json.Resources[logBucket]?.Type).toBe("AWS::S3::Bucket");
    // S3 log delivery writes through the log bucket's policy (its ACLs stay disabled).
    keel.template.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: ref(logBucket),
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Allow",
            Action: "s3:PutObject",
            Principal: { Service: "logging.s3.amazonaws.com" },
          }),
        ]),
      },
    });
  });

  it("expires noncurrent versions and aborts stale multipart uploads", () => {
    keel.template.hasResourceProperties("AWS::S3::Bucket", {
      VersioningConfiguration: { Status: "Enabled" },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            Status: "Enabled",
            NoncurrentVersionExpiration: { NoncurrentDays: 90 },
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
          }),
        ],
      },
    });
  });

  it("denies every request that does not use TLS, on both buckets", () => {
    const policies = resourcesOfType(keel.json, "AWS::S3::BucketPolicy");
    expect(policies).toHaveLength(2);
    for (const [, props] of policies) {
      expect(props.PolicyDocument).toMatchObject({
        Statement: expect.arrayContaining([
          expect.objectContaining({
            Effect: "Deny",
            Action: "s3:*",
            Principal: { AWS: "*" },
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      });
    }
  });

  it("is kept when the stack is deleted (default removal policy retain)", () => {
    const bucket = keel.json.Resources[logicalId(keel.stack.bucket)];
    expect(bucket?.DeletionPolicy).toBe("Retain");
    expect(bucket?.UpdateReplacePolicy).toBe("Retain");
  });
});

describe("state table", () => {
  it("has the key schema and gsi1 of functions/table-definition.ts", () => {
    const def = createTableInput("ignored");
    keel.template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: def.KeySchema,
      AttributeDefinitions: Match.arrayEquals(def.AttributeDefinitions),
      GlobalSecondaryIndexes: [
        {
          IndexName: def.GlobalSecondaryIndexes[0]?.IndexName,
          KeySchema: def.GlobalSecondaryIndexes[0]?.KeySchema,
          Projection: { ProjectionType: "ALL" },
        },
      ],
      BillingMode: "PAY_PER_REQUEST",
    });
  });

  it("has point-in-time recovery, KMS encryption and deletion protection", () => {
    keel.template.hasResourceProperties("AWS::DynamoDB::Table", {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      // SSEEnabled without a key = the AWS managed KMS key (aws/dynamodb) rather than an AWS owned key.
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
    });
  });
});

describe("functions", () => {
  const fns = () =>
    [keel.stack.registerRelease, keel.stack.rolloutApi, keel.stack.advanceRollout].map((f) => ({
      id: logicalId(f.function),
      props: propertiesOf(keel.json, logicalId(f.function)),
      logGroup: logicalId(f.logGroup),
      role: logicalId(f.role),
    }));

  it("run bundled ESM on nodejs22.x, arm64, with JSON logs into their own log group", () => {
    for (const f of fns()) {
      expect(f.props).toMatchObject({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        LoggingConfig: { LogFormat: "JSON", LogGroup: ref(f.logGroup) },
        Role: getAtt(f.role, "Arn"),
      });
      expect(keel.json.Resources[f.logGroup]).toMatchObject({
        Type: "AWS::Logs::LogGroup",
        Properties: { RetentionInDays: 14 },
        DeletionPolicy: "Retain",
      });
    }
  });

  it("get the table, bucket and fleets in their environment, and the presign role where jobs are made", () => {
    const tableRef = ref(logicalId(keel.stack.table));
    const bucketRef = ref(logicalId(keel.stack.bucket));
    const [register, api, advance] = fns();
    const env = (f: typeof register) =>
      (f?.props.Environment as { Variables: Record<string, unknown> } | undefined)?.Variables;
    for (const f of [register, api, advance]) {
      expect(env(f)).toMatchObject({ TABLE_NAME: tableRef, BUCKET_NAME: bucketRef, FLEETS: "edge,lab" });
    }
    const presignArn = getAtt(logicalId(keel.stack.deviceAccess.presignRole), "Arn");
    expect(env(api)).toMatchObject({
      PRESIGN_ROLE_ARN: presignArn,
      THING_POLICY_NAME: ref(logicalId(keel.stack.deviceAccess.devicePolicy)),
    });
    expect(env(advance)).toMatchObject({ PRESIGN_ROLE_ARN: presignArn });
    expect(env(register)).not.toHaveProperty("PRESIGN_ROLE_ARN");
    expect(env(advance)).not.toHaveProperty("THING_POLICY_NAME");
  });

  it("are bundled into ES modules that load and export `handler`", async () => {
    for (const f of fns()) {
      // GIVEN the asset the function's Code points at (S3Key = <asset hash>.zip)
      const key = (f.props.Code as { S3Key: string }).S3Key;
      const bundle = join(keel.outdir, `asset.${key.replace(/\.zip$/, "")}`, "index.mjs");
      // WHEN Node imports it in a clean process, with the environment the stack gives it
      const { stdout } = await run(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `const m = await import(${JSON.stringify(bundle)}); console.log(typeof m.handler);`,
        ],
        {
          cwd: keel.outdir,
          env: {
            PATH: process.env.PATH,
            TABLE_NAME: "t",
            BUCKET_NAME: "b",
            PRESIGN_ROLE_ARN: "arn:aws:iam::123456789012:role/presign",
            THING_POLICY_NAME: "p",
            AWS_REGION: "us-east-1",
          },
        },
      );
      // THEN the module loads (no unresolved require/import) and has the handler Lambda calls
      expect(stdout.trim()).toBe("function");
    }
  });

  it("use roles without AWS managed policies", () => {
    for (const f of fns()) {
      expect(keel.json.Resources[f.role]?.Properties).not.toHaveProperty("ManagedPolicyArns");
    }
  });
});

describe("triggers", () => {
  it("exposes the rollout API as a Function URL with AWS_IAM auth", () => {
    keel.template.resourceCountIs("AWS::Lambda::Url", 1);
    keel.template.hasResourceProperties("AWS::Lambda::Url", {
      AuthType: "AWS_IAM",
      TargetFunctionArn: getAtt(logicalId(keel.stack.rolloutApi.function), "Arn"),
    });
  });

  it("runs advance-rollout every minute", () => {
    keel.template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      State: "ENABLED",
      Targets: [Match.objectLike({ Arn: getAtt(logicalId(keel.stack.advanceRollout.function), "Arn") })],
    });
  });

  it("calls register-release for objects created under releases/ ending in release.json", () => {
    keel.template.hasResourceProperties("Custom::S3BucketNotifications", {
      BucketName: ref(logicalId(keel.stack.bucket)),
      NotificationConfiguration: {
        LambdaFunctionConfigurations: [
          {
            Events: ["s3:ObjectCreated:*"],
            Filter: {
              Key: {
                FilterRules: Match.arrayEquals([
                  { Name: "suffix", Value: "release.json" },
                  { Name: "prefix", Value: "releases/" },
                ]),
              },
            },
            LambdaFunctionArn: getAtt(logicalId(keel.stack.registerRelease.function), "Arn"),
          },
        ],
      },
    });
  });

  it("routes both IoT job event topic trees to advance-rollout, which IoT may invoke", () => {
    const advanceArn = getAtt(logicalId(keel.stack.advanceRollout.function), "Arn");
    const errorLogs = logicalId(jobEvents().errorLogs);
    const rules = resourcesOfType(keel.json, "AWS::IoT::TopicRule");
    expect(rules.map(([, p]) => (p.TopicRulePayload as { Sql: string }).Sql).sort()).toEqual(
      Object.values(JOB_EVENT_TOPICS)
        .map((t) => `SELECT * FROM '${t}'`)
        .sort(),
    );
    for (const [id, props] of rules) {
      expect(props.TopicRulePayload).toMatchObject({
        RuleDisabled: false,
        Actions: [{ Lambda: { FunctionArn: advanceArn } }],
        // A failed action is logged, not dropped.
        ErrorAction: {
          CloudwatchLogs: {
            LogGroupName: ref(errorLogs),
            RoleArn: { "Fn::GetAtt": [expect.any(String), "Arn"] },
          },
        },
      });
      keel.template.hasResourceProperties("AWS::Lambda::Permission", {
        Action: "lambda:InvokeFunction",
        Principal: "iot.amazonaws.com",
        FunctionName: advanceArn,
        SourceArn: getAtt(id, "Arn"),
      });
    }
  });

  it("enables IoT job and job-execution events through iot:UpdateEventConfigurations", () => {
    const [[, cr] = []] = resourcesOfType(keel.json, "Custom::AWS");
    const create = JSON.parse(JSON.stringify((cr as { Create: unknown }).Create)) as unknown;
    // The call is serialized into a Fn::Join with the region; compare its literal parts.
    const text = JSON.stringify(create);
    expect(text).toContain('\\"action\\":\\"UpdateEventConfigurations\\"');
    expect(text).toContain('\\"JOB\\":{\\"Enabled\\":true}');
    expect(text).toContain('\\"JOB_EXECUTION\\":{\\"Enabled\\":true}');
  });
});

describe("alarms", () => {
  it("count rollout.aborted and rollout.stalled log lines of both functions that run the engine", () => {
    // advance-rollout aborts on thresholds and IoT cancels, and stalls on failing calls; the rollout API
    // aborts on an operator's request and runs the engine right after every change.
    // test/functions/abort-log.test.ts and stall.test.ts hold the functions' log lines to these patterns.
    expect(ROLLOUT_ABORTED_PATTERN.logPatternString).toBe(
      '{ ($.event = "rollout.aborted") || ($.message.event = "rollout.aborted") }',
    );
    expect(ROLLOUT_STALLED_PATTERN.logPatternString).toBe(
      '{ ($.event = "rollout.stalled") || ($.message.event = "rollout.stalled") }',
    );
    for (const [pattern, metric] of [
      [ROLLOUT_ABORTED_PATTERN, "RolloutsAborted"],
      [ROLLOUT_STALLED_PATTERN, "RolloutsStalled"],
    ] as const) {
      for (const fn of [keel.stack.advanceRollout, keel.stack.rolloutApi]) {
        keel.template.hasResourceProperties("AWS::Logs::MetricFilter", {
          LogGroupName: ref(logicalId(fn.logGroup)),
          FilterPattern: pattern.logPatternString,
          MetricTransformations: [{ MetricNamespace: "Keel", MetricName: metric, MetricValue: "1" }],
        });
      }
      keel.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "Keel",
        MetricName: metric,
        Threshold: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        TreatMissingData: "notBreaching",
        AlarmActions: [ref(logicalId(keel.stack.alarmTopic))],
      });
    }
    keel.template.resourceCountIs("AWS::Logs::MetricFilter", 4);
  });

  it("alarms on errors of each of the four functions", () => {
    const { registerRelease, rolloutApi, advanceRollout, fleetProvisioning } = keel.stack;
    for (const f of [registerRelease, rolloutApi, advanceRollout, fleetProvisioning.hook]) {
      keel.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/Lambda",
        MetricName: "Errors",
        Dimensions: [{ Name: "FunctionName", Value: ref(logicalId(f.function)) }],
        Threshold: 1,
      });
    }
  });

  it("every alarm notifies the SNS topic, on alarm and on recovery; the topic takes TLS only", () => {
    const topic = ref(logicalId(keel.stack.alarmTopic));
    const alarms = resourcesOfType(keel.json, "AWS::CloudWatch::Alarm");
    // Two rollout alarms and one per function.
    expect(alarms).toHaveLength(6);
    for (const [, p] of alarms) {
      expect(p.AlarmActions).toEqual([topic]);
      expect(p.OKActions).toEqual([topic]);
    }
    keel.template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      },
    });
    // No address given: no subscription (one is added with -c alarmEmail=…, see settings.test.ts).
    keel.template.resourceCountIs("AWS::SNS::Subscription", 0);
  });
});

describe("outputs", () => {
  it("has every output the CLI reads", () => {
    expect(Object.keys(keel.json.Outputs ?? {}).sort()).toEqual(Object.values(OUTPUTS).sort());
    keel.template.hasOutput(OUTPUTS.apiUrl, { Value: getAtt(logicalId(keel.stack.apiUrl), "FunctionUrl") });
    keel.template.hasOutput(OUTPUTS.region, { Value: ref("AWS::Region") });
    keel.template.hasOutput(OUTPUTS.bucketName, { Value: ref(logicalId(keel.stack.bucket)) });
  });
});

describe("snapshot", () => {
  it("matches the stored template (asset hashes normalized)", () => {
    // Asset hashes change whenever function code changes; the template's shape is what is pinned here.
    const text = JSON.stringify(keel.json, null, 2).replace(/[0-9a-f]{64}/g, "<asset-hash>");
    expect(JSON.parse(text)).toMatchSnapshot();
  });
});
