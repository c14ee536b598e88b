/**
 * The training pipeline: an EventBridge rule on "Object Created" in the datasets bucket
 * (filtered by the topology's prefix and suffix) starts a Step Functions execution of
 * validate -> train -> gate -> publish -> notify. Every step runs the same container image
 * (tfjs-node inside), with the step chosen by the image CMD. Any failure is caught,
 * recorded in the registry by recordFailure, and ends in a Fail state.
 */
import { Duration, IgnoreMode, Stack } from 'aws-cdk-lib';
import { DockerImageAsset, type DockerImageAssetOptions, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { datasetKeys } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge, wildcardFinding } from '../nag.ts';
import { repoRoot, trainDockerfile } from '../paths.ts';
import {
  type Access,
  bindFunction,
  type EdgeloopResources,
  functionBasics,
  retentionDays,
} from './function-binding.ts';
import { ManagedTraining } from './managed-training.ts';
import { grantPublishNotices } from './rollout.ts';

/** The named handlers of functions/training-steps.ts, in pipeline order. */
export const trainingSteps = [
  'validate',
  'train',
  'collectTrain',
  'gate',
  'publish',
  'notify',
  'recordFailure',
] as const;
export type TrainingStep = (typeof trainingSteps)[number];

/** What each step may touch. Only publish signs; only notify publishes to IoT. */
const stepAccess: Record<TrainingStep, Access> = {
  // Claims the S3 object version (idempotency; freed again if no version could be allocated)
  // and allocates the version.
  validate: { readTables: ['registry'], writeTables: ['registry', 'idempotency'] },
  // Reads edgeloop.json, the dataset (by version id) and the current release; writes the model files.
  train: {
    readBuckets: ['datasets', 'models'],
    writeBuckets: ['models'],
    readTables: ['registry'],
    writeTables: ['registry'],
  },
  // Reads back what the managed train job stored under runs/ (train-state.json).
  collectTrain: { readBuckets: ['datasets'] },
  gate: { readTables: ['registry'], writeTables: ['registry'] },
  // Signs and stores the manifest (reading it back when a retry finds its own earlier write).
  publish: {
    readBuckets: ['models'],
    writeBuckets: ['models'],
    readTables: ['registry'],
    writeTables: ['registry'],
    sign: true,
  },
  // Only the retained release notice (granted below).
  notify: {},
  // Records the reason, and frees the idempotency claim of a failed (not rejected) run.
  recordFailure: { readTables: ['registry'], writeTables: ['registry', 'idempotency'] },
};

/**
 * Task-level retries beyond Lambda's own service errors. The steps are retry-safe: validate
 * frees its idempotency claim when it cannot allocate a version, and train/publish accept
 * their own earlier immutable writes (S3 412). Train gets one retry: it is the long one.
 */
const stepRetries: Record<TrainingStep, number> = {
  validate: 2,
  train: 1,
  collectTrain: 2,
  gate: 2,
  publish: 2,
  notify: 3,
  recordFailure: 2,
};

/** The image build context is the repository; only what the Dockerfile copies is staged. */
export const trainImageContext = [
  '*',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!shared',
  '!functions',
  '!infra',
  'infra/*',
  '!infra/aws',
  'infra/aws/*',
  '!infra/aws/train-image',
];

/** One image for every step and the managed job: same source, same asset (built once). */
const trainImage: DockerImageAssetOptions = {
  file: trainDockerfile,
  platform: Platform.LINUX_AMD64,
  ignoreMode: IgnoreMode.DOCKER,
  exclude: trainImageContext,
};

/** The S3 key filters, in EventBridge wildcard syntax, built from the topology (any one matches). */
export const datasetKeyWildcards = datasetKeys.triggerSuffixes.map(
  (suffix) => `${datasetKeys.prefix}*${suffix}`,
);

export interface TrainingProps {
  config: EdgeloopConfig;
  resources: EdgeloopResources;
  /** Where EventBridge puts events it could not deliver to the state machine. */
  eventsDeadLetters: sqs.IQueue;
}

export class Training extends Construct {
  readonly steps: Record<TrainingStep, lambda.DockerImageFunction>;
  readonly stateMachine: sfn.StateMachine;
  readonly rule: events.Rule;
  readonly managed: ManagedTraining;

  constructor(scope: Construct, id: string, props: TrainingProps) {
    super(scope, id);
    const { config, resources } = props;
    const retention = retentionDays(config.logRetentionDays);

    this.steps = Object.fromEntries(
      trainingSteps.map((step) => [step, this.stepFunction(step, config, resources, retention)]),
    ) as Record<TrainingStep, lambda.DockerImageFunction>;

    // notify publishes the retained release notice (fleet-wide or canary).
    grantPublishNotices(
      this,
      this.steps.notify.role as iam.Role,
      'notify publishes the release notice of whichever model was trained; the wildcard is the model-name segment of the notice topics only.',
    );

    const failed = new sfn.Fail(this, 'TrainingFailed', {
      comment: 'the reason is recorded in the registry by recordFailure',
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });
    const recordFailure = this.invoke('recordFailure', failed).next(failed);
    const done = new sfn.Succeed(this, 'Released');
    const skipped = new sfn.Succeed(this, 'Skipped', { comment: 'not a dataset key, or a repeated event' });
    const rejected = new sfn.Succeed(this, 'RejectedByGate', { comment: 'gate recorded it in the registry' });

    this.managed = new ManagedTraining(this, 'Managed', {
      config,
      resources,
      image: new DockerImageAsset(this, 'TrainImage', { directory: repoRoot, ...trainImage }),
      trainAccess: stepAccess.train,
      retention,
    });
    const trainManaged = this.managed.submit(this, 'TrainManaged');
    // The job already retries nothing on its own: one more attempt, as for the Lambda train.
    trainManaged.addRetry({
      errors: ['States.ALL'],
      maxAttempts: stepRetries.train,
      interval: Duration.minutes(1),
      backoffRate: 2,
      jitterStrategy: sfn.JitterType.FULL,
    });
    trainManaged.addCatch(recordFailure, { resultPath: '$.error' });

    // validate -> (skipped?) -> train on Lambda, or on the managed engine then collectTrain
    // -> gate -> (passed?) -> publish -> notify
    const gate = this.invoke('gate', recordFailure).next(
      new sfn.Choice(this, 'GatePassed')
        .when(
          sfn.Condition.booleanEquals('$.gate.passed', true),
          this.invoke('publish', recordFailure).next(this.invoke('notify', recordFailure)).next(done),
        )
        .otherwise(rejected),
    );
    const pipeline = sfn.Chain.start(this.invoke('validate', recordFailure)).next(
      new sfn.Choice(this, 'IsNewDataset')
        .when(sfn.Condition.isPresent('$.skipped'), skipped)
        .otherwise(
          new sfn.Choice(this, 'TrainEngine', { comment: 'validate chose it by dataset size and config' })
            .when(
              sfn.Condition.stringEquals('$.engine', 'managed'),
              trainManaged.next(this.invoke('collectTrain', recordFailure)).next(gate),
            )
            .otherwise(this.invoke('train', recordFailure).next(gate)),
        ),
    );

    this.stateMachine = new sfn.StateMachine(this, 'Pipeline', {
      definitionBody: sfn.DefinitionBody.fromChainable(pipeline),
      // Room for a managed job's whole timeout, plus its wait for capacity and the other steps.
      timeout: Duration.hours(2).plus(this.managed.timeout),
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, 'PipelineLogs', { retention }),
        level: sfn.LogLevel.ALL,
        includeExecutionData: true,
      },
    });
    acknowledge(
      this.stateMachine,
      'AwsSolutions-IAM5[Resource::*]',
      'Step Functions log delivery and X-Ray tracing APIs (logs:CreateLogDelivery, xray:PutTraceSegments, ...) do not support resource-level permissions.',
    );
    acknowledge(
      this.stateMachine,
      wildcardFinding(
        this,
        Stack.of(this).formatArn({ service: 'batch', resource: 'job-definition', resourceName: '*' }),
      ),
      "Step Functions' Batch integration grants batch:SubmitJob on job definitions by name and any revision (name:N); the job queue grant limits it to the managed training queue.",
    );
    for (const step of trainingSteps) {
      acknowledge(
        this.stateMachine,
        wildcardFinding(this, `${this.steps[step].functionArn}:*`),
        `The state machine invokes the ${step} function by qualified ARN (versions and aliases), which is this one function only.`,
      );
    }

    this.rule = new events.Rule(this, 'DatasetUploaded', {
      description: `starts training when a dataset object or a ${datasetKeys.successMarker} marker lands under ${datasetKeys.prefix}`,
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [resources.buckets.datasets.bucketName] },
          object: { key: datasetKeyWildcards.flatMap((wildcard) => events.Match.wildcard(wildcard)) },
        },
      },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          deadLetterQueue: props.eventsDeadLetters,
          retryAttempts: 3,
          maxEventAge: Duration.hours(2),
        }),
      ],
    });
  }

  private stepFunction(
    step: TrainingStep,
    config: EdgeloopConfig,
    resources: EdgeloopResources,
    retention: logs.RetentionDays,
  ): lambda.DockerImageFunction {
    const id = `${step[0]?.toUpperCase()}${step.slice(1)}Step`;
    const { role, logGroup } = functionBasics(this, id, retention);
    const heavy = step === 'train';
    const fn = new lambda.DockerImageFunction(this, id, {
      description: `edgeloop training step: ${step}`,
      code: lambda.DockerImageCode.fromImageAsset(repoRoot, {
        ...trainImage,
        cmd: [`dist/training-steps.${step}`],
      }),
      architecture: lambda.Architecture.X86_64,
      memorySize: heavy ? config.trainMemoryMb : 1024,
      timeout: heavy ? Duration.minutes(config.trainTimeoutMinutes) : Duration.minutes(2),
      role,
      logGroup,
    });
    bindFunction(fn, 'train', resources, stepAccess[step], `-${step}`);
    return fn;
  }

  private invoke(step: TrainingStep, onError: sfn.IChainable): tasks.LambdaInvoke {
    const task = new tasks.LambdaInvoke(this, `${step[0]?.toUpperCase()}${step.slice(1)}`, {
      lambdaFunction: this.steps[step],
      payloadResponseOnly: true,
      retryOnServiceExceptions: true,
    });
    if (stepRetries[step] > 0) {
      // Bad input never heals: do not retry it. Anything else gets backoff with jitter.
      task.addRetry({ errors: ['InputError'], maxAttempts: 0 });
      task.addRetry({
        errors: ['States.ALL'],
        maxAttempts: stepRetries[step],
        interval: Duration.seconds(5),
        backoffRate: 2,
        jitterStrategy: sfn.JitterType.FULL,
      });
    }
    task.addCatch(onError, { resultPath: '$.error' });
    return task;
  }
}
