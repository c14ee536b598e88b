import { type DynamoDBDocumentClient, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batchPayload,
  makeResults,
  manifestFor,
  putManifest,
  ruleEvent,
} from '../../bench/support/aggregation-fixtures.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { ManifestCache } from '../../functions/aggregation/manifests.ts';
import {
  localStatsSource,
  readErrors,
  readModelStats,
  type StatsSource,
} from '../../functions/aggregation/queries.ts';
import {
  aggregateResultEvent,
  type ResultsDeps,
  type ResultsOutcome,
} from '../../functions/aggregation/results.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import {
  bucketIndex,
  bucketWidth,
  exactPercentile,
  LATENCY_EDGES_MS,
} from '../../shared/aggregation/histogram.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { EdgeloopMetrics } from '../../shared/metrics.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { aggregateKeys, buckets, metricNames, tables } from '../../shared/topology.ts';

let stack: LocalStack;
let handler: (event: unknown) => Promise<ResultsOutcome>;
let source: StatsSource;
const start = Date.now() - 5 * 60_000;

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'ERROR' });
  ({ handler } = await import('../../functions/aggregate-results.ts'));
  source = localStatsSource();
  for (const model of ['exact', 'dupes', 'garbage', 'resume'])
    await putManifest(s3Client(), manifestFor(model, 1, 0.7));
});

afterAll(async () => {
  await stack?.stop();
});

function deps(): ResultsDeps {
  return {
    ddb: dynamoClient(),
    tables: {
      aggregates: tables.aggregates.localName,
      errors: tables.errors.localName,
      idempotency: tables.idempotency.localName,
    },
    manifests: new ManifestCache(s3Client, buckets.models.localName),
    metrics: new EdgeloopMetrics('test'),
    logger: { info: () => {}, warn: () => {} },
  };
}

function batchEvent(
  thing: string,
  model: string,
  batchId: string,
  results: unknown[],
  receivedAt = Date.now(),
) {
  return ruleEvent(thing, batchPayload({ batchId, model, version: 1, sentAt: start, results }), receivedAt);
}

function expected(results: InferenceResult[], lowConfidence: number) {
  const classes: Record<string, number> = {};
  for (const result of results) classes[result.label ?? ''] = (classes[result.label ?? ''] ?? 0) + 1;
  const labelled = results.filter((result) => result.truth !== undefined);
  return {
    count: results.length,
    classes,
    confidenceMean: results.reduce((sum, result) => sum + (result.confidence ?? 0), 0) / results.length,
    lowConfidenceRate:
      results.filter((result) => (result.confidence ?? 0) < lowConfidence).length / results.length,
    liveAccuracy: labelled.filter((result) => result.truth === result.label).length / labelled.length,
    p50: exactPercentile(
      results.map((result) => result.latencyMs),
      0.5,
    ),
    p99: exactPercentile(
      results.map((result) => result.latencyMs),
      0.99,
    ),
  };
}

describe('results aggregator against dynalite and the local S3', () => {
  it('aggregates exactly the produced results of several gateways', async () => {
    // Prepare
    const batches = [0, 1, 2].flatMap((device) =>
      [0, 1].map((n) => ({
        thing: `gw-${device}`,
        batchId: `exact-${device}-${n}`,
        results: makeResults(400, {
          seed: device * 10 + n,
          startTs: start + n * 30_000,
          idPrefix: `e${device}${n}`,
          truthEvery: 3,
        }),
      })),
    );
    const all = batches.flatMap((batch) => batch.results);
    const want = expected(all, 0.7);

    // Act
    for (const batch of batches)
      await handler(batchEvent(batch.thing, 'exact', batch.batchId, batch.results));
    const stats = await readModelStats(source, 'exact', start - 60_000);

    // Assess
    expect(stats.inferences).toBe(want.count);
    const v1 = stats.versions[0];
    expect(stats.versions).toHaveLength(1);
    expect(v1?.classCounts).toEqual(want.classes);
    expect(v1?.confidenceMean).toBeCloseTo(want.confidenceMean, 9);
    expect(v1?.lowConfidenceRate).toBeCloseTo(want.lowConfidenceRate, 12);
    expect(v1?.liveAccuracy).toBeCloseTo(want.liveAccuracy, 12);
    for (const [estimate, exact] of [
      [v1?.latencyP50Ms, want.p50],
      [v1?.latencyP99Ms, want.p99],
    ] as const) {
      expect(Math.abs((estimate ?? Number.NaN) - (exact ?? Number.NaN))).toBeLessThanOrEqual(
        bucketWidth(bucketIndex(exact ?? 0, LATENCY_EDGES_MS), LATENCY_EDGES_MS),
      );
    }
    expect(v1?.drift?.psi).toBeGreaterThanOrEqual(0);
  });

  it('counts a redelivered batch and an outbox replay once', async () => {
    // Prepare
    const results = makeResults(250, { seed: 7, startTs: start, idPrefix: 'd' });
    const first = batchEvent('gw-d', 'dupes', 'dupes-batch-1', results, start + 1000);

    // Act
    const outcomes = [
      await handler(first),
      await handler(first), // IoT rule / Lambda redelivers the same event
      await handler(batchEvent('gw-d', 'dupes', 'dupes-batch-1', results, start + 90_000)), // outbox replay
    ];
    const stats = await readModelStats(source, 'dupes', start - 60_000);

    // Assess
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['counted', 'duplicate', 'duplicate']);
    expect(stats.inferences).toBe(250);
  });

  it('finishes a batch whose earlier attempt claimed it but failed half-way, without double counting', async () => {
    // Prepare: the first attempt claims the batch, writes the thing-level item, then the
    // model-level write fails (throttled), so the invocation fails with the claim pending.
    const results = makeResults(300, { seed: 11, startTs: start, idPrefix: 'r' });
    const event = batchEvent('gw-r', 'resume', 'resume-batch-1', results);
    const real = dynamoClient();
    const flaky = {
      send: (command: { input: { Key?: Record<string, unknown> } }) => {
        if (command instanceof UpdateCommand && String(command.input.Key?.pk).startsWith('model#'))
          return Promise.reject(new Error('ProvisionedThroughputExceededException'));
        return real.send(command as never);
      },
    } as unknown as DynamoDBDocumentClient;
    const firstAttempt = aggregateResultEvent(event, { ...deps(), ddb: flaky });
    await expect(firstAttempt).rejects.toThrow(/Throughput/);

    // Act: the redelivery finds the claim still pending and re-applies every key.
    const outcome = await handler(event);
    const again = await handler(event);
    const stats = await readModelStats(source, 'resume', start - 60_000);
    const thingItems = await real.send(
      new QueryCommand({
        TableName: tables.aggregates.localName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': aggregateKeys.thing('resume', 'gw-r') },
      }),
    );

    // Assess
    expect(outcome).toMatchObject({ status: 'counted', resumed: true, counted: 300, valid: 300 });
    expect(again.status).toBe('duplicate');
    expect(stats.inferences).toBe(300);
    expect((thingItems.Items ?? []).reduce((sum, item) => sum + Number(item.n), 0)).toBe(300);
  });

  it('sets every malformed payload aside with a reason and keeps counting the good ones', async () => {
    // Prepare
    const good = makeResults(50, { seed: 3, startTs: start, idPrefix: 'g' });
    const thing = 'gw-bad';
    const envelope = (results: unknown[]) => ({
      batchId: 'garbage-mixed',
      model: 'garbage',
      version: 1,
      sentAt: start,
      results,
    });
    const malformed: [string, string | Uint8Array][] = [
      ['truncated JSON', batchPayload(envelope(good)).slice(0, 100)],
      ['null', 'null'],
      [
        'wrong types',
        JSON.stringify({ batchId: 42, model: 'garbage', version: '1', sentAt: 'now', results: {} }),
      ],
      ['random bytes', Uint8Array.from({ length: 64 }, (_, i) => (i * 151 + 7) % 256)],
      ['overflow to Infinity', batchPayload(envelope(good)).replace('"version":1', '"version":1e999')],
    ];
    const mixed = [
      ...good.slice(0, 25),
      { ...good[0], id: 'bad-conf', confidence: 0.123456789 },
      'not-a-result',
      ...good.slice(25),
    ];
    const since = Date.now() - 1000;

    // Act
    const outcomes = [];
    for (const [, payload] of malformed) outcomes.push(await handler(ruleEvent(thing, payload, Date.now())));
    outcomes.push(await handler({ hello: 'not a rule event' }));
    // A number inside one result that overflows to Infinity when parsed.
    const mixedPayload = batchPayload(envelope(mixed)).replace('0.123456789', '1e999');
    outcomes.push(await handler(ruleEvent(thing, mixedPayload, Date.now())));
    const stats = await readModelStats(source, 'garbage', start - 60_000);
    const errors = await readErrors(source, since, 50);

    // Assess
    expect(outcomes.slice(0, 6).map((outcome) => outcome.status)).toEqual(Array(6).fill('rejected'));
    expect(outcomes[6]).toMatchObject({ status: 'counted', valid: 50, rejected: 2 });
    expect(stats.inferences).toBe(50);
    expect(errors.count).toBe(8);
    const firstThree = await readErrors(source, since, 3);
    expect(firstThree.count).toBe(8);
    expect(firstThree.latest).toEqual(errors.latest.slice(0, 3));
    expect(errors.latest.map((error) => error.at)).toEqual(
      [...errors.latest.map((error) => error.at)].sort((a, b) => b - a),
    );
    const reasons = errors.latest.map((error) => error.reason).join('\n');
    expect(reasons).toMatch(/not valid JSON/);
    expect(reasons).toMatch(/invalid result batch: \(root\)/);
    expect(reasons).toMatch(/batchId/);
    expect(reasons).toMatch(/not UTF-8/);
    expect(reasons).toMatch(/version/);
    expect(reasons).toMatch(/not an IoT rule event/);
    expect(reasons).toMatch(/results\.25: confidence/);
    expect(reasons).toMatch(/results\.26: /);
    expect(errors.latest.every((error) => error.topic && error.thing && error.payload.length <= 1024)).toBe(
      true,
    );
  });

  it('emits EMF lines in the edgeloop namespace through the sink', () => {
    // Assess (the batches above were counted through the handler; the local stack's EMF
    // collector extracts the datapoints as CloudWatch does)
    const inferenceLines = stack.metrics
      .query(metricNames.inferences)
      .filter((point) => point.dimensions.model === 'exact');
    expect(inferenceLines.reduce((sum, point) => sum + point.value, 0)).toBe(2400);
    expect(stack.metrics.rejected).toBe(0);
    expect(stack.metrics.list().every((metric) => metric.namespace === 'edgeloop')).toBe(true);
    expect(stack.metrics.query(metricNames.drift).length).toBeGreaterThan(0);
    expect(stack.metrics.query(metricNames.aggregatorErrors).length).toBeGreaterThan(0);
  });
});
