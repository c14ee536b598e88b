/**
 * Template assertions over the synthesized stack (built exactly as `cdk synth` builds it, with
 * cdk-nag AwsSolutions registered): every resource the stack declares, its least-privilege
 * grants, and a nag run with no unacknowledged findings.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { Role } from 'aws-cdk-lib/aws-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_NODE_FLAGS } from '../../device/packaging/node-flags.ts';
import { resolveConfig } from '../../infra/aws/config.ts';
import { trainingSteps } from '../../infra/aws/constructs/training.ts';
import { acknowledge, MIN_REASON_LENGTH, renderCfnValue } from '../../infra/aws/nag.ts';
import { InputError } from '../../shared/errors.ts';
import {
  dashboardPanels,
  datasetKeys,
  deploymentParameter,
  EVENTS_METRICS_SERVICE,
  envVars,
  METRICS_NAMESPACE,
  metricNames,
  rolloutSchedule,
  tables,
  topicFor,
} from '../../shared/topology.ts';
import {
  type CfnResource,
  logicalId,
  policyStatements,
  referencedId,
  resourcesOfType,
  type Synthesized,
  synthesize,
} from './synth.ts';

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize();
});
afterAll(() => synth.dispose());

const isImageFunction = (resource: CfnResource) => resource.Properties?.PackageType === 'Image';

describe('storage', () => {
  it('keeps datasets and models in versioned, encrypted, private, access-logged buckets', () => {
    // Prepare
    const dataBucket = {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: { DestinationBucketName: Match.anyValue() },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
          }),
        ]),
      },
    };

    // Act
    const found = synth.template.findResources('AWS::S3::Bucket', {
      Properties: Match.objectLike(dataBucket),
    });

    // Assess
    synth.template.resourceCountIs('AWS::S3::Bucket', 3);
    expect(Object.keys(found)).toHaveLength(2);
  });

  it('sends every bucket access log to the log bucket, which expires them', () => {
    const [logBucketId] = Object.keys(
      synth.template.findResources('AWS::S3::Bucket', {
        Properties: { LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 90 })] } },
      }),
    );
    const targets = resourcesOfType(synth.resources, 'AWS::S3::Bucket')
      .map(
        ([, bucket]) =>
          (bucket.Properties?.LoggingConfiguration as { DestinationBucketName?: unknown })
            ?.DestinationBucketName,
      )
      .filter(Boolean)
      .map(referencedId);
    expect(targets).toEqual([logBucketId, logBucketId]);
  });

  it('enables EventBridge delivery on exactly the datasets bucket', () => {
    const found = synth.template.findResources('AWS::S3::Bucket', {
      Properties: { NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } } },
    });
    expect(Object.keys(found)).toEqual([logicalId(synth.stack.storage.datasets)]);
  });

  it('denies non-TLS requests on all three buckets', () => {
    const policies = synth.template.findResources('AWS::S3::BucketPolicy', {
      Properties: {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      },
    });
    expect(Object.keys(policies)).toHaveLength(3);
  });
});

interface KeyPolicyStatement {
  Action: string | string[];
  Principal: unknown;
}
/** An IAM action pattern (`kms:Get*`) as a regular expression. */
const wildcard = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`);

describe('signing', () => {
  it('is an asymmetric P-256 signing key', () => {
    synth.template.hasResourceProperties('AWS::KMS::Key', {
      KeySpec: 'ECC_NIST_P256',
      KeyUsage: 'SIGN_VERIFY',
    });
  });

  it('lets only the signers use the key, and only to sign: the publish step (manifests, release notices) and the rollout controller (its notices)', () => {
    // Act
    const kmsStatements = policyStatements(synth.resources).filter((s) =>
      s.Action.some((a) => a.startsWith('kms:')),
    );
    const publishRole = logicalId(synth.stack.training.steps.publish.role as Role);
    const controllerRole = logicalId(synth.stack.rollout.controller.role as Role);

    // Assess
    expect(kmsStatements).toHaveLength(2);
    for (const statement of kmsStatements) expect(statement.Action).toEqual(['kms:Sign']);
    expect(kmsStatements.flatMap((statement) => statement.roles).sort()).toEqual(
      [publishRole, controllerRole].sort(),
    );
  });

  it('keeps kms:Sign out of the account delegation in the key policy: only the two signing roles are named', () => {
    // Act
    const [[, key] = []] = resourcesOfType(synth.resources, 'AWS::KMS::Key');
    const policy = key?.Properties?.KeyPolicy as { Statement: KeyPolicyStatement[] } | undefined;
    const statements = policy?.Statement ?? [];
    const actionsOf = (statement: KeyPolicyStatement) => [statement.Action].flat();
    const signers = statements.filter((statement) =>
      actionsOf(statement).some((action) => 'kms:Sign'.match(wildcard(action))),
    );
    const publishRole = logicalId(synth.stack.training.steps.publish.role as Role);
    const controllerRole = logicalId(synth.stack.rollout.controller.role as Role);

    // Assess: no `kms:*` for the account root, and Sign only for the two roles by ARN.
    expect(statements.flatMap(actionsOf)).not.toContain('kms:*');
    expect(signers.map((statement) => actionsOf(statement))).toEqual([['kms:Sign'], ['kms:Sign']]);
    expect(signers.map((statement) => JSON.stringify(statement.Principal)).sort()).toEqual(
      [publishRole, controllerRole]
        .map((role) => JSON.stringify({ AWS: { 'Fn::GetAtt': [role, 'Arn'] } }))
        .sort(),
    );
    expect(statements.flatMap(actionsOf)).toContain('kms:Get*');
  });
});

describe('training', () => {
  const definition = () => {
    const [[, machine] = []] = resourcesOfType(synth.resources, 'AWS::StepFunctions::StateMachine');
    return JSON.parse(renderCfnValue(machine?.Properties?.DefinitionString)) as {
      StartAt: string;
      States: Record<
        string,
        {
          Type: string;
          Next?: string;
          Default?: string;
          Choices?: { Next: string }[];
          Retry?: { ErrorEquals: string[]; MaxAttempts?: number }[];
          Catch?: { Next: string }[];
        }
      >;
    };
  };

  /** The states a new dataset passes on one engine when the gate passes. */
  const happyPath = (engine: 'lambda' | 'managed') => {
    const { StartAt, States } = definition();
    const order: string[] = [];
    for (let state: string | undefined = StartAt; state; ) {
      order.push(state);
      const current: (typeof States)[string] | undefined = States[state];
      // A new dataset takes IsNewDataset's default; the engine picks TrainEngine's rule
      // (managed) or default (lambda); a passing gate takes GatePassed's rule.
      const takeDefault: boolean =
        state === 'IsNewDataset' || (state === 'TrainEngine' && engine === 'lambda');
      state =
        current?.Type === 'Choice'
          ? takeDefault
            ? current.Default
            : current.Choices?.[0]?.Next
          : current?.Next;
    }
    return order;
  };

  it('runs validate, train, gate, publish and notify in order, then succeeds', () => {
    // Act
    const order = happyPath('lambda');

    // Assess
    expect(order).toEqual([
      'Validate',
      'IsNewDataset',
      'TrainEngine',
      'Train',
      'Gate',
      'GatePassed',
      'Publish',
      'Notify',
      'Released',
    ]);
    expect(definition().States.Released?.Type).toBe('Succeed');
  });

  it('trains on the managed engine when validate chose it, then collects the outcome and gates it', () => {
    // Act
    const order = happyPath('managed');
    const { States } = definition();

    // Assess
    expect(order.slice(0, 6)).toEqual([
      'Validate',
      'IsNewDataset',
      'TrainEngine',
      'TrainManaged',
      'CollectTrain',
      'Gate',
    ]);
    expect(order.at(-1)).toBe('Released');
    expect(States.TrainEngine?.Choices).toEqual([
      { Variable: '$.engine', StringEquals: 'managed', Next: 'TrainManaged' },
    ]);
    const submit = States.TrainManaged as unknown as {
      Resource: string;
      ResultPath: unknown;
      Parameters: { ContainerOverrides: { Environment: { Name: string; 'Value.$': string }[] } };
      Catch: { Next: string }[];
    };
    // `.sync`: the state waits for the job; the run state goes in as the job's environment.
    expect(submit.Resource).toMatch(/:states:::batch:submitJob\.sync$/);
    expect(submit.ResultPath).toBeNull();
    expect(submit.Parameters.ContainerOverrides.Environment).toEqual([
      { Name: 'EDGELOOP_STATE', 'Value.$': 'States.JsonToString($)' },
    ]);
    expect(submit.Catch.map((c) => c.Next)).toEqual(['RecordFailure']);
  });

  it('runs the managed train job on Fargate from the same image, with the train-task command', () => {
    synth.template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      Type: 'managed',
      ComputeResources: Match.objectLike({ Type: 'FARGATE', MaxvCpus: 16 }),
    });
    synth.template.hasResourceProperties('AWS::Batch::JobDefinition', {
      PlatformCapabilities: ['FARGATE'],
      Timeout: { AttemptDurationSeconds: 8 * 3600 },
      ContainerProperties: Match.objectLike({
        Command: ['train-task'],
        ResourceRequirements: Match.arrayWith([
          { Type: 'MEMORY', Value: '16384' },
          { Type: 'VCPU', Value: '4' },
        ]),
        Environment: Match.arrayWith([
          Match.objectLike({ Name: 'EDGELOOP_DATASETS_BUCKET' }),
          Match.objectLike({ Name: 'EDGELOOP_MODELS_BUCKET' }),
        ]),
        NetworkConfiguration: { AssignPublicIp: 'ENABLED' },
      }),
    });
    const [[, job] = []] = resourcesOfType(synth.resources, 'AWS::Batch::JobDefinition');
    const [[, train] = []] = resourcesOfType(synth.resources, 'AWS::Lambda::Function').filter(([, fn]) =>
      isImageFunction(fn),
    );
    const tagOf = (uri: unknown) => JSON.stringify(uri).match(/:([0-9a-f]{64})/)?.[1];
    const jobImage = (job?.Properties?.ContainerProperties as { Image?: unknown } | undefined)?.Image;
    const trainImage = (train?.Properties?.Code as { ImageUri?: unknown } | undefined)?.ImageUri;
    expect(tagOf(jobImage)).toBeDefined();
    expect(tagOf(jobImage)).toBe(tagOf(trainImage));
    // No NAT gateway: jobs reach S3 and DynamoDB through gateway endpoints.
    synth.template.resourceCountIs('AWS::EC2::NatGateway', 0);
    synth.template.resourceCountIs('AWS::EC2::VPCEndpoint', 2);
  });

  it("gives the managed job the train step's grants plus its run state, and no signing", () => {
    // Prepare
    const jobRole = logicalId(synth.stack.training.managed.jobRole);
    const trainRole = logicalId(synth.stack.training.steps.train.role as Role);
    const actionsOf = (role: string) =>
      policyStatements(synth.resources)
        .filter((statement) => statement.roles.includes(role))
        .flatMap((statement) => statement.Action);

    // Act
    const job = actionsOf(jobRole);
    const datasetWrites = policyStatements(synth.resources).filter(
      (statement) => statement.roles.includes(jobRole) && statement.Action.includes('s3:PutObject'),
    );

    // Assess
    expect(new Set(job)).toEqual(new Set([...actionsOf(trainRole).filter((a) => !a.startsWith('logs:'))]));
    expect(job.some((action) => action.startsWith('kms:'))).toBe(false);
    expect(JSON.stringify(datasetWrites.map((statement) => statement.Resource))).toContain('/runs/*');
  });

  it('ends skipped events and gate rejections as successes without publishing', () => {
    const { States } = definition();
    expect(States.IsNewDataset?.Choices).toEqual([
      { Variable: '$.skipped', IsPresent: true, Next: 'Skipped' },
    ]);
    expect(States.GatePassed?.Choices).toEqual([
      { Variable: '$.gate.passed', BooleanEquals: true, Next: 'Publish' },
    ]);
    expect(States.GatePassed?.Default).toBe('RejectedByGate');
    expect([States.Skipped?.Type, States.RejectedByGate?.Type]).toEqual(['Succeed', 'Succeed']);
  });

  it('retries every step except on bad input, and records any failure before failing', () => {
    const { States } = definition();
    const retriesAll = (step: string) =>
      (States[step]?.Retry ?? []).find((retry) => retry.ErrorEquals.includes('States.ALL'))?.MaxAttempts ?? 0;
    for (const step of ['Validate', 'Train', 'CollectTrain', 'Gate', 'Publish', 'Notify']) {
      expect(States[step]?.Retry).toContainEqual(
        expect.objectContaining({ ErrorEquals: expect.arrayContaining(['Lambda.ServiceException']) }),
      );
      expect(States[step]?.Catch?.map((c) => c.Next)).toEqual(['RecordFailure']);
    }
    for (const step of ['Validate', 'Train', 'Gate', 'Publish', 'Notify', 'RecordFailure']) {
      // InputError is listed before States.ALL, so bad input is never retried.
      const retries = (States[step]?.Retry ?? []).map((retry) => retry.ErrorEquals.join());
      expect(retries.indexOf('InputError')).toBeLessThan(retries.indexOf('States.ALL'));
      expect(States[step]?.Retry).toContainEqual({ ErrorEquals: ['InputError'], MaxAttempts: 0 });
      expect(retriesAll(step)).toBeGreaterThan(0);
    }
    expect(retriesAll('Train')).toBe(1);
    expect(States.RecordFailure?.Next).toBe('TrainingFailed');
    expect(States.RecordFailure?.Catch?.map((c) => c.Next)).toEqual(['TrainingFailed']);
    expect(States.TrainingFailed?.Type).toBe('Fail');
  });

  it('logs every execution event and traces with X-Ray', () => {
    synth.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
  });

  it('runs each step as the same container image with the step handler as CMD', () => {
    const images = resourcesOfType(synth.resources, 'AWS::Lambda::Function').filter(([, fn]) =>
      isImageFunction(fn),
    );
    const commands = images.map(
      ([, fn]) => (fn.Properties?.ImageConfig as { Command: string[] } | undefined)?.Command,
    );
    const uris = new Set(
      images.map(([, fn]) =>
        JSON.stringify((fn.Properties?.Code as { ImageUri: unknown } | undefined)?.ImageUri),
      ),
    );
    expect(commands.sort()).toEqual(trainingSteps.map((step) => [`dist/training-steps.${step}`]).sort());
    expect(uris.size).toBe(1);
  });

  it('gives the train step the configured memory and the full Lambda timeout', () => {
    synth.template.hasResourceProperties('AWS::Lambda::Function', {
      ImageConfig: { Command: ['dist/training-steps.train'] },
      MemorySize: 3008,
      Timeout: 900,
      Architectures: ['x86_64'],
    });
  });

  it('starts on Object Created in the datasets bucket, with retries and a dead-letter queue', () => {
    synth.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: {
          bucket: { name: [{ Ref: logicalId(synth.stack.storage.datasets) }] },
          object: Match.anyValue(),
        },
      },
      Targets: [
        Match.objectLike({
          Arn: { Ref: logicalId(synth.stack.training.stateMachine) },
          DeadLetterConfig: { Arn: Match.anyValue() },
          RetryPolicy: { MaximumRetryAttempts: 3 },
        }),
      ],
    });
  });

  it('stages the train image from the repo Dockerfile without node_modules', () => {
    // Act
    const assets = JSON.parse(
      readFileSync(join(synth.outdir, `${synth.stack.artifactId}.assets.json`), 'utf8'),
    ) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string } }>;
    };
    const images = Object.values(assets.dockerImages);
    const staged = join(synth.outdir, images[0]?.source.directory ?? 'missing');

    // Assess
    expect(images).toHaveLength(1);
    expect(images[0]?.source.dockerFile).toBe('infra/aws/train-image/Dockerfile');
    expect(existsSync(join(staged, 'infra/aws/train-image/Dockerfile'))).toBe(true);
    expect(existsSync(join(staged, 'infra/aws/train-image/entrypoint.sh'))).toBe(true);
    expect(existsSync(join(staged, 'shared/topology.ts'))).toBe(true);
    expect(existsSync(join(staged, 'package-lock.json'))).toBe(true);
    expect(existsSync(join(staged, 'node_modules'))).toBe(false);
    expect(existsSync(join(staged, 'test'))).toBe(false);
  });
});

describe('tables', () => {
  it.each(Object.values(tables))('creates $id on demand, encrypted, PITR unless derived', (spec) => {
    const keySchema = [
      { AttributeName: spec.partitionKey.name, KeyType: 'HASH' },
      ...('sortKey' in spec ? [{ AttributeName: spec.sortKey.name, KeyType: 'RANGE' }] : []),
    ];
    synth.template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: `${spec.localName}-dev`,
      KeySchema: keySchema,
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: !spec.derived },
      ...('ttlAttribute' in spec
        ? { TimeToLiveSpecification: { AttributeName: spec.ttlAttribute, Enabled: true } }
        : { TimeToLiveSpecification: Match.absent() }),
    });
  });

  it('creates one table per topology entry', () => {
    synth.template.resourceCountIs('AWS::DynamoDB::Table', Object.keys(tables).length);
  });
});

describe('IoT', () => {
  it('sends rule failures to an SQS dead-letter queue through a role IoT assumes', () => {
    const rules = resourcesOfType(synth.resources, 'AWS::IoT::TopicRule');
    expect(rules).toHaveLength(3);
    for (const [, rule] of rules) {
      const payload = rule.Properties?.TopicRulePayload as Record<string, unknown>;
      expect(payload).toMatchObject({
        AwsIotSqlVersion: '2016-03-23',
        RuleDisabled: false,
        ErrorAction: { Sqs: { QueueUrl: expect.anything(), RoleArn: expect.anything() } },
      });
    }
    synth.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'iot.amazonaws.com' } })],
      },
    });
  });

  it('runs the aggregators and the rollout controller as arm64 ESM bundles on the pinned Node runtime', () => {
    const aggregators = resourcesOfType(synth.resources, 'AWS::Lambda::Function').filter(
      ([, fn]) => !isImageFunction(fn),
    );
    expect(aggregators).toHaveLength(4);
    for (const [, fn] of aggregators) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
      });
    }
  });

  it('gives each aggregator an on-failure SQS destination for async invokes', () => {
    const configs = synth.template.findResources('AWS::Lambda::EventInvokeConfig', {
      Properties: {
        MaximumRetryAttempts: 2,
        DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
      },
    });
    expect(Object.keys(configs)).toHaveLength(3);
  });

  it('recounts devices online every minute through the status aggregator', () => {
    synth.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [
        Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(synth.stack.iot.aggregators.status), 'Arn'] } }),
      ],
    });
  });

  it('lets IoT invoke each aggregator only from its own rule', () => {
    const permissions = resourcesOfType(synth.resources, 'AWS::Lambda::Permission').filter(
      ([, permission]) => permission.Properties?.Principal === 'iot.amazonaws.com',
    );
    const sources = permissions.map(([, permission]) => referencedId(permission.Properties?.SourceArn));
    const rules = resourcesOfType(synth.resources, 'AWS::IoT::TopicRule').map(([id]) => id);
    expect(sources.sort()).toEqual(rules.sort());
  });

  it('never grants iot:* and requires the certificate to be attached to the connecting thing', () => {
    const [[, policy] = []] = resourcesOfType(synth.resources, 'AWS::IoT::Policy');
    const statements =
      (
        policy?.Properties?.PolicyDocument as
          | { Statement: { Action: string[]; Condition?: unknown }[] }
          | undefined
      )?.Statement ?? [];
    expect(statements.flatMap((s) => s.Action)).not.toContain('iot:*');
    expect(statements.find((s) => s.Action.includes('iot:Connect'))?.Condition).toEqual({
      Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
    });
  });

  it('hands gateways a role alias whose role can only read model files and write its own hard examples', () => {
    // Prepare
    const deviceRole = logicalId(synth.stack.iot.deviceRole);

    // Act
    const statements = policyStatements(synth.resources).filter(
      (s) => s.roles.includes(deviceRole) && !JSON.stringify(s.Resource).includes('cdk-hnb659fds-assets'),
    );

    // Assess
    synth.template.hasResourceProperties('AWS::IoT::RoleAlias', {
      RoleArn: { 'Fn::GetAtt': [deviceRole, 'Arn'] },
      CredentialDurationSeconds: 3600,
    });
    synth.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'credentials.iot.amazonaws.com' } })],
      },
    });
    expect(statements.map((s) => s.Action)).toEqual([['s3:GetObject'], ['s3:PutObject']]);
    expect(renderCfnValue(statements[0]?.Resource[0])).toBe(
      `<${logicalId(synth.stack.storage.models)}.Arn>/*`,
    );
    // Its own model (thing type) and its own thing: another model's feedback prefix matches nothing granted.
    expect(renderCfnValue(statements[1]?.Resource[0])).toBe(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM policy variables.
      `<${logicalId(synth.stack.storage.datasets)}.Arn>/${datasetKeys.feedbackFile('${credentials-iot:ThingTypeName}', '${credentials-iot:ThingName}', '*')}`,
    );
    expect(statements[1]?.Resource).toHaveLength(1);
  });

  it('lets the thing policy assume only the role alias', () => {
    synth.template.hasResourceProperties('AWS::IoT::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: 'Allow',
            Action: ['iot:AssumeRoleWithCertificate'],
            Resource: [{ 'Fn::GetAtt': [logicalId(synth.stack.iot.roleAlias), 'RoleAliasArn'] }],
          },
        ]),
      },
    });
  });
});

describe('rollout controller', () => {
  it('runs on an EventBridge schedule', () => {
    synth.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: `rate(${rolloutSchedule.awsRateMinutes} minute)`,
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logicalId(synth.stack.rollout.controller), 'Arn'] },
        }),
      ],
    });
  });

  it('may publish retained release and canary notices, write the registry and copy datasets', () => {
    // Prepare
    const role = logicalId(synth.stack.rollout.controller.role as Role);

    // Act
    const statements = policyStatements(synth.resources).filter((s) => s.roles.includes(role));
    const resourcesOf = (action: string) =>
      statements.filter((s) => s.Action.includes(action)).flatMap((s) => s.Resource.map(renderCfnValue));

    // Assess
    const topics = resourcesOf('iot:RetainPublish');
    expect(topics).toHaveLength(2);
    expect(topics.some((arn) => arn.endsWith(topicFor('release', { model: '*' })))).toBe(true);
    expect(topics.some((arn) => arn.endsWith(topicFor('canary', { model: '*' })))).toBe(true);
    expect(resourcesOf('s3:PutObject')).toEqual([`<${logicalId(synth.stack.storage.datasets)}.Arn>/*`]);
    expect(resourcesOf('dynamodb:UpdateItem')).toEqual([
      `<${logicalId(synth.stack.tables.byKey.registry)}.Arn>`,
    ]);
  });
});

describe('least privilege', () => {
  it('grants no wildcard actions and no account-wide resources to functions', () => {
    const functionRoles = new Set(
      resourcesOfType(synth.resources, 'AWS::Lambda::Function').map(([, fn]) =>
        referencedId(fn.Properties?.Role),
      ),
    );
    const statements = policyStatements(synth.resources).filter((s) =>
      s.roles.some((role) => functionRoles.has(role)),
    );
    expect(statements.length).toBeGreaterThan(0);
    for (const statement of statements) {
      expect(statement.Action.filter((action) => action.endsWith('*'))).toEqual([]);
      expect(statement.Resource).not.toContain('*');
    }
  });

  it('attaches no managed policies to function roles', () => {
    const roles = synth.template.findResources('AWS::IAM::Role', {
      Properties: { ManagedPolicyArns: Match.anyValue() },
    });
    expect(Object.keys(roles)).toEqual([]);
  });
});

describe('observability', () => {
  it('renders the topology dashboard panels in order, each over its metric names', () => {
    // Act
    const [[, dashboard] = []] = resourcesOfType(synth.resources, 'AWS::CloudWatch::Dashboard');
    const widgets = (
      JSON.parse(renderCfnValue(dashboard?.Properties?.DashboardBody)) as {
        widgets: { properties: { title: string } }[];
      }
    ).widgets;

    // Assess
    expect(widgets.map((widget) => widget.properties.title)).toEqual([
      ...Object.values(dashboardPanels).map((panel) => panel.title),
      'Alarms',
    ]);
    Object.values(dashboardPanels).forEach((panel, index) => {
      const body = JSON.stringify(widgets[index]);
      for (const metric of panel.metrics) {
        expect(body).toContain(`Namespace=\\"${METRICS_NAMESPACE}\\" MetricName=\\"${metric}\\"`);
      }
    });
  });

  it('shows aggregator errors next to dead-letter queue depth', () => {
    const [[, dashboard] = []] = resourcesOfType(synth.resources, 'AWS::CloudWatch::Dashboard');
    const widgets = (
      JSON.parse(renderCfnValue(dashboard?.Properties?.DashboardBody)) as { widgets: unknown[] }
    ).widgets;
    const errors = JSON.stringify(widgets[Object.keys(dashboardPanels).indexOf('errors')]);
    expect(errors).toContain('ApproximateNumberOfMessagesVisible');
    expect(errors).toContain('"AWS/Lambda","Errors"');
  });

  it("alarms on training failures, each aggregator's errors and each DLQ, to the SNS topic", () => {
    const topic = logicalId(synth.stack.observability.alarmTopic);
    const alarms = resourcesOfType(synth.resources, 'AWS::CloudWatch::Alarm').map(
      ([, alarm]) => alarm.Properties ?? {},
    );
    const metrics = alarms.map((alarm) => `${alarm.Namespace}/${alarm.MetricName}`).sort();
    expect(metrics).toEqual([
      'AWS/Lambda/Errors',
      'AWS/Lambda/Errors',
      'AWS/Lambda/Errors',
      'AWS/SQS/ApproximateNumberOfMessagesVisible',
      'AWS/SQS/ApproximateNumberOfMessagesVisible',
      'AWS/SQS/ApproximateNumberOfMessagesVisible',
      'AWS/States/ExecutionsFailed',
      'edgeloop/AnomalyEvents',
    ]);
    for (const alarm of alarms) expect(alarm.AlarmActions).toEqual([{ Ref: topic }]);
  });

  it('announces anomaly events on a TLS-only SNS topic and the default EventBridge bus, and alarms on the fleet-wide count', () => {
    const recorder = synth.resources[logicalId(synth.stack.iot.aggregators.events)];
    const env = recorder?.Properties?.Environment as { Variables: Record<string, unknown> };
    expect(Object.keys(env.Variables)).toEqual(
      expect.arrayContaining([envVars.eventsTopicArn, envVars.eventBusName, envVars.eventsTable]),
    );
    const topic = logicalId(synth.stack.anomalyEvents.topic);
    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 'sns:Publish', Resource: { Ref: topic } }),
          Match.objectLike({ Action: 'events:PutEvents', Resource: Match.anyValue() }),
        ]),
      },
    });
    const [alarm] = resourcesOfType(synth.resources, 'AWS::CloudWatch::Alarm')
      .map(([, a]) => a.Properties ?? {})
      .filter((a) => a.MetricName === metricNames.anomalyEvents);
    expect(alarm).toMatchObject({
      Dimensions: [{ Name: 'service', Value: EVENTS_METRICS_SERVICE }],
      Period: 3600,
      Statistic: 'Sum',
    });
  });

  it('keeps the alarm topic TLS-only', () => {
    synth.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('outputs and discovery', () => {
  it('outputs bucket names, the dashboard URL, the IoT endpoint command and the public key fetch', () => {
    synth.template.hasOutput('DatasetsBucket', { Value: { Ref: logicalId(synth.stack.storage.datasets) } });
    synth.template.hasOutput('ModelsBucket', { Value: { Ref: logicalId(synth.stack.storage.models) } });
    synth.template.hasOutput('DashboardUrl', { Value: Match.anyValue() });
    synth.template.hasOutput('IotEndpointCommand', {
      Value: 'aws iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress --output text',
    });
    synth.template.hasOutput('SigningPublicKeyCommand', { Value: Match.anyValue() });
  });

  it('publishes the deployment document for provision under the stage parameter name', () => {
    synth.template.hasResourceProperties('AWS::SSM::Parameter', {
      Name: deploymentParameter('dev'),
      Type: 'String',
    });
  });
});

describe('configuration', () => {
  it('reads edgeloop:* context with defaults', () => {
    const app = new App({ context: { 'edgeloop:stage': 'prod', 'edgeloop:logRetentionDays': '90' } });
    expect(resolveConfig(app.node)).toMatchObject({
      stage: 'prod',
      logRetentionDays: 90,
      trainMemoryMb: 3008,
    });
  });

  it('rejects a bad value naming the key and how to set it', () => {
    const app = new App({ context: { 'edgeloop:trainTimeoutMinutes': '60' } });
    expect(() => resolveConfig(app.node)).toThrow(InputError);
    expect(() => resolveConfig(app.node)).toThrow(/trainTimeoutMinutes.*-c edgeloop:KEY=VALUE/);
  });

  it('accepts a managed job size Fargate runs and refuses one it does not', () => {
    const sized = (vcpu: string, memoryGb: string) =>
      new App({ context: { 'edgeloop:managedTrainVcpu': vcpu, 'edgeloop:managedTrainMemoryGb': memoryGb } });
    expect(resolveConfig(sized('8', '60').node)).toMatchObject({
      managedTrainVcpu: 8,
      managedTrainMemoryGb: 60,
    });
    expect(() => resolveConfig(sized('4', '64').node)).toThrow(/managedTrainMemoryGb.*8-30 at 4/);
    expect(() => resolveConfig(sized('3', '16').node)).toThrow(/managedTrainVcpu.*1, 2, 4, 8, 16 vCPUs/);
  });
});

function acknowledgements(): { path: string; id: string; reason: string }[] {
  return synth.stack.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({
          path: construct.node.path,
          id,
          reason,
        })),
      ),
  );
}

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged errors or warnings', () => {
    expect(
      synth.violations.map((v) => `${v.ruleName} at ${v.violatingConstructs[0]?.constructPath}`),
    ).toEqual([]);
    expect(synth.synthError).toBeUndefined();
  });

  it('acknowledges only AwsSolutions rules, each with a written reason', () => {
    // CDK's own constructs (the VPC reading the stack's zones) acknowledge CloudFormation-Validate findings.
    const all = acknowledgements().filter(({ id }) => !id.startsWith('CloudFormation-Validate::'));
    expect(all.length).toBeGreaterThan(0);
    for (const { id, reason } of all) {
      expect(id).toMatch(/AwsSolutions-[A-Z]+\d+/);
      expect(reason.trim().length).toBeGreaterThanOrEqual(MIN_REASON_LENGTH);
    }
  });

  it('refuses an acknowledgement without a reason', () => {
    expect(() => acknowledge(synth.stack, 'AwsSolutions-S1', 'because')).toThrow(/needs a written reason/);
  });
});

describe('Greengrass component', () => {
  const component = () => {
    const [entry] = resourcesOfType(synth.resources, 'AWS::GreengrassV2::ComponentVersion');
    const recipe = synth.stack.resolve(synth.stack.deviceComponent.component.inlineRecipe) as unknown;
    return { entry, recipe: JSON.stringify(recipe) };
  };

  it('declares one component version of the gateway package, a manifest per architecture', () => {
    // Assess
    synth.template.resourceCountIs('AWS::GreengrassV2::ComponentVersion', 1);
    const { recipe } = component();
    expect(recipe).toContain('com.edgeloop.Device');
    expect(recipe).toContain('\\"architecture\\":\\"amd64\\"');
    expect(recipe).toContain('\\"architecture\\":\\"aarch64\\"');
    expect(recipe).toContain(
      `node ${GATEWAY_NODE_FLAGS.join(' ')} {work:path}/edgeloop-device/bin/edgeloop-device`,
    );
    expect(recipe).not.toMatch(/REPLACE-WITH/);
  });

  it("lets a gateway switch to summary mode by configuration, defaulting to the stack's stage", () => {
    // Assess: the stage names the results stream rule summary batches go to by Basic Ingest
    const { recipe } = component();
    expect(recipe).toContain('\\"resultsMode\\":\\"detail\\"');
    expect(recipe).toContain(`\\"stage\\":\\"${synth.stack.config.stage}\\"`);
    expect(recipe).toContain('\\"EDGELOOP_DEVICE_RESULTS_MODE\\":\\"{configuration:/resultsMode}\\"');
    expect(recipe).toContain('\\"EDGELOOP_DEVICE_STAGE\\":\\"{configuration:/stage}\\"');
    expect(recipe).toContain('\\"EDGELOOP_DEVICE_SOURCE\\":\\"{configuration:/source}\\"');
    // Node's own options (a heap cap on a gateway short of memory), empty by default.
    expect(recipe).toContain('\\"nodeOptions\\":\\"\\"');
    expect(recipe).toContain('\\"NODE_OPTIONS\\":\\"{configuration:/nodeOptions}\\"');
  });

  it('points each manifest at its archive asset with that file SHA-256 digest', () => {
    // Assess
    const { recipe } = component();
    for (const arch of ['x64', 'arm64'] as const) {
      const asset = synth.stack.deviceComponent.artifacts[arch];
      const staged = join(synth.outdir, asset.assetPath);
      const digest = createHash('sha256').update(readFileSync(staged)).digest('base64');
      expect(recipe).toContain(digest);
      expect(recipe).toContain(asset.s3ObjectKey);
      expect(recipe).toContain(`{artifacts:path}/${asset.s3ObjectKey}`);
    }
  });

  it('lets the role behind the role alias (the token exchange role) read exactly the two archives', () => {
    // Assess
    const deviceRole = logicalId(synth.stack.iot.deviceRole);
    const reads = policyStatements(synth.resources).filter(
      (s) =>
        s.roles.includes(deviceRole) &&
        s.Action.includes('s3:GetObject') &&
        JSON.stringify(s.Resource).includes('cdk-hnb659fds-assets'),
    );
    expect(reads).toHaveLength(2);
    for (const read of reads) expect(JSON.stringify(read.Resource)).not.toContain('*');
  });
});
