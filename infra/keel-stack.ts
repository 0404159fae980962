/**
 * KeelStack: the AWS side of Keel (docs/architecture.md, docs/deploying.md). The release bucket and the state table, the three
 * functions and what triggers them, the IoT wiring (job events, presign role, device policy), alarms,
 * and the outputs `keel` reads to find all of it.
 */
import { fileURLToPath } from "node:url";
import { CfnOutput, type CfnResource, Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3n from "aws-cdk-lib/aws-s3-notifications";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type { Construct } from "constructs";
import { KeelAlarms } from "./constructs/alarms.ts";
import { DeviceAccess } from "./constructs/device-access.ts";
import { FleetProvisioning } from "./constructs/fleet-provisioning.ts";
import { JobEvents } from "./constructs/job-events.ts";
import { KeelFunction } from "./constructs/keel-function.ts";
import {
  RELEASE_MANIFEST_SUFFIX,
  RELEASES_PREFIX,
  ReleaseBucket,
  TRUST_PREFIX,
} from "./constructs/release-bucket.ts";
import { StateTable } from "./constructs/state-table.ts";
import { grantIot } from "./iot-permissions.ts";
import { acknowledge, arnFinding } from "./nag.ts";
import { type KeelSettingsInput, parseSettings, toRemovalPolicy } from "./settings.ts";

/** Bundling entries: each module exports `handler`. */
export const FUNCTION_ENTRIES = {
  registerRelease: fileURLToPath(new URL("../functions/register-release/handler.ts", import.meta.url)),
  rolloutApi: fileURLToPath(new URL("../functions/rollout-api/handler.ts", import.meta.url)),
  advanceRollout: fileURLToPath(new URL("../functions/advance-rollout/handler.ts", import.meta.url)),
  provisioningHook: fileURLToPath(new URL("../functions/provisioning-hook/handler.ts", import.meta.url)),
} as const;

/** Names of the stack outputs; cli/ looks them up by these keys. */
export const OUTPUTS = {
  bucketName: "BucketName",
  tableName: "TableName",
  apiUrl: "ApiUrl",
  registerReleaseFunctionName: "RegisterReleaseFunctionName",
  advanceRolloutFunctionName: "AdvanceRolloutFunctionName",
  devicePolicyName: "DevicePolicyName",
  alarmTopicArn: "AlarmTopicArn",
  region: "Region",
} as const;

/**
 * Everything in KeelSettingsSchema (infra/settings.ts), each validated when the stack is built:
 * fleets (default: any), logRetentionDays (default 30), removalPolicy (default retain), bucketName,
 * tableName, devicePolicyName (default: names CloudFormation generates), alarmEmail (default: none).
 */
export interface KeelStackProps extends StackProps, KeelSettingsInput {}

export class KeelStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly table: StateTable["table"];
  readonly registerRelease: KeelFunction;
  readonly rolloutApi: KeelFunction;
  readonly advanceRollout: KeelFunction;
  readonly apiUrl: lambda.FunctionUrl;
  readonly deviceAccess: DeviceAccess;
  /** Fleet provisioning by claim: the pre-provisioning hook and the role AWS IoT provisions with. */
  readonly fleetProvisioning: FleetProvisioning;
  /** Every alarm notifies this topic; `alarmEmail` subscribes an address. */
  readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: KeelStackProps = {}) {
    super(scope, id, props);
    const settings = parseSettings(
      {
        fleets: props.fleets,
        logRetentionDays: props.logRetentionDays,
        removalPolicy: props.removalPolicy,
        bucketName: props.bucketName,
        tableName: props.tableName,
        devicePolicyName: props.devicePolicyName,
        alarmEmail: props.alarmEmail,
      },
      `KeelStack ${id} props`,
    );
    const removalPolicy = toRemovalPolicy(settings.removalPolicy);
    const logRetention = settings.logRetentionDays;

    const releases = new ReleaseBucket(this, "Releases", { removalPolicy, bucketName: settings.bucketName });
    this.bucket = releases.bucket;
    this.table = new StateTable(this, "State", { removalPolicy, tableName: settings.tableName }).table;
    this.deviceAccess = new DeviceAccess(this, "DeviceAccess", {
      bucket: this.bucket,
      devicePolicyName: settings.devicePolicyName,
    });
    const { presignRole, devicePolicy } = this.deviceAccess;

    const common = {
      logRetention,
      removalPolicy,
      environment: {
        TABLE_NAME: this.table.tableName,
        BUCKET_NAME: this.bucket.bucketName,
        // Unset (not empty) when any fleet is accepted, as functions/env.ts reads it.
        ...(settings.fleets.length > 0 ? { FLEETS: settings.fleets.join(",") } : {}),
      },
    };

    // register-release: S3 event on a manifest → verify → record VERIFIED/REJECTED.
    this.registerRelease = new KeelFunction(this, "RegisterRelease", {
      ...common,
      entry: FUNCTION_ENTRIES.registerRelease,
      description: "Keel: verify a published release manifest and record it",
    });
    // Reads manifests, image metadata and the trust root chain; writes only the table.
    this.grantReleaseRead(this.registerRelease.role);
    this.grantTable(this.registerRelease.role);
    this.bucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.LambdaDestination(this.registerRelease.function),
      { prefix: RELEASES_PREFIX, suffix: RELEASE_MANIFEST_SUFFIX },
    );
    this.acknowledgeNotificationsHandler();

    // Fleet provisioning by claim: the hook reads claim rules and records enrolled things.
    this.fleetProvisioning = new FleetProvisioning(this, "FleetProvisioning", {
      hook: { ...common, entry: FUNCTION_ENTRIES.provisioningHook },
      devicePolicy,
    });
    const { hook, provisioningRole } = this.fleetProvisioning;
    this.grantTable(hook.role);
    grantIot(hook.role, "provisioningHook");

    // rollout API: Function URL with IAM auth; the CLI signs every request with SigV4.
    this.rolloutApi = new KeelFunction(this, "RolloutApi", {
      ...common,
      environment: {
        ...common.environment,
        PRESIGN_ROLE_ARN: presignRole.roleArn,
        THING_POLICY_NAME: devicePolicy.ref,
        PROVISIONING_HOOK_ARN: hook.function.functionArn,
        PROVISIONING_ROLE_ARN: provisioningRole.roleArn,
      },
      entry: FUNCTION_ENTRIES.rolloutApi,
      description: "Keel: rollout API (releases, rollouts, fleets)",
    });
    this.grantTable(this.rolloutApi.role);
    this.grantTrustRootListing(this.rolloutApi.role);
    presignRole.grantPassRole(this.rolloutApi.role);
    // CreateProvisioningTemplate names the role AWS IoT provisions with.
    provisioningRole.grantPassRole(this.rolloutApi.role);
    grantIot(this.rolloutApi.role, "rolloutApi");
    this.apiUrl = this.rolloutApi.function.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });

    // advance-rollout: every minute, and on every job event.
    this.advanceRollout = new KeelFunction(this, "AdvanceRollout", {
      ...common,
      environment: { ...common.environment, PRESIGN_ROLE_ARN: presignRole.roleArn },
      entry: FUNCTION_ENTRIES.advanceRollout,
      description: "Keel: wave gate — abort, advance or finish active rollouts",
      timeout: Duration.seconds(60),
    });
    this.grantTable(this.advanceRollout.role);
    this.grantTrustRootListing(this.advanceRollout.role);
    presignRole.grantPassRole(this.advanceRollout.role);
    grantIot(this.advanceRollout.role, "advanceRollout");
    new events.Rule(this, "AdvanceSchedule", {
      description: "Keel: advance active rollouts every minute",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.advanceRollout.function, { retryAttempts: 0 })],
    });
    new JobEvents(this, "JobEvents", { target: this.advanceRollout.function, logRetention, removalPolicy });

    this.alarmTopic = new sns.Topic(this, "AlarmTopic", {
      displayName: "Keel alarms",
      enforceSSL: true,
    });
    if (settings.alarmEmail) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(settings.alarmEmail));
    }
    new KeelAlarms(this, "Alarms", {
      topic: this.alarmTopic,
      rolloutLogGroups: [this.advanceRollout.logGroup, this.rolloutApi.logGroup],
      functions: {
        RegisterRelease: this.registerRelease.function,
        RolloutApi: this.rolloutApi.function,
        AdvanceRollout: this.advanceRollout.function,
        ProvisioningHook: hook.function,
      },
    });

    const output = (key: string, value: string, description: string) =>
      new CfnOutput(this, key, { value, description });
    output(OUTPUTS.bucketName, this.bucket.bucketName, "Release bucket (keel release publish uploads here)");
    output(OUTPUTS.tableName, this.table.tableName, "State table (releases, rollouts, audit)");
    output(OUTPUTS.apiUrl, this.apiUrl.url, "Rollout API Function URL (AWS_IAM, SigV4)");
    output(
      OUTPUTS.registerReleaseFunctionName,
      this.registerRelease.function.functionName,
      "register-release",
    );
    output(OUTPUTS.advanceRolloutFunctionName, this.advanceRollout.function.functionName, "advance-rollout");
    output(OUTPUTS.devicePolicyName, devicePolicy.ref, "IoT policy attached to device certificates");
    output(OUTPUTS.alarmTopicArn, this.alarmTopic.topicArn, "SNS topic every Keel alarm notifies");
    output(OUTPUTS.region, this.region, "Region of the stack");
  }

  /** Item reads and writes on the table and its index; no table management. */
  private grantTable(role: iam.Role): void {
    this.table.grantReadWriteData(role);
    const cfnTable = this.table.node.defaultChild as CfnResource;
    acknowledge(
      role,
      arnFinding(cfnTable, "/index/*"),
      "Queries go through the table's gsi1 index (grantReadWriteData scopes to this table's indexes).",
    );
  }

  /** Read access to signed releases and trust roots (bucket.grantRead, scoped to the two prefixes). */
  private grantReleaseRead(role: iam.Role): void {
    const cfnBucket = this.bucket.node.defaultChild as CfnResource;
    for (const prefix of [RELEASES_PREFIX, TRUST_PREFIX]) {
      this.bucket.grantRead(role, `${prefix}*`);
      acknowledge(
        role,
        arnFinding(cfnBucket, `/${prefix}*`),
        `Release objects are named by version under ${prefix} (docs/releases.md).`,
      );
    }
    const reason =
      "The read-only action set of bucket.grantRead (GetObject with its version/ACL variants, bucket location and listing), scoped to this bucket.";
    for (const action of ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]) {
      acknowledge(role, `AwsSolutions-IAM5[Action::${action}]`, reason);
    }
  }

  /** ListBucket limited to the trust root keys: the job document names the roots newer than root 1. */
  private grantTrustRootListing(role: iam.Role): void {
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["s3:ListBucket"],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { "s3:prefix": [`${TRUST_PREFIX}root.*`] } },
      }),
    );
  }

  /** CDK's own bucket-notification handler (a singleton it adds to the stack) uses its default role. */
  private acknowledgeNotificationsHandler(): void {
    for (const child of this.node.children) {
      if (!child.node.id.startsWith("BucketNotificationsHandler")) continue;
      acknowledge(
        child,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "aws-cdk-lib's BucketNotificationsHandler (it only calls s3:PutBucketNotificationConfiguration at deploy time) has a fixed role; its props cannot replace it.",
      );
    }
  }
}
