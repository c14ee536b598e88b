/**
 * The fleet-scale results path in the template (`-c edgeloop:resultsStreamShards=N`): a
 * Basic Ingest rule with the topology SQL putting batches on the Kinesis stream by thing,
 * and the stream aggregator's event source mapping with the topology's settings; cdk-nag
 * stays clean; the thing policy lets a gateway publish by Basic Ingest to that rule only.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCfnValue } from '../../infra/aws/nag.ts';
import {
  basicIngestTopic,
  streamMapping,
  streamRules,
  streams,
  THING_VARIABLE,
} from '../../shared/topology.ts';
import { resourcesOfType, type Synthesized, synthesize, wildcardMatches } from './synth.ts';

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize({ 'edgeloop:resultsStreamShards': 4 });
});
afterAll(() => synth.dispose());

describe('results stream', () => {
  it('declares a stream of the configured shards and a rule that puts each batch on it by thing', () => {
    // Act
    const [[, stream] = []] = resourcesOfType(synth.resources, 'AWS::Kinesis::Stream');
    const rule = resourcesOfType(synth.resources, 'AWS::IoT::TopicRule')
      .map(
        ([, resource]) =>
          resource.Properties?.TopicRulePayload as { Sql: string; Actions: Record<string, unknown>[] },
      )
      .find((payload) => payload.Actions.some((action) => 'Kinesis' in action));

    // Assess
    expect(stream?.Properties?.ShardCount).toBe(4);
    expect(rule?.Sql).toBe(streamRules.results.sql);
    expect((rule?.Actions[0]?.Kinesis as { PartitionKey?: string } | undefined)?.PartitionKey).toBe(
      streams.results.partitionKey,
    );
  });

  it('maps the stream to the aggregator with the topology settings', () => {
    // Act
    const [[, mapping] = []] = resourcesOfType(synth.resources, 'AWS::Lambda::EventSourceMapping');
    const props = mapping?.Properties ?? {};

    // Assess
    expect(props).toMatchObject({
      BatchSize: streamMapping.batchSize,
      MaximumBatchingWindowInSeconds: streamMapping.maxBatchingWindowSeconds,
      ParallelizationFactor: streamMapping.parallelizationFactor,
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      StartingPosition: 'TRIM_HORIZON',
    });
  });

  it('passes cdk-nag with every finding acknowledged', () => {
    // Assess
    expect(synth.synthError).toBeUndefined();
    expect(synth.violations).toEqual([]);
  });

  it('lets a thing publish by Basic Ingest to the results stream rule only, and only as itself', () => {
    // Prepare
    const topicArn = (pattern: string) => ({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':iot:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          `:topic/${pattern}`,
        ],
      ],
    });
    const grantedPattern = basicIngestTopic(`${streamRules.results.ruleName}_*`, THING_VARIABLE);
    const ruleNames = resourcesOfType(synth.resources, 'AWS::IoT::TopicRule').map(([, rule]) =>
      String(rule.Properties?.RuleName),
    );
    const streamRuleName = ruleNames.find((name) => name.startsWith(streamRules.results.ruleName));

    // Act
    const [[, policy] = []] = resourcesOfType(synth.resources, 'AWS::IoT::Policy');
    const statements =
      (
        policy?.Properties?.PolicyDocument as
          | { Statement: { Action: string[]; Resource: unknown[] }[] }
          | undefined
      )?.Statement ?? [];
    const basicIngest = statements
      .flatMap((statement) =>
        statement.Resource.map((resource) => [statement.Action, renderCfnValue(resource)] as const),
      )
      .filter(([, arn]) => arn.includes(':topic/$aws/rules/') || arn.includes(':topicfilter/$aws/'));
    const allows = (thing: string, topic: string) =>
      basicIngest.some(([, arn]) =>
        wildcardMatches((arn.split(':topic/')[1] ?? '').replaceAll(THING_VARIABLE, thing), topic),
      );

    // Assess
    synth.template.hasResourceProperties('AWS::IoT::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['iot:Publish'],
            Resource: Match.arrayWith([topicArn(grantedPattern)]),
          }),
        ]),
      },
    });
    expect(basicIngest.map(([action]) => action)).toEqual([['iot:Publish']]);
    expect(streamRuleName).toBeDefined();
    const ownTopic = basicIngestTopic(streamRuleName ?? '', 'gw-1');
    expect(allows('gw-1', ownTopic)).toBe(true);
    expect(allows('gw-2', ownTopic)).toBe(false);
    expect(allows('gw-1', ownTopic.replace('/results', '/status'))).toBe(false);
    for (const other of ruleNames.filter((name) => name !== streamRuleName))
      expect([other, allows('gw-1', basicIngestTopic(other, 'gw-1'))]).toEqual([other, false]);
  });
});
