/**
 * Alarms an operator needs without opening a dashboard, each notifying one SNS topic: a rollout aborted
 * (by its failure threshold, by IoT canceling its job, or by an operator), a rollout stalled (an AWS call
 * it needs kept failing), and any function error. The rollout alarms read Logs metric filters over the
 * JSON log lines of the functions that run the rollout engine (advance-rollout and the rollout API), so
 * they count exactly what those log — no embedded-metric format and no PutMetricData permission.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { ROLLOUT_ABORTED_EVENT, ROLLOUT_STALLED_EVENT } from "../../functions/log.ts";

export { ROLLOUT_ABORTED_EVENT, ROLLOUT_STALLED_EVENT };
export const METRIC_NAMESPACE = "Keel";

/**
 * With `loggingFormat: JSON` the Lambda runtime nests the object our logger passes to console.log under
 * `message` (`$.message.event`, functions/log.ts); `$.event` matches the same line printed bare (a
 * runtime without the JSON format, or a line written straight to stdout).
 */
export function eventPattern(event: string): logs.IFilterPattern {
  return logs.FilterPattern.any(
    logs.FilterPattern.stringValue("$.event", "=", event),
    logs.FilterPattern.stringValue("$.message.event", "=", event),
  );
}
export const ROLLOUT_ABORTED_PATTERN = eventPattern(ROLLOUT_ABORTED_EVENT);
export const ROLLOUT_STALLED_PATTERN = eventPattern(ROLLOUT_STALLED_EVENT);

/** The log-line alarms: event, metric it feeds, construct id and what the alarm tells the operator. */
export const ROLLOUT_EVENT_ALARMS = [
  {
    id: "RolloutAborted",
    event: ROLLOUT_ABORTED_EVENT,
    metricName: "RolloutsAborted",
    description:
      "A Keel rollout was aborted: a wave crossed its failure threshold, IoT canceled its job, or an operator aborted it",
  },
  {
    id: "RolloutStalled",
    event: ROLLOUT_STALLED_EVENT,
    metricName: "RolloutsStalled",
    description:
      "A Keel rollout stalled: an AWS IoT call it needs kept failing (keel rollout status shows the error; resume retries)",
  },
] as const;

export interface KeelAlarmsProps {
  /** Log groups of the functions that run the rollout engine (advance-rollout, the rollout API). */
  readonly rolloutLogGroups: readonly logs.ILogGroup[];
  /** Functions whose errors raise an alarm. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Where every alarm (and its return to OK) is sent. */
  readonly topic: sns.ITopic;
}

export class KeelAlarms extends Construct {
  readonly rolloutAborted: cloudwatch.Alarm;
  readonly rolloutStalled: cloudwatch.Alarm;
  readonly functionErrors: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: KeelAlarmsProps) {
    super(scope, id);

    if (props.rolloutLogGroups.length === 0) {
      throw new Error("KeelAlarms needs at least one log group in rolloutLogGroups");
    }
    const notify = new actions.SnsAction(props.topic);
    const alarm = (alarmId: string, description: string, metric: cloudwatch.IMetric) => {
      const a = new cloudwatch.Alarm(this, alarmId, {
        alarmDescription: description,
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      return a;
    };

    const [aborted, stalled] = ROLLOUT_EVENT_ALARMS.map((spec) => {
      // Every filter feeds the same metric (namespace + name, no dimensions), so the alarm sees all.
      const filters = props.rolloutLogGroups.map(
        (logGroup, i) =>
          new logs.MetricFilter(this, `${spec.id}Filter${i === 0 ? "" : i + 1}`, {
            logGroup,
            filterPattern: eventPattern(spec.event),
            metricNamespace: METRIC_NAMESPACE,
            metricName: spec.metricName,
            metricValue: "1",
          }),
      );
      const first = filters[0] as logs.MetricFilter;
      return alarm(
        spec.id,
        spec.description,
        first.metric({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      );
    });
    this.rolloutAborted = aborted as cloudwatch.Alarm;
    this.rolloutStalled = stalled as cloudwatch.Alarm;

    for (const [name, fn] of Object.entries(props.functions)) {
      this.functionErrors.push(
        alarm(
          `${name}Errors`,
          `The Keel ${name} function failed (uncaught error or timeout)`,
          fn.metricErrors({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
        ),
      );
    }
  }
}
