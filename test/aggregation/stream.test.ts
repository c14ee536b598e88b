/**
 * The stream aggregator (many gateways' batches per call, write-sharded model items with
 * per-shard high-water marks, bounded per-thing batch marks) against dynalite and the local S3:
 * exact totals under stream redelivery, whole-segment replays, device duplicates, a crash
 * between writes, bisected retries and resharding; and the readers show the same figures as
 * for the direct path on the same input.
 */
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batchPayload,
  failingUpdates,
  makeResults,
  manifestFor,
  putManifest,
  ruleEvent,
  thingResultCount,
} from '../../bench/support/aggregation-fixtures.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { ManifestCache } from '../../functions/aggregation/manifests.ts';
import { localStatsSource, readErrors, readModelStats } from '../../functions/aggregation/queries.ts';
import { aggregateResultEvent } from '../../functions/aggregation/results.ts';
import {
  aggregateShardRecords,
  type StreamDeps,
  type StreamRecord,
} from '../../functions/aggregation/stream.ts';
import { aggregateKinesisEvent } from '../../functions/aggregation/stream-event.ts';
import { localLiveSource, readVersionSeries } from '../../infra/local/dashboard/live-snapshot.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { summarizeResults } from '../../shared/aggregation/summary.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { EdgeloopMetrics } from '../../shared/metrics.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { AGGREGATE_WRITE_SHARDS, aggregateKeys, buckets, tables } from '../../shared/topology.ts';

let stack: LocalStack;
const start = Date.now() - 5 * 60_000;
const MODELS = [
  's-exact',
  's-twice',
  's-crash',
  's-reshard',
  's-bad',
  's-parity',
  's-direct',
  's-event',
  's-pool',
];

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'ERROR' });
  for (const model of MODELS) await putManifest(s3Client(), manifestFor(model, 1, 0.7));
});

afterAll(async () => {
  await stack?.stop();
});

function deps(ddb: DynamoDBDocumentClient = dynamoClient()): StreamDeps {
  return {
    ddb,
    tables: { aggregates: tables.aggregates.localName, errors: tables.errors.localName },
    manifests: new ManifestCache(s3Client, buckets.models.localName),
    metrics: new EdgeloopMetrics('test'),
    logger: { info: () => {}, warn: () => {} },
  };
}

interface Sent {
  thing: string;
  batchId: string;
  results: InferenceResult[];
  summary: boolean;
}

/** Batches of `gateways` gateways, `perGateway` each, half of them in summary mode. */
function traffic(model: string, gateways: number, perGateway: number, seed: number): Sent[] {
  const sent: Sent[] = [];
  for (let n = 0; n < perGateway; n++)
    for (let g = 0; g < gateways; g++)
      sent.push({
        thing: `gw-${g}`,
        batchId: `${model}-${g}-${n}`,
        results: makeResults(40, {
          seed: seed + g * 100 + n,
          startTs: start + n * 25_000 + g * 7,
          idPrefix: `${model}${g}-${n}`,
          truthEvery: 4,
        }),
        summary: (g + n) % 2 === 0,
      });
  return sent;
}

function payloadOf(model: string, batch: Sent): string {
  if (!batch.summary)
    return batchPayload({ batchId: batch.batchId, model, version: 1, sentAt: start, results: batch.results });
  return JSON.stringify({
    mode: 'summary',
    batchId: batch.batchId,
    model,
    version: 1,
    sentAt: start,
    cells: summarizeResults(batch.results, 0.7),
  });
}

/** Stream records as the IoT rule puts them: the rule event, sequence numbers rising per shard. */
function records(model: string, batches: Sent[], shardId: string, firstSeq = 1000n): StreamRecord[] {
  return batches.map((batch, i) => ({
    shardId,
    sequenceNumber: String(49_000_000_000_000_000_000n + firstSeq + BigInt(i) * 7n),
    data: Buffer.from(JSON.stringify(ruleEvent(batch.thing, payloadOf(model, batch), Date.now()))).toString(
      'base64',
    ),
  }));
}

/** Every number to 12 significant digits. */
const rounded = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value), (_, v) => (typeof v === 'number' ? Number(v.toPrecision(12)) : v));

const total = (batches: Sent[]) => batches.reduce((sum, batch) => sum + batch.results.length, 0);
const since = start - 60_000;

const thingTotal = (model: string, thing: string) => thingResultCount(dynamoClient(), model, thing);

describe('stream aggregator against dynalite and the local S3', () => {
  it('aggregates many gateways in detail and summary mode exactly, one write per item per call', async () => {
    // Prepare
    const batches = traffic('s-exact', 12, 4, 1);
    const input = records('s-exact', batches, 'shardId-000000000000');

    // Act
    const outcome = await aggregateShardRecords(input, deps());
    const stats = await readModelStats(localStatsSource(), 's-exact', since);

    // Assess
    expect(stats.inferences).toBe(total(batches));
    expect(outcome).toMatchObject({ records: 48, rejected: 0, duplicates: 0, counted: total(batches) });
    const minutes = new Set(batches.flatMap((b) => b.results.map((r) => aggregateKeys.minute(r.ts))));
    expect(outcome.writes.model).toBe(minutes.size);
    expect(await thingTotal('s-exact', 'gw-3')).toBe(
      total(batches.filter((batch) => batch.thing === 'gw-3')),
    );
  });

  it('counts once when a whole stream segment is delivered twice, and when devices replay batches', async () => {
    // Prepare: three calls over one shard; the whole segment then arrives again, and two
    // gateways' outbox replays come back as new records (new sequence numbers) later on.
    const batches = traffic('s-twice', 10, 3, 2);
    const segment = records('s-twice', batches, 'shardId-000000000001');
    const replays = records(
      's-twice',
      batches.filter((batch) => batch.thing === 'gw-2' || batch.thing === 'gw-5'),
      'shardId-000000000001',
      9_000_000n,
    );

    // Act
    const first = [
      await aggregateShardRecords(segment.slice(0, 10), deps()),
      await aggregateShardRecords(segment.slice(10, 20), deps()),
      await aggregateShardRecords(segment.slice(20), deps()),
    ];
    const again = await aggregateShardRecords(segment, deps());
    const devices = await aggregateShardRecords([...replays, ...replays], deps());
    const stats = await readModelStats(localStatsSource(), 's-twice', since);

    // Assess
    expect(first.reduce((sum, o) => sum + o.counted, 0)).toBe(total(batches));
    expect(again.counted).toBe(0);
    expect(devices.counted).toBe(0);
    expect(devices.duplicates).toBe(replays.length * 2);
    expect(stats.inferences).toBe(total(batches));
  });

  it('finishes a call that crashed between its thing and model writes, also when retried bisected', async () => {
    // Prepare: the first attempt writes every thing item, then the model writes fail.
    const batches = traffic('s-crash', 8, 3, 3);
    const input = records('s-crash', batches, 'shardId-000000000002');
    const real = dynamoClient();
    const flaky = failingUpdates(
      real,
      (pk) => pk.startsWith('model#'),
      'ProvisionedThroughputExceededException',
    );
    await expect(aggregateShardRecords(input, deps(flaky))).rejects.toThrow(/Throughput/);

    // Act: Lambda bisects the failed batch and retries each half, then the whole again.
    const halves = [
      await aggregateShardRecords(input.slice(0, 12), deps()),
      await aggregateShardRecords(input.slice(12), deps()),
    ];
    const whole = await aggregateShardRecords(input, deps());
    const stats = await readModelStats(localStatsSource(), 's-crash', since);

    // Assess
    expect(halves.reduce((sum, o) => sum + o.counted, 0)).toBe(total(batches));
    expect(whole.counted).toBe(0);
    expect(stats.inferences).toBe(total(batches));
    expect(await thingTotal('s-crash', 'gw-0')).toBe(total(batches.filter((b) => b.thing === 'gw-0')));
  });

  it('counts once across a reshard: parent, then children, with a replay crossing shards', async () => {
    // Prepare: a parent shard's records, then its two children; one child gets a device
    // replay of a batch the parent carried (things move between shards on a reshard).
    const batches = traffic('s-reshard', 9, 2, 4);
    const parent = records('s-reshard', batches.slice(0, 9), 'shardId-000000000003');
    const childA = records('s-reshard', batches.slice(9, 13), 'shardId-000000000004', 5_000_000n);
    const childB = records(
      's-reshard',
      [...batches.slice(13), batches[0] as Sent],
      'shardId-000000000005',
      6_000_000n,
    );

    // Act
    const outcomes = [];
    for (const shard of [parent, childA, childB, childA])
      outcomes.push(await aggregateShardRecords(shard, deps()));
    const stats = await readModelStats(localStatsSource(), 's-reshard', since);

    // Assess
    expect(stats.inferences).toBe(total(batches));
    expect(outcomes[2]?.duplicates).toBe(1);
    expect(outcomes[3]?.counted).toBe(0);
  });

  it('sets malformed records and inconsistent summary cells aside with reasons, keeping the good ones', async () => {
    // Prepare
    const good = traffic('s-bad', 2, 1, 5);
    const cells = summarizeResults(good[0]?.results ?? [], 0.7);
    const broken = {
      mode: 'summary',
      batchId: 's-bad-broken',
      model: 's-bad',
      version: 1,
      sentAt: start,
      cells: [{ ...cells[0], n: (cells[0]?.n ?? 0) + 1 }, ...cells.slice(1)],
    };
    const extra = (data: string, i: number): StreamRecord => ({
      shardId: 'shardId-000000000006',
      sequenceNumber: String(59_000_000_000n + BigInt(i)),
      data,
    });
    const input = [
      ...records('s-bad', good, 'shardId-000000000006'),
      extra(Buffer.from('not json at all').toString('base64'), 1),
      extra(
        Buffer.from(JSON.stringify(ruleEvent('gw-x', '{"batchId":1}', Date.now()))).toString('base64'),
        2,
      ),
      extra(
        Buffer.from(JSON.stringify(ruleEvent('gw-y', JSON.stringify(broken), Date.now()))).toString('base64'),
        3,
      ),
    ];
    const errorsSince = Date.now() - 1000;

    // Act
    const outcome = await aggregateShardRecords(input, deps());
    const stats = await readModelStats(localStatsSource(), 's-bad', since);
    const errors = await readErrors(localStatsSource(), errorsSince, 20);

    // Assess
    expect(outcome).toMatchObject({ rejected: 2, rejectedParts: 1 });
    // The broken batch's other cells still count.
    const keptCells = cells.slice(1).reduce((sum, cell) => sum + cell.n, 0);
    expect(stats.inferences).toBe(total(good) + keptCells);
    const reasons = errors.latest.map((error) => error.reason).join('\n');
    expect(reasons).toMatch(/not an IoT rule event/);
    expect(reasons).toMatch(/invalid result batch/);
    expect(reasons).toMatch(/cells\.0: classes add up to \d+, not n/);
  });

  it('gives stats and the dashboard the figures the direct path gives for the same input', async () => {
    // Prepare
    const batches = traffic('s-parity', 6, 3, 6).map((batch) => ({ ...batch, summary: false }));
    const direct = deps();

    // Act
    await aggregateShardRecords(records('s-parity', batches, 'shardId-000000000007'), deps());
    for (const batch of batches)
      await aggregateResultEvent(ruleEvent(batch.thing, payloadOf('s-direct', batch), Date.now()), {
        ...direct,
        tables: { ...direct.tables, idempotency: tables.idempotency.localName },
      });
    const [stream, old] = await Promise.all([
      readModelStats(localStatsSource(), 's-parity', since),
      readModelStats(localStatsSource(), 's-direct', since),
    ]);
    const now = Date.now();
    const [streamSeries, oldSeries] = await Promise.all([
      readVersionSeries(localLiveSource(), 's-parity', since, now),
      readVersionSeries(localLiveSource(), 's-direct', since, now),
    ]);

    // Assess
    const { model: _a, ...streamFigures } = stream;
    const { model: _b, ...oldFigures } = old;
    expect(streamFigures.versions).toHaveLength(1);
    expect(rounded({ ...streamFigures, since: '', until: '' })).toEqual(
      rounded({ ...oldFigures, since: '', until: '' }),
    );
    // Sums of the same floats in another order may differ in the last bit.
    expect(rounded(streamSeries.map(({ model: _m, ...rest }) => rest))).toEqual(
      rounded(oldSeries.map(({ model: _m, ...rest }) => rest)),
    );
  });

  it('maps a Kinesis event by shard and reports a failed shard from its first record', async () => {
    // Prepare
    const batches = traffic('s-event', 2, 1, 7);
    const shardA = records('s-event', batches.slice(0, 1), 'shardId-000000000008', 77_000_000n);
    const shardB = records('s-event', batches.slice(1), 'shardId-000000000009', 78_000_000n);
    const event = {
      Records: [...shardA, ...shardB].map((record) => ({
        eventID: `${record.shardId}:${record.sequenceNumber}`,
        kinesis: { data: record.data, sequenceNumber: record.sequenceNumber, partitionKey: 'x' },
      })),
    } as unknown as Parameters<typeof aggregateKinesisEvent>[0];
    const real = dynamoClient();
    const failingB = failingUpdates(
      real,
      (pk) => pk === aggregateKeys.modelShard('s-event', 9 % AGGREGATE_WRITE_SHARDS),
      'InternalServerError',
    );

    // Act
    const response = await aggregateKinesisEvent(event, deps(failingB));

    // Assess
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: shardB[0]?.sequenceNumber }]);
  });

  it('returns from a failed call only once its writes in flight have settled', async () => {
    // Prepare: 40 gateways' thing items, one of which fails at once while the others are slow.
    const input = records('s-pool', traffic('s-pool', 40, 1, 11), 'shardId-000000000010');
    const real = dynamoClient();
    let inFlight = 0;
    let startedAfterReturn = 0;
    let returned = false;
    const slow = {
      send: async (command: { input: { Key?: Record<string, unknown> } }) => {
        if (returned) startedAfterReturn++;
        if (
          command instanceof UpdateCommand &&
          command.input.Key?.pk === aggregateKeys.thing('s-pool', 'gw-0')
        )
          throw new Error('InternalServerError');
        inFlight++;
        try {
          await new Promise((resolve) => setTimeout(resolve, 30));
          return await real.send(command as never);
        } finally {
          inFlight--;
        }
      },
    } as unknown as DynamoDBDocumentClient;

    // Act
    const failure = await aggregateShardRecords(input, deps(slow)).catch((error: unknown) => error);
    const inFlightAtReturn = inFlight;
    returned = true;
    await new Promise((resolve) => setTimeout(resolve, 100));

    // Assess
    expect(String(failure)).toContain('InternalServerError');
    expect(inFlightAtReturn).toBe(0);
    expect(startedAfterReturn).toBe(0);
  });
});
