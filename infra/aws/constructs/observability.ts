/**
 * The CloudWatch dashboard (the same metric names the EMF emitters and the local dashboard
 * use, from shared/topology.ts) and the alarms that page someone through an SNS topic.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE, metricNames, NAMESPACE } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';

type MetricKey = keyof typeof metricNames;
type Statistic = 'Sum' | 'Average' | 'Maximum' | 'Minimum' | 'p99';

/**
 * Every series of a topology metric, whatever its dimensions (one line per model version
 * when the emitter adds a version dimension).
 */
export function searchExpression(metric: MetricKey, statistic: Statistic, period: Duration): string {
  return `SEARCH('Namespace="${METRICS_NAMESPACE}" MetricName="${metricNames[metric]}"', '${statistic}', ${period.toSeconds()})`;
}

function search(metric: MetricKey, statistic: Statistic, label: string, period = Duration.minutes(1)) {
  return new cw.MathExpression({
    expression: searchExpression(metric, statistic, period),
    label,
    period,
    usingMetrics: {},
  });
}

export interface ObservabilityProps {
  config: EdgeloopConfig;
  stateMachine: sfn.IStateMachine;
  /** Aggregator functions by name (an errors alarm each). */
  aggregators: Record<string, lambda.IFunction>;
  /** Dead-letter queues by name (a depth alarm each). */
  deadLetterQueues: Record<string, sqs.IQueue>;
}

export class Observability extends Construct {
  readonly dashboard: cw.Dashboard;
  readonly alarmTopic: sns.Topic;
  readonly alarms: cw.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const { config } = props;

    this.alarmTopic = new sns.Topic(this, 'Alarms', {
      displayName: `${NAMESPACE} ${config.stage} alarms`,
      enforceSSL: true,
    });
    acknowledge(
      this.alarmTopic,
      'AwsSolutions-SNS2',
      'Alarm notifications carry only alarm names and states; CloudWatch cannot publish to a topic under the AWS-managed SNS key, and a customer key would cost more than the data is worth.',
    );
    if (config.alarmEmail)
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    const notify = new cwActions.SnsAction(this.alarmTopic);

    const trainingFailures = props.stateMachine.metricFailed({ period: Duration.hours(1), statistic: 'Sum' });
    this.alarm(
      'TrainingFailures',
      trainingFailures,
      config.trainingFailureThreshold,
      'a training run failed',
      notify,
    );

    const aggregatorErrors = Object.entries(props.aggregators).map(([name, fn]) => {
      const metric = fn.metricErrors({
        period: Duration.minutes(5),
        statistic: 'Sum',
      });
      this.alarm(
        `${name}Errors`,
        metric,
        config.aggregatorErrorThreshold,
        `the ${name} aggregator fails`,
        notify,
      );
      return metric.with({ label: `${name} errors` });
    });
    const dlqDepth = Object.entries(props.deadLetterQueues).map(([name, queue]) => {
      const metric = queue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: 'Maximum',
      });
      this.alarm(
        `${name}DeadLetters`,
        metric,
        config.dlqDepthThreshold,
        `${name} dead letters are waiting`,
        notify,
      );
      return metric.with({ label: `${name} dead letters` });
    });

    this.dashboard = new cw.Dashboard(this, 'Dashboard', {
      dashboardName: `${NAMESPACE}-${config.stage}`,
      defaultInterval: Duration.hours(3),
    });
    const wide = { width: 12, height: 6 };
    this.dashboard.addWidgets(
      new cw.GraphWidget({
        title: 'Training runs and accuracy by version',
        left: [
          search('trainingRuns', 'Sum', 'runs', Duration.hours(1)),
          props.stateMachine.metricSucceeded({ period: Duration.hours(1), label: 'executions succeeded' }),
          trainingFailures.with({ label: 'executions failed' }),
        ],
        right: [search('trainingAccuracy', 'Maximum', 'accuracy', Duration.hours(1))],
        rightYAxis: { min: 0, max: 1 },
        ...wide,
      }),
      new cw.GraphWidget({
        title: 'Devices per version and online',
        left: [search('devicesOnline', 'Maximum', 'devices online')],
        ...wide,
      }),
      new cw.GraphWidget({
        title: 'Inferences/min by version',
        left: [search('inferences', 'Sum', 'inferences/min')],
        ...wide,
      }),
      new cw.GraphWidget({
        title: 'Low-confidence rate and latency p99',
        left: [
          new cw.MathExpression({
            expression: `100 * SUM(${searchExpression('lowConfidence', 'Sum', Duration.minutes(1))}) / SUM(${searchExpression('inferences', 'Sum', Duration.minutes(1))})`,
            label: 'low-confidence %',
            period: Duration.minutes(1),
            usingMetrics: {},
          }),
        ],
        right: [search('latencyP99', 'Maximum', 'latency p99 (ms)')],
        ...wide,
      }),
      new cw.GraphWidget({
        title: 'Live accuracy and drift',
        left: [search('liveAccuracy', 'Average', 'live accuracy', Duration.minutes(5))],
        right: [search('drift', 'Maximum', 'drift (PSI)', Duration.minutes(5))],
        leftYAxis: { min: 0, max: 1 },
        ...wide,
      }),
      new cw.GraphWidget({
        title: 'Aggregator errors and DLQ depth',
        left: [
          search('aggregatorErrors', 'Sum', 'rejected messages', Duration.minutes(5)),
          ...aggregatorErrors,
        ],
        right: dlqDepth,
        ...wide,
      }),
      new cw.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 3 }),
    );
  }

  /** https link to this dashboard in the console of the stack's region. */
  dashboardUrl(): string {
    const region = Stack.of(this).region;
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`;
  }

  private alarm(
    id: string,
    metric: cw.IMetric,
    threshold: number,
    what: string,
    action: cwActions.SnsAction,
  ) {
    const alarm = new cw.Alarm(this, id, {
      alarmDescription: `${NAMESPACE}: ${what}`,
      metric,
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(action);
    this.alarms.push(alarm);
  }
}
