/**
 * Alarms an operator needs without opening a dashboard: a rollout aborted by its failure threshold, and
 * any function error. The abort alarm reads a Logs metric filter over advance-rollout's JSON log lines, so
 * it counts exactly what the function logs — no embedded-metric format and no PutMetricData permission.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

/** The `event` field advance-rollout logs when it aborts a rollout on its failure threshold. */
export const ROLLOUT_ABORTED_EVENT = "rollout.aborted";
export const METRIC_NAMESPACE = "Keel";

/**
 * With `loggingFormat: JSON` the Lambda runtime keeps a line that is already a JSON object as it is
 * (`$.event`) but nests an object passed to console.log under `message` (`$.message.event`); match both.
 */
export const ROLLOUT_ABORTED_PATTERN = logs.FilterPattern.any(
  logs.FilterPattern.stringValue("$.event", "=", ROLLOUT_ABORTED_EVENT),
  logs.FilterPattern.stringValue("$.message.event", "=", ROLLOUT_ABORTED_EVENT),
);

export interface KeelAlarmsProps {
  /** Log group of the function that aborts rollouts (advance-rollout). */
  readonly abortLogGroup: logs.ILogGroup;
  /** Functions whose errors raise an alarm. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
}

export class KeelAlarms extends Construct {
  readonly rolloutAborted: cloudwatch.Alarm;
  readonly functionErrors: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: KeelAlarmsProps) {
    super(scope, id);

    const aborted = new logs.MetricFilter(this, "RolloutAbortedFilter", {
      logGroup: props.abortLogGroup,
      filterPattern: ROLLOUT_ABORTED_PATTERN,
      metricNamespace: METRIC_NAMESPACE,
      metricName: "RolloutsAborted",
      metricValue: "1",
    });
    this.rolloutAborted = new cloudwatch.Alarm(this, "RolloutAborted", {
      alarmDescription: "A Keel rollout was aborted because a wave crossed its failure threshold",
      metric: aborted.metric({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    for (const [name, fn] of Object.entries(props.functions)) {
      this.functionErrors.push(
        new cloudwatch.Alarm(this, `${name}Errors`, {
          alarmDescription: `The Keel ${name} function failed (uncaught error or timeout)`,
          metric: fn.metricErrors({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }
}
