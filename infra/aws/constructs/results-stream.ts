/**
 * The fleet-scale results path (streamRules.results in the topology): gateways publish by
 * Basic Ingest to a topic rule that puts each batch on a Kinesis stream with the thing as
 * partition key; an event source mapping hands the stream aggregator up to 10,000 records
 * of one shard per call (batching window, bisect on error, partial batch responses, records
 * that keep failing to an SQS queue). ParallelizationFactor 1: the aggregates' exactly-once
 * high-water marks need each shard in order; the stream scales by shards.
 */
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { KinesisEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { NAMESPACE, streamMapping, streamRules, streams } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';
import { handlerEntries } from '../paths.ts';
import { bindFunction, type EdgeloopResources } from './function-binding.ts';
import { nodeFunction } from './node-function.ts';

export interface ResultsStreamProps {
  config: EdgeloopConfig;
  resources: EdgeloopResources;
  /** The stage's IoT rule name (ruleNameFor). */
  ruleName: string;
  /** Messages the rule could not put on the stream. */
  ruleDeadLetters: sqs.IQueue;
  /** Records the aggregator kept failing on after its retries (metadata of the batch). */
  aggregatorDeadLetters: sqs.IQueue;
  /** Lets the rule's error action write to the rule dead-letter queue. */
  ruleErrorRole: iam.IRole;
}

export class ResultsStream extends Construct {
  readonly stream: kinesis.Stream;
  readonly aggregator: nodejs.NodejsFunction;
  readonly topicRule: iot.CfnTopicRule;

  constructor(scope: Construct, id: string, props: ResultsStreamProps) {
    super(scope, id);
    const { config, resources } = props;
    const rule = streamRules.results;

    this.stream = new kinesis.Stream(this, streams.results.id, {
      shardCount: config.resultsStreamShards,
      streamMode: kinesis.StreamMode.PROVISIONED,
      encryption: kinesis.StreamEncryption.MANAGED,
      retentionPeriod: Duration.hours(24),
    });

    const putRole = new iam.Role(this, 'RulePutRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com'),
      description: `${NAMESPACE} results stream rule: put gateway batches on the results stream`,
    });
    this.stream.grantWrite(putRole);

    this.topicRule = new iot.CfnTopicRule(this, rule.id, {
      ruleName: props.ruleName,
      topicRulePayload: {
        sql: rule.sql,
        awsIotSqlVersion: '2016-03-23',
        ruleDisabled: false,
        actions: [
          {
            kinesis: {
              streamName: this.stream.streamName,
              partitionKey: streams.results.partitionKey,
              roleArn: putRole.roleArn,
            },
          },
        ],
        errorAction: {
          sqs: {
            queueUrl: props.ruleDeadLetters.queueUrl,
            roleArn: props.ruleErrorRole.roleArn,
            useBase64: false,
          },
        },
      },
    });

    this.aggregator = nodeFunction(this, 'AggregateResultsStream', config, {
      description: `edgeloop results stream aggregator (Kinesis ${streams.results.id}, IoT rule ${rule.ruleName})`,
      entry: handlerEntries.aggregateResultsStream,
      memorySize: 1024,
      timeout: Duration.minutes(5),
    });
    bindFunction(this.aggregator, rule.function, resources, {
      readBuckets: ['models'],
      readTables: ['aggregates'],
      writeTables: ['aggregates', 'errors'],
    });
    this.aggregator.addEventSource(
      new KinesisEventSource(this.stream, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: streamMapping.batchSize,
        maxBatchingWindow: Duration.seconds(streamMapping.maxBatchingWindowSeconds),
        parallelizationFactor: streamMapping.parallelizationFactor,
        bisectBatchOnError: streamMapping.bisectBatchOnFunctionError,
        reportBatchItemFailures: streamMapping.reportBatchItemFailures,
        retryAttempts: streamMapping.retryAttempts,
        maxRecordAge: Duration.seconds(streamMapping.maxRecordAgeSeconds),
        onFailure: new SqsDlq(props.aggregatorDeadLetters),
      }),
    );
    acknowledge(
      this.stream,
      'AwsSolutions-KDS3',
      'The results stream uses the AWS-managed aws/kinesis key: it is encrypted at rest, and a customer-managed key would add a KMS request per GetRecords/PutRecord batch without narrowing who can read (IAM on the stream does that).',
    );
  }
}
