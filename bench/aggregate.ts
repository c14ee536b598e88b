/**
 * Aggregator throughput, each figure next to the raw dynalite single-write rate measured in
 * the same run (the machines are shared, so ratios travel better than absolute numbers):
 *
 *  - handler: batches of 500 results through the real results handler into dynalite;
 *  - end to end: gateways (device SDK MQTT 3.1.1 connections) publish batches to the local
 *    stack's broker -> results topic rule -> aggregator -> dynalite, timed until `stats`
 *    counts every result.
 *
 *   npx tsx bench/aggregate.ts [--batches 120] [--concurrency 4] [--things 4]
 */
import { parseArgs } from 'node:util';
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { localStatsSource, readModelStats } from '../functions/aggregation/queries.ts';
import { dynamoClient, s3Client } from '../shared/aws.ts';
import { tables, topicFor } from '../shared/topology.ts';
import {
  batchPayload,
  makeResults,
  manifestFor,
  putManifest,
  ruleEvent,
} from './support/aggregation-fixtures.ts';
import { startTestStack } from './support/local-stack.ts';
import { connectThing, type ThingClient } from './support/thing-client.ts';

const RESULTS_PER_BATCH = 500;

export interface Throughput {
  resultsPerSecond: number;
  rawSingleWritesPerSecond: number;
  /** Results aggregated per raw single write the same dynalite takes in the same time. */
  ratio: number;
  counted: number;
}

async function rate(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await task(next++);
    }),
  );
  return total / ((performance.now() - startedAt) / 1000);
}

/** The baseline: single UpdateItem ADDs, the cheapest write an aggregator could make per result. */
async function rawWriteRate(ddb: DynamoDBDocumentClient, concurrency: number): Promise<number> {
  const write = (pk: string) =>
    ddb.send(
      new UpdateCommand({
        TableName: tables.aggregates.localName,
        Key: { pk, sk: 'raw' },
        UpdateExpression: 'ADD #n :one',
        ExpressionAttributeNames: { '#n': 'n' },
        ExpressionAttributeValues: { ':one': 1 },
      }),
    );
  await rate(100, concurrency, (i) => write(`warmup#${i % 10}`));
  return rate(1500, concurrency, (i) => write(`raw#${i % 50}`));
}

function batches(model: string, count: number, things: number, start: number) {
  return Array.from({ length: count }, (_, b) => ({
    thing: `gw-${b % things}`,
    payload: batchPayload({
      batchId: `${model}-batch-${b}`,
      model,
      version: 1,
      sentAt: start,
      results: makeResults(RESULTS_PER_BATCH, { seed: b, startTs: start + b * 1000, idPrefix: `b${b}` }),
    }),
  }));
}

function summary(resultsPerSecond: number, raw: number, counted: number, expected: number): Throughput {
  if (counted !== expected) throw new Error(`the aggregator counted ${counted} results of ${expected} sent`);
  return {
    resultsPerSecond: Math.round(resultsPerSecond),
    rawSingleWritesPerSecond: Math.round(raw),
    ratio: Math.round((resultsPerSecond / raw) * 10) / 10,
    counted,
  };
}

export async function measureHandler(options: { batches: number; concurrency: number }): Promise<Throughput> {
  const stack = await startTestStack({ logLevel: 'ERROR' });
  try {
    await putManifest(s3Client(), manifestFor('bench', 1, 0.6));
    const { handler } = await import('../functions/aggregate-results.ts');
    const raw = await rawWriteRate(dynamoClient(), options.concurrency);
    const start = Date.now() - 10 * 60_000;
    const events = batches('bench', options.batches, 8, start).map((batch) =>
      ruleEvent(batch.thing, batch.payload, Date.now()),
    );
    let counted = 0;
    const batchesPerSecond = await rate(options.batches, options.concurrency, async (i) => {
      const outcome = await handler(events[i]);
      if (outcome.status === 'counted') counted += outcome.counted;
    });
    return summary(batchesPerSecond * RESULTS_PER_BATCH, raw, counted, options.batches * RESULTS_PER_BATCH);
  } finally {
    await stack.stop();
  }
}

export async function measureEndToEnd(options: { batches: number; things: number }): Promise<Throughput> {
  const stack = await startTestStack({ logLevel: 'ERROR' });
  const things: ThingClient[] = [];
  try {
    await putManifest(s3Client(), manifestFor('bench-e2e', 1, 0.6));
    const raw = await rawWriteRate(dynamoClient(), 4);
    for (let i = 0; i < options.things; i++) things.push(await connectThing(stack.endpoints.mqtt, `gw-${i}`));
    const start = Date.now() - 10 * 60_000;
    const planned = batches('bench-e2e', options.batches, options.things, start);
    const expected = options.batches * RESULTS_PER_BATCH;
    const source = localStatsSource();
    const startedAt = performance.now();
    // Each gateway publishes its batches in order at QoS 1, all gateways at once.
    await Promise.all(
      things.map(async ({ connection }, i) => {
        for (const batch of planned.filter((b) => b.thing === `gw-${i}`))
          await connection.publish(
            topicFor('results', { thing: batch.thing }),
            batch.payload,
            mqtt.QoS.AtLeastOnce,
          );
      }),
    );
    let counted = 0;
    const deadline = Date.now() + 120_000;
    while (counted < expected && Date.now() < deadline) {
      await stack.idle();
      counted = (await readModelStats(source, 'bench-e2e', start - 60_000)).inferences;
      if (counted < expected) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const seconds = (performance.now() - startedAt) / 1000;
    return summary(expected / seconds, raw, counted, expected);
  } finally {
    for (const thing of things) await thing.close();
    await stack.stop();
  }
}

export async function main(
  options: { batches?: number; concurrency?: number; things?: number } = {},
): Promise<void> {
  const batchCount = options.batches ?? 120;
  const handler = await measureHandler({ batches: batchCount, concurrency: options.concurrency ?? 4 });
  console.log(
    JSON.stringify({
      bench: 'aggregate-handler',
      resultsPerBatch: RESULTS_PER_BATCH,
      batches: batchCount,
      ...handler,
    }),
  );
  const endToEnd = await measureEndToEnd({ batches: batchCount, things: options.things ?? 4 });
  console.log(
    JSON.stringify({
      bench: 'aggregate-end-to-end',
      resultsPerBatch: RESULTS_PER_BATCH,
      batches: batchCount,
      ...endToEnd,
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { batches: { type: 'string' }, concurrency: { type: 'string' }, things: { type: 'string' } },
  });
  await main({
    ...(values.batches ? { batches: Number(values.batches) } : {}),
    ...(values.concurrency ? { concurrency: Number(values.concurrency) } : {}),
    ...(values.things ? { things: Number(values.things) } : {}),
  });
}
