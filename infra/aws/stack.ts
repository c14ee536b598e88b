/**
 * The edgeloop production stack: storage, signing, tables, training, IoT and observability,
 * all named and wired from shared/topology.ts.
 */
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import type { Deployment } from '../../shared/schemas.ts';
import { ACCOUNT_STAGE_PARAMETER, deploymentParameter, NAMESPACE } from '../../shared/topology.ts';
import type { EdgeloopConfig } from './config.ts';
import { AnomalyEvents } from './constructs/anomaly-events.ts';
import type { EdgeloopResources } from './constructs/function-binding.ts';
import { DeviceComponent } from './constructs/greengrass.ts';
import { Iot } from './constructs/iot.ts';
import { Observability } from './constructs/observability.ts';
import { Rollout } from './constructs/rollout.ts';
import { Signing } from './constructs/signing.ts';
import { Storage } from './constructs/storage.ts';
import { Tables } from './constructs/tables.ts';
import { Training } from './constructs/training.ts';
import { acknowledge } from './nag.ts';

export interface EdgeloopStackProps extends StackProps {
  config: EdgeloopConfig;
}

export const IOT_ENDPOINT_COMMAND =
  'aws iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress --output text';

export class EdgeloopStack extends Stack {
  readonly config: EdgeloopConfig;
  readonly storage: Storage;
  readonly signing: Signing;
  readonly tables: Tables;
  readonly training: Training;
  readonly iot: Iot;
  readonly observability: Observability;
  readonly anomalyEvents: AnomalyEvents;
  readonly rollout: Rollout;
  readonly deviceComponent: DeviceComponent;

  constructor(scope: Construct, id: string, props: EdgeloopStackProps) {
    super(scope, id, {
      description: `${NAMESPACE} (${props.config.stage}): datasets in, models out to gateways`,
      ...props,
    });
    const { config } = props;
    this.config = config;

    this.storage = new Storage(this, 'Storage', config);
    this.signing = new Signing(this, 'Signing', config.stage);
    this.tables = new Tables(this, 'Tables', config.stage);
    const resources: EdgeloopResources = {
      buckets: { datasets: this.storage.datasets, models: this.storage.models },
      tables: this.tables.byKey,
      signing: this.signing,
    };

    const deadLetters = {
      ruleErrors: this.deadLetterQueue(
        'RuleErrorsDlq',
        'IoT rule actions that could not invoke an aggregator',
      ),
      aggregatorFailures: this.deadLetterQueue(
        'AggregatorFailuresDlq',
        'aggregator invocations that failed after retries',
      ),
      trainingTriggers: this.deadLetterQueue(
        'TrainingTriggersDlq',
        'dataset events that could not start training',
      ),
    };

    this.training = new Training(this, 'Training', {
      config,
      resources,
      eventsDeadLetters: deadLetters.trainingTriggers,
    });
    this.iot = new Iot(this, 'Iot', {
      config,
      resources,
      ruleDeadLetters: deadLetters.ruleErrors,
      aggregatorDeadLetters: deadLetters.aggregatorFailures,
    });
    this.rollout = new Rollout(this, 'Rollout', { config, resources });
    this.deviceComponent = new DeviceComponent(this, 'DeviceComponent', {
      tokenExchangeRole: this.iot.deviceRole,
      stage: config.stage,
    });
    this.anomalyEvents = new AnomalyEvents(this, 'AnomalyEvents', {
      config,
      recorder: this.iot.aggregators.events,
    });
    this.observability = new Observability(this, 'Observability', {
      config,
      stateMachine: this.training.stateMachine,
      aggregators: this.iot.aggregators,
      deadLetterQueues: deadLetters,
    });

    const deployment: Deployment = {
      stage: config.stage,
      region: this.region,
      thingPolicyName: this.iot.thingPolicy.ref,
      roleAlias: this.iot.roleAlias.ref,
      modelsBucket: this.storage.models.bucketName,
      datasetsBucket: this.storage.datasets.bucketName,
      signingKeyArn: this.signing.key.keyArn,
    };
    const parameter = new ssm.StringParameter(this, 'Deployment', {
      parameterName: deploymentParameter(config.stage),
      description: `${NAMESPACE} ${config.stage}: what edgeloop provision needs to set up a gateway`,
      stringValue: this.toJsonString(deployment),
    });

    // The account-and-region lock (shared/topology.ts): a second stage fails to create it.
    new ssm.StringParameter(this, 'AccountStage', {
      parameterName: ACCOUNT_STAGE_PARAMETER,
      description: `${NAMESPACE} runs one stage per account and region; this one is ${config.stage}`,
      stringValue: config.stage,
    });

    const outputs: Record<string, { value: string; description: string }> = {
      DatasetsBucket: { value: this.storage.datasets.bucketName, description: 'upload datasets here' },
      ModelsBucket: { value: this.storage.models.bucketName, description: 'published models' },
      DashboardUrl: { value: this.observability.dashboardUrl(), description: 'CloudWatch dashboard' },
      IotEndpointCommand: { value: IOT_ENDPOINT_COMMAND, description: 'prints the IoT data endpoint' },
      SigningKeyArn: { value: this.signing.key.keyArn, description: 'KMS key that signs manifests' },
      SigningPublicKeyCommand: {
        value: `{ echo "keyId: ${this.signing.key.keyArn}"; aws kms get-public-key --key-id ${this.signing.key.keyArn} --query PublicKey --output text | base64 -d | openssl pkey -pubin -inform DER; } > manifest-signing-public.pem`,
        description: 'writes the manifest verification key as PEM, named by the keyId its signatures carry',
      },
      DeploymentParameter: { value: parameter.parameterName, description: 'read by edgeloop provision' },
      ThingPolicyName: { value: this.iot.thingPolicy.ref, description: 'attach to gateway certificates' },
      RoleAlias: { value: this.iot.roleAlias.ref, description: 'IoT credentials provider role alias' },
      StateMachineArn: {
        value: this.training.stateMachine.stateMachineArn,
        description: 'training pipeline',
      },
      DeviceComponentArn: {
        value: this.deviceComponent.component.attrArn,
        description: 'Greengrass component of the gateway package (deploy it to core devices)',
      },
      AlarmTopicArn: { value: this.observability.alarmTopic.topicArn, description: 'subscribe to alarms' },
      AnomalyEventsTopicArn: {
        value: this.anomalyEvents.topic.topicArn,
        description: 'subscribe to anomaly events as they open (EventBridge: source edgeloop)',
      },
    };
    for (const [name, output] of Object.entries(outputs)) new CfnOutput(this, name, output);
  }

  private deadLetterQueue(id: string, holds: string): sqs.Queue {
    const queue = new sqs.Queue(this, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(
      queue,
      'AwsSolutions-SQS3',
      `This queue is itself a dead-letter queue (${holds}); it is watched by a depth alarm instead of having a DLQ of its own.`,
    );
    return queue;
  }
}
