/**
 * The fleet-scale results path in the template (`-c edgeloop:resultsStreamShards=N`): a
 * Basic Ingest rule with the topology SQL putting batches on the Kinesis stream by thing,
 * and the stream aggregator's event source mapping with the topology's settings; cdk-nag
 * stays clean.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamMapping, streamRules, streams } from '../../shared/topology.ts';
import { resourcesOfType, type Synthesized, synthesize } from './synth.ts';

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
});
