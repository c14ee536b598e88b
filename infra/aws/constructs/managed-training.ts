/**
 * The managed training engine: the train step for datasets beyond Lambda's 15 minutes and
 * 10 GB, as an AWS Batch job on Fargate running the same training image
 * (functions/train-task.ts, chosen by the image entrypoint's `train-task` command). The state
 * machine submits it with Step Functions' `.sync` integration and waits for it; the job stores
 * its outcome where the collectTrain step reads it.
 *
 * Networking costs nothing at rest: a VPC of public subnets with no NAT gateway (a job gets a
 * public IP only to pull its image and write logs) and gateway endpoints that keep S3 and
 * DynamoDB traffic off the internet.
 */
import { Duration, Size } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { DockerImageAsset } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { datasetKeys, NAMESPACE } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge, wildcardFinding } from '../nag.ts';
import { type Access, type EdgeloopResources, environmentOf, grantAccess } from './function-binding.ts';

/** The image command that runs the train step outside Lambda (see train-image/entrypoint.sh). */
export const MANAGED_TRAIN_COMMAND = 'train-task';

/** The environment variable that carries the run state into the job. */
export const RUN_STATE_VARIABLE = 'EDGELOOP_STATE';

export interface ManagedTrainingProps {
  config: EdgeloopConfig;
  resources: EdgeloopResources;
  image: DockerImageAsset;
  /** What the Lambda train step may touch; the job gets the same, plus its run-state object. */
  trainAccess: Access;
  retention: logs.RetentionDays;
}

export class ManagedTraining extends Construct {
  readonly vpc: ec2.Vpc;
  readonly queue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly jobRole: iam.Role;
  /** How long one job may run. */
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: ManagedTrainingProps) {
    super(scope, id);
    const { config, resources } = props;
    this.timeout = Duration.hours(config.managedTrainTimeoutHours);

    this.vpc = new ec2.Vpc(this, 'Network', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'jobs', subnetType: ec2.SubnetType.PUBLIC }],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
      flowLogs: {
        rejected: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(
            new logs.LogGroup(this, 'FlowLogs', { retention: props.retention }),
          ),
          trafficType: ec2.FlowLogTrafficType.REJECT,
        },
      },
    });
    // Jobs only call out (S3, DynamoDB, ECR, CloudWatch Logs); nothing may call in.
    const jobs = new ec2.SecurityGroup(this, 'Jobs', {
      vpc: this.vpc,
      description: `${NAMESPACE} training jobs: outbound only`,
      allowAllOutbound: true,
    });

    const environment = new batch.FargateComputeEnvironment(this, 'Engine', {
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroups: [jobs],
      maxvCpus: config.managedMaxVcpus,
    });
    this.queue = new batch.JobQueue(this, 'Queue', {
      computeEnvironments: [{ computeEnvironment: environment, order: 1 }],
    });

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: `${NAMESPACE} managed train job: what the train step may touch, and its run state`,
    });
    const executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: `${NAMESPACE} managed train job: pull the training image and write its log`,
    });
    const logGroup = new logs.LogGroup(this, 'JobLogs', { retention: props.retention });
    const container = new batch.EcsFargateContainerDefinition(this, 'TrainContainer', {
      image: ecs.ContainerImage.fromDockerImageAsset(props.image),
      command: [MANAGED_TRAIN_COMMAND],
      cpu: config.managedTrainVcpu,
      memory: Size.gibibytes(config.managedTrainMemoryGb),
      environment: environmentOf('train', resources, '-managed'),
      jobRole: this.jobRole,
      executionRole,
      logging: ecs.LogDriver.awsLogs({ streamPrefix: 'train', logGroup }),
      assignPublicIp: true,
      fargateCpuArchitecture: ecs.CpuArchitecture.X86_64,
      fargatePlatformVersion: ecs.FargatePlatformVersion.LATEST,
    });
    this.jobDefinition = new batch.EcsJobDefinition(this, 'TrainJob', {
      container,
      timeout: this.timeout,
      propagateTags: true,
    });

    grantAccess(this.jobRole, container, 'train', resources, props.trainAccess);
    // trainManaged stores its outcome under runs/ in the datasets bucket for collectTrain.
    const runStates = resources.buckets.datasets.arnForObjects(`${datasetKeys.runStatePrefix}*`);
    this.jobRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [runStates] }),
    );
    acknowledge(
      this.jobRole,
      wildcardFinding(this, runStates),
      'The managed train job writes one run-state object per model version under runs/, whose key is chosen at run time.',
    );
    acknowledge(
      executionRole,
      'AwsSolutions-IAM5[Resource::*]',
      'ecr:GetAuthorizationToken, which pulling the image needs, supports no resource-level permissions.',
    );
  }

  /**
   * The state that submits the job with `.sync` and waits for it. The run state goes in as the
   * job's environment; the state's output is its input (collectTrain reads the outcome).
   */
  submit(scope: Construct, id: string): tasks.BatchSubmitJob {
    return new tasks.BatchSubmitJob(scope, id, {
      jobName: `${NAMESPACE}-train`,
      jobQueueArn: this.queue.jobQueueArn,
      jobDefinitionArn: this.jobDefinition.jobDefinitionArn,
      containerOverrides: {
        environment: { [RUN_STATE_VARIABLE]: sfn.JsonPath.jsonToString(sfn.JsonPath.objectAt('$')) },
      },
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      resultPath: sfn.JsonPath.DISCARD,
      // The job's own timeout, plus time to get Fargate capacity and pull the image.
      taskTimeout: sfn.Timeout.duration(this.timeout.plus(Duration.hours(1))),
    });
  }
}
