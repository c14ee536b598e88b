/**
 * The stream aggregator's CloudWatch metrics, as the dashboard reads them: the real handler
 * (functions/aggregate-results-stream.ts) on Kinesis events against the local stack, its EMF
 * lines collected as CloudWatch Logs extracts them. Per invocation one document per (model,
 * version) it counted, in the edgeloop namespace, named from the topology; what a redelivered
 * segment adds is nothing, so the dashboard's Sum stays the number of distinct results.
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  batchPayload,
  makeResults,
  manifestFor,
  putManifest,
  ruleEvent,
} from '../../bench/support/aggregation-fixtures.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import {
  cellsByMinute,
  emptyCell,
  mergeCells,
  summarizeCell,
  trainingDistributionOf,
} from '../../shared/aggregation/aggregate.ts';
import { summarizeResults } from '../../shared/aggregation/summary.ts';
import { s3Client } from '../../shared/aws.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { dashboardPanels, METRICS_NAMESPACE, metricNames } from '../../shared/topology.ts';

let stack: LocalStack;
let handler: (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse>;
const LOW = 0.6;
const start = Date.now() - 3 * 60_000;

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'ERROR' });
  await putManifest(s3Client(), manifestFor('m-detail', 1, LOW));
  await putManifest(s3Client(), manifestFor('m-summary', 2, LOW));
  // The handler reads its environment at load: the stack has set it by now.
  ({ handler } = await import('../../functions/aggregate-results-stream.ts'));
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => stack.metrics.clear());

interface Batch {
  thing: string;
  model: string;
  version: number;
  results: InferenceResult[];
  summary: boolean;
}

function batch(thing: string, model: string, version: number, seed: number, summary = false): Batch {
  const results = makeResults(30, {
    seed,
    startTs: start + seed * 10,
    idPrefix: `${model}-${thing}-${seed}`,
    truthEvery: 3,
  });
  return { thing, model, version, results, summary };
}

function payloadOf(b: Batch): string {
  const envelope = {
    batchId: `${b.model}-${b.thing}-${b.results[0]?.id}`,
    model: b.model,
    version: b.version,
    sentAt: start,
  };
  return b.summary
    ? JSON.stringify({ mode: 'summary', ...envelope, cells: summarizeResults(b.results, LOW) })
    : batchPayload({ ...envelope, results: b.results });
}

let sequence = 1_000n;
/** One invocation's event: every payload on one shard, sequence numbers rising. */
function kinesisEvent(shardId: string, payloads: { thing: string; payload: string }[]): KinesisStreamEvent {
  return {
    Records: payloads.map(({ thing, payload }) => {
      sequence += 13n;
      const sequenceNumber = String(49_100_000_000_000_000_000n + sequence);
      return {
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `${shardId}:${sequenceNumber}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
        awsRegion: 'us-east-1',
        eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/test',
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: thing,
          sequenceNumber,
          data: Buffer.from(JSON.stringify(ruleEvent(thing, payload, Date.now()))).toString('base64'),
          approximateArrivalTimestamp: Date.now() / 1000,
        },
      };
    }),
  };
}

const values = (name: string) => stack.metrics.query(name, undefined, METRICS_NAMESPACE);

describe('stream aggregator metrics', () => {
  it('emits one EMF document per model version per invocation with the dashboard metric names', async () => {
    // Prepare
    const batches = [
      batch('gw-1', 'm-detail', 1, 1),
      batch('gw-2', 'm-detail', 1, 2),
      batch('gw-3', 'm-summary', 2, 3, true),
      batch('gw-4', 'm-summary', 2, 4, true),
    ];
    const event = kinesisEvent(
      'shardId-000000000001',
      batches.map((b) => ({ thing: b.thing, payload: payloadOf(b) })),
    );

    // Act
    const response = await handler(event);

    // Assess
    expect(response.batchItemFailures).toEqual([]);
    const inferences = values(metricNames.inferences);
    expect(inferences).toHaveLength(2);
    for (const [model, version] of [
      ['m-detail', 1],
      ['m-summary', 2],
    ] as const) {
      const sent = batches.filter((b) => b.model === model).flatMap((b) => b.results);
      const cell = emptyCell();
      for (const { cell: minute } of cellsByMinute(sent, LOW)) mergeCells(cell, minute);
      const expected = summarizeCell(cell, trainingDistributionOf(manifestFor(model, version, LOW)));
      const of = (name: string) =>
        values(name).filter((p) => p.dimensions.model === model && p.dimensions.version === String(version));
      expect(of(metricNames.inferences).map((p) => p.value)).toEqual([sent.length]);
      expect(of(metricNames.lowConfidence).map((p) => p.value)).toEqual([
        sent.filter((r) => (r.confidence ?? 0) < LOW).length,
      ]);
      expect(of(metricNames.latencyP99)).toEqual([
        expect.objectContaining({ value: expected.latencyP99Ms, unit: 'Milliseconds' }),
      ]);
      expect(of(metricNames.liveAccuracy).map((p) => p.value)).toEqual([expected.liveAccuracy]);
      expect(of(metricNames.drift).map((p) => p.value)).toEqual([expected.drift?.psi]);
    }
    // Every series it writes is one a dashboard panel draws.
    const drawn = new Set<string>(Object.values(dashboardPanels).flatMap((panel) => panel.metrics));
    for (const metric of stack.metrics.list()) expect(drawn).toContain(metric.name);
  });

  it('adds nothing when a segment is delivered again, so the dashboard Sum stays exact', async () => {
    // Prepare
    const batches = [batch('gw-5', 'm-detail', 1, 5), batch('gw-6', 'm-detail', 1, 6)];
    const event = kinesisEvent(
      'shardId-000000000002',
      batches.map((b) => ({ thing: b.thing, payload: payloadOf(b) })),
    );

    // Act
    await handler(event);
    await handler(event);

    // Assess
    const inferences = values(metricNames.inferences);
    expect(inferences.map((p) => p.value)).toEqual([60]);
  });

  it('counts what it sets aside under AggregatorErrors', async () => {
    // Prepare
    const good = batch('gw-7', 'm-detail', 1, 7);
    const event = kinesisEvent('shardId-000000000003', [
      { thing: 'gw-7', payload: payloadOf(good) },
      { thing: 'gw-8', payload: '{"not": "a batch"' },
    ]);

    // Act
    await handler(event);

    // Assess
    expect(values(metricNames.aggregatorErrors).map((p) => p.value)).toEqual([1]);
    expect(values(metricNames.inferences).map((p) => p.value)).toEqual([30]);
  });
});
