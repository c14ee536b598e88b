/**
 * Everything a gateway meets in AWS IoT: the per-thing policy (rendered from the topology's
 * thingPolicy), the topic rules that feed the aggregator functions (SQL from the topology,
 * errors to an SQS dead-letter queue), and the role alias the IoT credentials provider
 * hands out for read-only access to the models bucket.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  datasetKeys,
  NAMESPACE,
  type PolicyStatement,
  type RuleName,
  ruleNameFor,
  rules,
  streamRules,
  thingPolicy,
} from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge, wildcardFinding } from '../nag.ts';
import { handlerEntries } from '../paths.ts';
import { type Access, bindFunction, type EdgeloopResources } from './function-binding.ts';
import { nodeFunction } from './node-function.ts';
import { ResultsStream } from './results-stream.ts';

/** The thing name the IoT credentials provider puts in the session (x-amzn-iot-thingname). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a JS template.
export const CREDENTIALS_THING_VARIABLE = '${credentials-iot:ThingName}';
/**
 * The thing's type, which `edgeloop provision` names after the model the gateway runs: the
 * feedback grant is scoped by it, so a gateway writes hard examples for its own model only.
 */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a JS template.
export const CREDENTIALS_THING_TYPE_VARIABLE = '${credentials-iot:ThingTypeName}';

/** Declared in the topology, where the local stack names its Basic Ingest rule the same way. */
export { ruleNameFor };

const aggregatorAccess: Record<RuleName, Access> = {
  results: {
    readBuckets: ['models'],
    readTables: ['registry', 'aggregates', 'idempotency'],
    writeTables: ['aggregates', 'errors', 'idempotency'],
  },
  status: { readTables: ['fleet'], writeTables: ['fleet', 'errors'] },
  events: { readTables: ['events'], writeTables: ['events', 'errors'] },
};

const entryOf: Record<RuleName, string> = {
  results: handlerEntries.aggregateResults,
  status: handlerEntries.aggregateStatus,
  events: handlerEntries.recordEvents,
};

/** One IoT policy statement as IAM-style JSON with full ARNs. */
export function renderPolicyStatement(scope: Construct, statement: PolicyStatement): Record<string, unknown> {
  const stack = Stack.of(scope);
  return {
    Effect: 'Allow',
    Action: [statement.action],
    Resource: statement.patterns.map((pattern) =>
      stack.formatArn({ service: 'iot', resource: statement.resourceType, resourceName: pattern }),
    ),
    // A client id alone is not proof: the certificate must also be attached to that thing.
    ...(statement.action === 'iot:Connect'
      ? { Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } } }
      : {}),
  };
}

export interface IotProps {
  config: EdgeloopConfig;
  resources: EdgeloopResources;
  /** Messages an IoT rule could not deliver to its function. */
  ruleDeadLetters: sqs.IQueue;
  /** Asynchronous invocations that failed after their retries. */
  aggregatorDeadLetters: sqs.IQueue;
}

export class Iot extends Construct {
  readonly aggregators: Record<RuleName, nodejs.NodejsFunction>;
  readonly topicRules: Record<RuleName, iot.CfnTopicRule>;
  readonly thingPolicy: iot.CfnPolicy;
  readonly roleAlias: iot.CfnRoleAlias;
  readonly deviceRole: iam.Role;
  /** The fleet-scale path: Basic Ingest rule -> Kinesis -> stream aggregator. */
  readonly resultsStream: ResultsStream | undefined;

  constructor(scope: Construct, id: string, props: IotProps) {
    super(scope, id);
    const { config, resources } = props;
    const stack = Stack.of(this);

    const errorRole = new iam.Role(this, 'RuleErrorRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com'),
      description: `${NAMESPACE} topic rules: send undeliverable messages to the dead-letter queue`,
    });
    props.ruleDeadLetters.grantSendMessages(errorRole);

    const ruleNames = Object.keys(rules) as RuleName[];
    this.aggregators = Object.fromEntries(
      ruleNames.map((name) => [name, this.aggregator(name, config, resources, props.aggregatorDeadLetters)]),
    ) as Record<RuleName, nodejs.NodejsFunction>;

    this.topicRules = Object.fromEntries(
      ruleNames.map((name) => {
        const rule = rules[name];
        const fn = this.aggregators[name];
        const topicRule = new iot.CfnTopicRule(this, rule.id, {
          ruleName: ruleNameFor(rule.ruleName, config.stage),
          topicRulePayload: {
            sql: rule.sql,
            awsIotSqlVersion: '2016-03-23',
            ruleDisabled: false,
            actions: [{ lambda: { functionArn: fn.functionArn } }],
            errorAction: {
              sqs: { queueUrl: props.ruleDeadLetters.queueUrl, roleArn: errorRole.roleArn, useBase64: false },
            },
          },
        });
        fn.addPermission(`${rule.id}Invoke`, {
          principal: new iam.ServicePrincipal('iot.amazonaws.com'),
          sourceArn: topicRule.attrArn,
          sourceAccount: stack.account,
        });
        return [name, topicRule];
      }),
    ) as Record<RuleName, iot.CfnTopicRule>;

    this.resultsStream =
      config.resultsStreamShards > 0
        ? new ResultsStream(this, 'ResultsStream', {
            config,
            resources,
            ruleName: ruleNameFor(streamRules.results.ruleName, config.stage),
            ruleDeadLetters: props.ruleDeadLetters,
            aggregatorDeadLetters: props.aggregatorDeadLetters,
            ruleErrorRole: errorRole,
          })
        : undefined;

    // The status function also recounts devices online per version every minute, so a
    // version whose gateways fell silent drops to zero instead of keeping its last value.
    new events.Rule(this, 'DevicesOnlineSchedule', {
      description: `${NAMESPACE}: recount devices online per model version`,
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.aggregators.status, { retryAttempts: 0 })],
    });

    // Gateways exchange their certificate for temporary credentials through this alias;
    // the role can read model files and nothing else.
    this.deviceRole = new iam.Role(this, 'DeviceRole', {
      assumedBy: new iam.ServicePrincipal('credentials.iot.amazonaws.com'),
      description: `${NAMESPACE} gateways: read model files and write hard examples through the IoT credentials provider`,
      maxSessionDuration: Duration.hours(1),
    });
    this.deviceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [resources.buckets.models.arnForObjects('*')],
      }),
    );
    // Hard examples: write-only, and only under the gateway's own model (its thing type) and
    // its own thing folder of the feedback prefix.
    const feedbackObjects = resources.buckets.datasets.arnForObjects(
      datasetKeys.feedbackFile(CREDENTIALS_THING_TYPE_VARIABLE, CREDENTIALS_THING_VARIABLE, '*'),
    );
    this.deviceRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [feedbackObjects] }),
    );
    acknowledge(
      this.deviceRole,
      // cdk-nag names a policy variable ${x} as <x> in its finding ids.
      wildcardFinding(this, feedbackObjects)
        .replace(CREDENTIALS_THING_TYPE_VARIABLE, '<credentials-iot:ThingTypeName>')
        .replace(CREDENTIALS_THING_VARIABLE, '<credentials-iot:ThingName>'),
      'Gateways upload hard examples only under their own model (thing type) and thing name (policy variables) in the feedback prefix; the wildcard is the file name; write-only, no read or list.',
    );
    acknowledge(
      this.deviceRole,
      wildcardFinding(this, resources.buckets.models.arnForObjects('*')),
      'Gateways download whichever model version is released; the grant is read-only and limited to the models bucket.',
    );
    this.roleAlias = new iot.CfnRoleAlias(this, 'DeviceRoleAlias', {
      roleAlias: `${NAMESPACE}-${config.stage}-device`,
      roleArn: this.deviceRole.roleArn,
      credentialDurationSeconds: 3600,
    });

    this.thingPolicy = new iot.CfnPolicy(this, 'ThingPolicy', {
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          ...thingPolicy.map((statement) => renderPolicyStatement(this, statement)),
          {
            Effect: 'Allow',
            Action: ['iot:AssumeRoleWithCertificate'],
            Resource: [this.roleAlias.attrRoleAliasArn],
          },
        ],
      },
    });
  }

  private aggregator(
    name: RuleName,
    config: EdgeloopConfig,
    resources: EdgeloopResources,
    deadLetters: sqs.IQueue,
  ): nodejs.NodejsFunction {
    const functionName = rules[name].function;
    const id = `${functionName[0]?.toUpperCase()}${functionName.slice(1)}`;
    const fn = nodeFunction(this, id, config, {
      description: `edgeloop ${name} aggregator (IoT rule ${rules[name].ruleName})`,
      entry: entryOf[name],
      memorySize: 512,
      timeout: Duration.seconds(30),
      extra: {
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
        onFailure: new destinations.SqsDestination(deadLetters),
      },
    });
    bindFunction(fn, functionName, resources, aggregatorAccess[name]);
    return fn;
  }
}
