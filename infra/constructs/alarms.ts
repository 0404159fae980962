/**
 * Alarms an operator needs without opening a dashboard: a rollout aborted (by its failure threshold, by
 * IoT canceling its job, or by an operator), and any function error. The abort alarm reads Logs metric
 * filters over the JSON log lines of the functions that abort rollouts (advance-rollout and the rollout
 * API, which runs the engine too), so it counts exactly what they log — no embedded-metric format and no
 * PutMetricData permission.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { ROLLOUT_ABORTED_EVENT } from "../../functions/log.ts";

export { ROLLOUT_ABORTED_EVENT };
export const METRIC_NAMESPACE = "Keel";

/**
 * With `loggingFormat: JSON` the Lambda runtime nests the object our logger passes to console.log under
 * `message` (`$.message.event`, functions/log.ts); `$.event` matches the same line printed bare (a
 * runtime without the JSON format, or a line written straight to stdout).
 */
export const ROLLOUT_ABORTED_PATTERN = logs.FilterPattern.any(
  logs.FilterPattern.stringValue("$.event", "=", ROLLOUT_ABORTED_EVENT),
  logs.FilterPattern.stringValue("$.message.event", "=", ROLLOUT_ABORTED_EVENT),
);

export interface KeelAlarmsProps {
  /** Log groups of the functions that abort rollouts (advance-rollout, the rollout API); one filter each. */
  readonly abortLogGroups: readonly logs.ILogGroup[];
  /** Functions whose errors raise an alarm. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
}

export class KeelAlarms extends Construct {
  readonly rolloutAborted: cloudwatch.Alarm;
  readonly functionErrors: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: KeelAlarmsProps) {
    super(scope, id);

    if (props.abortLogGroups.length === 0) {
      throw new Error("KeelAlarms needs at least one log group in abortLogGroups");
    }
    // Every filter feeds the same metric (namespace + name, no dimensions), so the alarm sees all aborts.
    const filters = props.abortLogGroups.map(
      (logGroup, i) =>
        new logs.MetricFilter(this, i === 0 ? "RolloutAbortedFilter" : `RolloutAbortedFilter${i + 1}`, {
          logGroup,
          filterPattern: ROLLOUT_ABORTED_PATTERN,
          metricNamespace: METRIC_NAMESPACE,
          metricName: "RolloutsAborted",
          metricValue: "1",
        }),
    );
    const aborted = filters[0] as logs.MetricFilter;
    this.rolloutAborted = new cloudwatch.Alarm(this, "RolloutAborted", {
      alarmDescription:
        "A Keel rollout was aborted: a wave crossed its failure threshold, IoT canceled its job, or an operator aborted it",
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
