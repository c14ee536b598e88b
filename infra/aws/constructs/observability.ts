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
import {
  type DashboardPanel,
  dashboardPanels,
  EVENTS_METRICS_SERVICE,
  METRICS_NAMESPACE,
  metricNames,
  NAMESPACE,
} from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';

type MetricName = (typeof metricNames)[keyof typeof metricNames];
type Statistic = 'Sum' | 'Average' | 'Maximum';

/** How each metric reads on a graph: counts add up, levels average, tails take the maximum. */
const statisticOf: Record<MetricName, Statistic> = {
  [metricNames.inferences]: 'Sum',
  [metricNames.lowConfidence]: 'Sum',
  [metricNames.trainingRuns]: 'Sum',
  [metricNames.trainingFailures]: 'Sum',
  [metricNames.aggregatorErrors]: 'Sum',
  [metricNames.latencyP50]: 'Maximum',
  [metricNames.latencyP99]: 'Maximum',
  [metricNames.devicesOnline]: 'Maximum',
  [metricNames.outboxDepth]: 'Maximum',
  [metricNames.drift]: 'Maximum',
  [metricNames.trainingDurationMs]: 'Maximum',
  [metricNames.liveAccuracy]: 'Average',
  [metricNames.predictionMean]: 'Average',
  [metricNames.liveRmse]: 'Average',
  [metricNames.trainingAccuracy]: 'Average',
  [metricNames.confidenceMean]: 'Average',
  [metricNames.rolloutDecisions]: 'Sum',
  [metricNames.retrainsStarted]: 'Sum',
  [metricNames.anomalyEvents]: 'Sum',
  [metricNames.anomalyResults]: 'Sum',
};

/** A 0..1 level shares a panel with a count: it goes on the right axis. */
function onRightAxis(metrics: readonly string[], index: number): boolean {
  const name = metrics[index] as MetricName;
  return index > 0 && statisticOf[name] === 'Average' && statisticOf[metrics[0] as MetricName] === 'Sum';
}

/**
 * Every series of a topology metric, whatever its dimensions: the aggregators emit one per
 * (model, version), so a panel shows one line per model version.
 */
export function searchExpression(metric: MetricName, statistic: Statistic, period: Duration): string {
  return `SEARCH('Namespace="${METRICS_NAMESPACE}" MetricName="${metric}"', '${statistic}', ${period.toSeconds()})`;
}

function search(metric: MetricName, period = Duration.minutes(1)): cw.MathExpression {
  return new cw.MathExpression({
    expression: searchExpression(metric, statisticOf[metric], period),
    label: metric,
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

    // The fleet-wide series of the events function (shared/topology.ts EVENTS_METRICS_SERVICE).
    this.alarm(
      'AnomalyEventsPerHour',
      new cw.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: metricNames.anomalyEvents,
        dimensionsMap: { service: EVENTS_METRICS_SERVICE },
        period: Duration.hours(1),
        statistic: 'Sum',
      }),
      config.anomalyEventsPerHourThreshold,
      'gateways opened many anomaly events within an hour',
      notify,
    );

    const fiveMinutes = Duration.minutes(5);
    const aggregatorErrors = Object.entries(props.aggregators).map(([name, fn]) =>
      this.alarm(
        `${name}Errors`,
        fn.metricErrors({ period: fiveMinutes, statistic: 'Sum' }),
        config.aggregatorErrorThreshold,
        `the ${name} aggregator fails`,
        notify,
      ).with({ label: `${name} errors` }),
    );
    const dlqDepth = Object.entries(props.deadLetterQueues).map(([name, queue]) =>
      this.alarm(
        `${name}DeadLetters`,
        queue.metricApproximateNumberOfMessagesVisible({ period: fiveMinutes, statistic: 'Maximum' }),
        config.dlqDepthThreshold,
        `${name} dead letters are waiting`,
        notify,
      ).with({ label: `${name} dead letters` }),
    );

    this.dashboard = new cw.Dashboard(this, 'Dashboard', {
      dashboardName: `${NAMESPACE}-${config.stage}`,
      defaultInterval: Duration.hours(3),
    });
    // The panels, titles and metric names are the topology's, in its order: the local
    // dashboard page renders the same list.
    const extras: Partial<Record<DashboardPanel, { left?: cw.IMetric[]; right?: cw.IMetric[] }>> = {
      training: {
        left: [
          props.stateMachine.metricStarted({ period: Duration.hours(1), label: 'executions started' }),
          props.stateMachine.metricSucceeded({ period: Duration.hours(1), label: 'executions succeeded' }),
          trainingFailures.with({ label: 'executions failed' }),
        ],
      },
      lowConfidence: {
        left: [
          new cw.MathExpression({
            expression: `100 * SUM(${searchExpression('LowConfidenceResults', 'Sum', Duration.minutes(1))}) / SUM(${searchExpression('Inferences', 'Sum', Duration.minutes(1))})`,
            label: 'low-confidence % (fleet)',
            period: Duration.minutes(1),
            usingMetrics: {},
          }),
        ],
      },
      errors: { left: aggregatorErrors, right: dlqDepth },
    };
    const panels = Object.entries(dashboardPanels) as [
      DashboardPanel,
      (typeof dashboardPanels)[DashboardPanel],
    ][];
    this.dashboard.addWidgets(
      ...panels.map(([key, panel]) => {
        const searches = panel.metrics.map((name) => search(name));
        const right = [
          ...searches.filter((_, index) => onRightAxis(panel.metrics, index)),
          ...(extras[key]?.right ?? []),
        ];
        return new cw.GraphWidget({
          title: panel.title,
          left: [
            ...searches.filter((_, index) => !onRightAxis(panel.metrics, index)),
            ...(extras[key]?.left ?? []),
          ],
          ...(right.length > 0 ? { right } : {}),
          width: 8,
          height: 6,
        });
      }),
      new cw.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 3 }),
    );
  }

  /** https link to this dashboard in the console of the stack's region. */
  dashboardUrl(): string {
    const region = Stack.of(this).region;
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`;
  }

  /** Alarms on `metric` (to the SNS topic) and hands the metric back for the dashboard. */
  private alarm(
    id: string,
    metric: cw.Metric,
    threshold: number,
    what: string,
    action: cwActions.SnsAction,
  ): cw.Metric {
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
    return metric;
  }
}
