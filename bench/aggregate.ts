/**
 * Aggregator throughput: batches of 500 results through the real results handler into a
 * real dynalite (in this process, as in the local stack), against the raw dynalite
 * single-write rate measured in the same run. Prints one JSON line.
 *
 *   npx tsx bench/aggregate.ts [--batches 120] [--concurrency 4]
 */
import { parseArgs } from 'node:util';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoClient, s3Client } from '../shared/aws.ts';
import { tables } from '../shared/topology.ts';
import {
  batchPayload,
  makeResults,
  manifestFor,
  putManifest,
  ruleEvent,
} from '../test/aggregation/fixtures.ts';
import { startAggregationStack } from '../test/aggregation/local-servers.ts';

export interface AggregateBench {
  resultsPerBatch: number;
  batches: number;
  concurrency: number;
  resultsPerSecond: number;
  batchesPerSecond: number;
  rawSingleWritesPerSecond: number;
  /** Results aggregated per raw single write the same dynalite can take in the same time. */
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

export async function main(argv: string[] = process.argv.slice(2)): Promise<AggregateBench> {
  const { values } = parseArgs({
    args: argv,
    options: { batches: { type: 'string', default: '120' }, concurrency: { type: 'string', default: '4' } },
  });
  const batches = Number(values.batches);
  const concurrency = Number(values.concurrency);
  const resultsPerBatch = 500;
  const stack = await startAggregationStack();
  try {
    await putManifest(s3Client(), manifestFor('bench', 1, 0.6));
    const { handler } = await import('../functions/aggregate-results.ts');
    const ddb = dynamoClient();

    // Baseline: single UpdateItem ADDs, the cheapest write an aggregator could make per result.
    const rawWrites = 1500;
    await rate(100, concurrency, (i) => write(ddb, `warmup#${i % 10}`));
    const rawSingleWritesPerSecond = await rate(rawWrites, concurrency, (i) => write(ddb, `raw#${i % 50}`));

    const start = Date.now() - 10 * 60_000;
    const events = Array.from({ length: batches }, (_, b) => {
      const thing = `gw-${b % 8}`;
      const results = makeResults(resultsPerBatch, { seed: b, startTs: start + b * 1000, idPrefix: `b${b}` });
      return ruleEvent(
        thing,
        batchPayload({ batchId: `bench-batch-${b}`, model: 'bench', version: 1, sentAt: start, results }),
        Date.now(),
      );
    });
    await handler(
      ruleEvent(
        'gw-warm',
        batchPayload({
          batchId: 'bench-warmup',
          model: 'bench',
          version: 1,
          sentAt: start,
          results: makeResults(10, { seed: 0, startTs: start, idPrefix: 'w' }),
        }),
        Date.now(),
      ),
    );
    let counted = 0;
    const batchesPerSecond = await rate(batches, concurrency, async (i) => {
      const outcome = await handler(events[i]);
      if (outcome.status === 'counted') counted += outcome.counted;
    });
    if (counted !== batches * resultsPerBatch)
      throw new Error(`the aggregator counted ${counted} results of ${batches * resultsPerBatch} sent`);
    const resultsPerSecond = batchesPerSecond * resultsPerBatch;
    return {
      resultsPerBatch,
      batches,
      concurrency,
      resultsPerSecond: Math.round(resultsPerSecond),
      batchesPerSecond: Math.round(batchesPerSecond * 10) / 10,
      rawSingleWritesPerSecond: Math.round(rawSingleWritesPerSecond),
      ratio: Math.round((resultsPerSecond / rawSingleWritesPerSecond) * 10) / 10,
      counted,
    };
  } finally {
    await stack.close();
  }
}

function write(ddb: ReturnType<typeof dynamoClient>, pk: string) {
  return ddb.send(
    new UpdateCommand({
      TableName: tables.aggregates.localName,
      Key: { pk, sk: 'raw' },
      UpdateExpression: 'ADD #n :one',
      ExpressionAttributeNames: { '#n': 'n' },
      ExpressionAttributeValues: { ':one': 1 },
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await main();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
