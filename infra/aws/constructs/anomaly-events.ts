/**
 * Where gateways' anomaly events go beyond the events store: an SNS topic that carries one
 * message per event opened (for people and pagers), and the account's default EventBridge
 * bus, which gets each opening and closing (source `edgeloop`) for rules to route anywhere.
 * IoT rules have no EventBridge action, so the events function puts them there itself.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { envVars, NAMESPACE } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';

export interface AnomalyEventsProps {
  config: EdgeloopConfig;
  /** The IoT rule `events` function. */
  recorder: lambda.Function;
}

export class AnomalyEvents extends Construct {
  readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: AnomalyEventsProps) {
    super(scope, id);
    const { config, recorder } = props;
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: `${NAMESPACE} ${config.stage} anomaly events`,
      enforceSSL: true,
    });
    acknowledge(
      this.topic,
      'AwsSolutions-SNS2',
      'Event notices carry a gateway and series name, times, a score and sensor names, no readings; the AWS-managed SNS key cannot be used by the publishing function cross-service, and a customer key would cost more than the data is worth.',
    );
    if (config.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    this.topic.grantPublish(recorder);
    const bus = Stack.of(this).formatArn({
      service: 'events',
      resource: 'event-bus',
      resourceName: 'default',
    });
    recorder.addToRolePolicy(new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [bus] }));
    recorder.addEnvironment(envVars.eventsTopicArn, this.topic.topicArn);
    recorder.addEnvironment(envVars.eventBusName, 'default');
  }
}
