/**
 * IoT job events → advance-rollout. AWS IoT publishes job and job-execution events only when the
 * account's event configurations enable them, so this construct turns them on and routes both topic
 * trees to the function. The every-minute schedule remains the backstop if an event is lost.
 */
import { type RemovalPolicy, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as iot from "aws-cdk-lib/aws-iot";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";

/** One rule per topic tree: an IoT SQL statement selects from a single topic filter. */
export const JOB_EVENT_TOPICS = {
  JobEvents: "$aws/events/job/#",
  JobExecutionEvents: "$aws/events/jobExecution/#",
} as const;

export interface JobEventsProps {
  /** The function that reacts to job events (advance-rollout). */
  readonly target: lambda.IFunction;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

export class JobEvents extends Construct {
  readonly rules: iot.CfnTopicRule[] = [];
  /** Where IoT logs a rule action that failed (the error action of both rules). */
  readonly errorLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: JobEventsProps) {
    super(scope, id);
    const stack = Stack.of(this);

    // A rule whose action fails (the function throttled, its permission missing) would drop the event
    // silently; the error action writes the failure to a log group instead, where it can be read.
    this.errorLogs = new logs.LogGroup(this, "RuleErrors", {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    const errorRole = new iam.Role(this, "RuleErrorRole", {
      assumedBy: new iam.ServicePrincipal("iot.amazonaws.com").withConditions({
        StringEquals: { "aws:SourceAccount": stack.account },
      }),
      description: "AWS IoT writes failed Keel job-event rule actions to their log group",
    });
    this.errorLogs.grantWrite(errorRole);

    for (const [ruleId, topic] of Object.entries(JOB_EVENT_TOPICS)) {
      const rule = new iot.CfnTopicRule(this, ruleId, {
        topicRulePayload: {
          description: `Keel: ${topic} → advance-rollout`,
          sql: `SELECT * FROM '${topic}'`,
          awsIotSqlVersion: "2016-03-23",
          ruleDisabled: false,
          actions: [{ lambda: { functionArn: props.target.functionArn } }],
          errorAction: {
            cloudwatchLogs: { logGroupName: this.errorLogs.logGroupName, roleArn: errorRole.roleArn },
          },
        },
      });
      props.target.addPermission(`InvokeFrom${ruleId}`, {
        principal: new iam.ServicePrincipal("iot.amazonaws.com"),
        sourceArn: rule.attrArn,
        sourceAccount: stack.account,
      });
      this.rules.push(rule);
    }

    // The custom resource's provider function gets the same treatment as ours: its own log group and a
    // role that can write only there, instead of AWSLambdaBasicExecutionRole.
    const logGroup = new logs.LogGroup(this, "ProviderLogs", {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    const role = new iam.Role(this, "ProviderRole", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "Enables AWS IoT job event configurations for Keel",
    });
    logGroup.grantWrite(role);
    const enable: cr.AwsSdkCall = {
      service: "IoT",
      action: "UpdateEventConfigurations",
      parameters: { eventConfigurations: { JOB: { Enabled: true }, JOB_EXECUTION: { Enabled: true } } },
      physicalResourceId: cr.PhysicalResourceId.of("keel-job-event-configurations"),
    };
    // No onDelete: event configurations are account-wide and other workloads may rely on them.
    const enableEvents = new cr.AwsCustomResource(this, "EnableJobEvents", {
      onCreate: enable,
      onUpdate: enable,
      role,
      logGroup,
      installLatestAwsSdk: false,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({
          actions: ["iot:UpdateEventConfigurations"],
          resources: ["*"],
        }),
      ]),
    });
    acknowledge(
      enableEvents,
      "AwsSolutions-IAM5[Resource::*]",
      "iot:UpdateEventConfigurations has no resource-level permissions (Service Authorization Reference); the role can call only that action.",
    );
    enableEvents.node.addDependency(role);
  }
}
