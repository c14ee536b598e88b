/**
 * Staged rollout in AWS: the rollout controller Lambda on an EventBridge schedule. It reads
 * the registry and aggregates, publishes the fleet-wide or rollback notice (retained, on the
 * release and canary topics), records decisions, and starts retrains by copying a dataset to
 * a new key under the datasets prefix (which the dataset rule turns into a training run).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { rolloutSchedule, topicFilter } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge, wildcardFinding } from '../nag.ts';
import { handlerEntries } from '../paths.ts';
import { bindFunction, type EdgeloopResources } from './function-binding.ts';
import { nodeFunction } from './node-function.ts';

/** The retained notice topics of every model (release and canary), as IoT topic ARNs. */
export function noticeTopicArns(scope: Construct): string[] {
  const stack = Stack.of(scope);
  return (['release', 'canary'] as const).map((name) =>
    stack.formatArn({
      service: 'iot',
      resource: 'topic',
      resourceName: topicFilter(name).replaceAll('+', '*'),
    }),
  );
}

/** Lets a role publish retained release and canary notices (RetainPublish for the retain flag). */
export function grantPublishNotices(scope: Construct, role: iam.IRole, why: string): void {
  const arns = noticeTopicArns(scope);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['iot:Publish', 'iot:RetainPublish'], resources: arns }),
  );
  for (const arn of arns) acknowledge(role, wildcardFinding(scope, arn), why);
}

export interface RolloutProps {
  config: EdgeloopConfig;
  resources: EdgeloopResources;
}

export class Rollout extends Construct {
  readonly controller: nodejs.NodejsFunction;
  readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: RolloutProps) {
    super(scope, id);
    this.controller = nodeFunction(this, 'RolloutController', props.config, {
      description: 'edgeloop rollout controller: promote or roll back canaries, retrain on drift',
      entry: handlerEntries.rolloutController,
      memorySize: 512,
      timeout: Duration.seconds(50),
      // A missed tick is made up by the next one; no async retries piling up. Two runs at once
      // are harmless: notices are idempotent and decisions are conditional registry writes.
      extra: { retryAttempts: 0 },
    });
    bindFunction(this.controller, 'rolloutController', props.resources, {
      readBuckets: ['datasets', 'models'],
      // Retrains: a copy of the base dataset under a new dataset key.
      writeBuckets: ['datasets'],
      // Anomaly canaries: their events, and the gateways serving each version.
      readTables: ['registry', 'aggregates', 'events', 'fleet'],
      writeTables: ['registry'],
      // Its promote and rollback notices are signed with the manifest key.
      sign: true,
    });
    const role = this.controller.role as iam.Role;
    grantPublishNotices(
      this,
      role,
      'The controller publishes the fleet-wide or rollback notice of whichever model has a canary; the wildcard is the model-name segment of the notice topics only.',
    );
    this.schedule = new events.Rule(this, 'Schedule', {
      description: `runs the rollout controller every ${rolloutSchedule.awsRateMinutes} minute(s)`,
      schedule: events.Schedule.rate(Duration.minutes(rolloutSchedule.awsRateMinutes)),
      targets: [new targets.LambdaFunction(this.controller, { retryAttempts: 0 })],
    });
  }
}
