/**
 * The fleet-scale results path end to end on the local stack, the same shape as in AWS:
 * 50 gateways (one MQTT connection each, as their own thing) publish by Basic Ingest to the
 * results stream rule -> the local rule router puts each batch on kinesalite by thing ->
 * the event source mapping hands many gateways' batches per call to the real stream
 * aggregator -> dynalite. Totals, per-gateway counts and the class mix come out exact with
 * outbox replays among the publishes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestFor, putManifest, thingResultCount } from '../../bench/support/aggregation-fixtures.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { runFleet } from '../../bench/support/simulated-fleet.ts';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import type { InvokedEvent, LocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';

let stack: LocalStack;
const MODEL = 'stream-e2e';
const startTs = Date.now() - 4 * 60_000;

beforeAll(async () => {
  stack = await startTestStack({
    logLevel: 'ERROR',
    resultsStream: { batchingWindowMs: 300, pollIntervalMs: 50 },
  });
  await putManifest(s3Client(), manifestFor(MODEL, 1, 0.6));
});

afterAll(async () => {
  await stack?.stop();
});

const thingTotal = (thing: string) => thingResultCount(dynamoClient(), MODEL, thing);

describe('results stream path on the local stack', () => {
  it('counts 50 gateways publishing by Basic Ingest exactly once, many gateways per invocation', async () => {
    // Prepare
    const invocations: InvokedEvent[] = [];
    stack.events.on('invoked', (event: InvokedEvent) => {
      if (event.fn === 'aggregateResultsStream') invocations.push(event);
    });
    const denied: unknown[] = [];
    stack.events.on('denied', (decision) => denied.push(decision));

    // Act
    const sent = await runFleet({
      mqttUrl: stack.endpoints.mqtt,
      basicIngestPrefix: stack.resultsBasicIngestPrefix,
      gateways: 50,
      batchesPerGateway: 3,
      resultsPerBatch: 40,
      model: MODEL,
      version: 1,
      startTs,
      lowConfidence: 0.6,
      summaryEvery: 2,
      replayEvery: 10,
    });
    await stack.idle();
    const stats = await readModelStats(localStatsSource(), MODEL, startTs - 60_000);

    // Assess
    expect(denied).toEqual([]);
    expect(sent.replays).toBeGreaterThan(0);
    expect(stats.inferences).toBe(sent.results);
    expect(stats.versions[0]?.classCounts).toEqual(Object.fromEntries(sent.byLabel));
    for (const [thing, count] of sent.byThing) expect(await thingTotal(thing)).toBe(count);
    expect(invocations.every((event) => event.error === undefined)).toBe(true);
    // Records arrive batched: fewer calls than records. How many fewer depends on how fast the
    // fleet publishes against the batching window (a loaded machine publishes slower), so the
    // batching ratio at scale is measured by `npm run bench -- fleet-e2e`, not asserted here.
    expect(invocations.length).toBeLessThan(sent.publishes);
  });
});
