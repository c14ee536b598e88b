/**
 * The local Kinesis event source mapping against a real kinesalite: batch size and order per
 * shard, partial batch responses, bisect on error down to the failing record and the
 * on-failure destination, checkpoints across a restart, and child shards after parents.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../../infra/local/endpoints.ts';
import {
  type EventSourceMapping,
  type MappingFailure,
  type MappingSettings,
  startEventSourceMapping,
} from '../../infra/local/event-source-mapping.ts';
import { localKinesisClient, startKinesalite } from '../../infra/local/kinesis.ts';

let server: Server;
let kinesis: KinesisClient;
let dir: string;

const settings: MappingSettings = {
  batchSize: 10,
  maxBatchingWindowSeconds: 0,
  bisectBatchOnFunctionError: true,
  reportBatchItemFailures: true,
  retryAttempts: 2,
  maxRecordAgeSeconds: 86_400,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeloop-esm-'));
  server = startKinesalite(join(dir, 'kinesis'));
  const port = await listen(server, 0);
  kinesis = localKinesisClient(`http://127.0.0.1:${port}`);
});

afterAll(async () => {
  kinesis?.destroy();
  await new Promise((done) => server?.close(done));
  await rm(dir, { recursive: true, force: true });
});

async function createStream(name: string, shards = 1): Promise<void> {
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (;;) {
    const { StreamDescriptionSummary } = await kinesis.send(
      new DescribeStreamSummaryCommand({ StreamName: name }),
    );
    if (StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function put(stream: string, texts: string[], key = 'gw-1'): Promise<void> {
  for (const text of texts)
    await kinesis.send(
      new PutRecordCommand({ StreamName: stream, PartitionKey: key, Data: Buffer.from(text) }),
    );
}

const textsOf = (event: KinesisStreamEvent) =>
  event.Records.map((record) => Buffer.from(record.kinesis.data, 'base64').toString());
const numbered = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `r${from + i}`);

interface Run {
  calls: string[][];
  /** The shard of each call, from its records' eventID. */
  shards: string[];
  failures: MappingFailure[];
  mapping: EventSourceMapping;
}

function run(
  stream: string,
  handler: (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse | undefined>,
  checkpointFile = join(dir, `${stream}.json`),
): Run {
  const calls: string[][] = [];
  const shards: string[] = [];
  const failures: MappingFailure[] = [];
  const mapping = startEventSourceMapping({
    kinesis,
    streamName: stream,
    settings,
    pollIntervalMs: 20,
    checkpointFile,
    onFailure: (failure) => failures.push(failure),
    invoke: async (event) => {
      calls.push(textsOf(event));
      shards.push(event.Records[0]?.eventID.split(':')[0] ?? '');
      return handler(event);
    },
  });
  return { calls, shards, failures, mapping };
}

describe('local Kinesis event source mapping', () => {
  it('hands each shard its records in order, at most batchSize per call', async () => {
    // Prepare
    await createStream('esm-order');
    await put('esm-order', numbered(0, 25));

    // Act
    const { calls, mapping } = run('esm-order', async () => undefined);
    await mapping.idle();
    await mapping.stop();

    // Assess
    expect(calls.every((call) => call.length <= settings.batchSize)).toBe(true);
    expect(calls.flat()).toEqual(numbered(0, 25));
  });

  it('retries from the record a partial batch response names, and only from there', async () => {
    // Prepare
    await createStream('esm-partial');
    await put('esm-partial', numbered(0, 8));
    let failedOnce = false;

    // Act
    const { calls, mapping } = run('esm-partial', async (event) => {
      const at = event.Records.findIndex((record) => textsOf({ Records: [record] })[0] === 'r3');
      if (at < 0 || failedOnce) return undefined;
      failedOnce = true;
      return { batchItemFailures: [{ itemIdentifier: event.Records[at]?.kinesis.sequenceNumber ?? '' }] };
    });
    await mapping.idle();
    await mapping.stop();

    // Assess
    expect(calls[0]).toEqual(numbered(0, 8));
    expect(calls[1]).toEqual(numbered(3, 8));
    expect(calls).toHaveLength(2);
  });

  it('bisects a throwing batch down to the bad record, sends it to the on-failure destination and goes on', async () => {
    // Prepare
    await createStream('esm-bisect');
    await put('esm-bisect', numbered(0, 8));
    const done: string[] = [];

    // Act
    const { calls, failures, mapping } = run('esm-bisect', async (event) => {
      const texts = textsOf(event);
      if (texts.includes('r5')) throw new Error('poison record');
      done.push(...texts);
      return undefined;
    });
    await mapping.idle();
    await mapping.stop();

    // Assess
    expect(done).toEqual(numbered(0, 8).filter((text) => text !== 'r5'));
    expect(failures).toEqual([
      expect.objectContaining({
        reason: 'RetryAttemptsExhausted',
        batchSize: 1,
        attempts: 3,
        lastError: 'poison record',
      }),
    ]);
    // Halving is free; the one bad record then gets its first call and retryAttempts more.
    expect(calls.filter((call) => call.length === 1 && call[0] === 'r5')).toHaveLength(
      settings.retryAttempts + 1,
    );
  });

  it('delivers every record put while it polls, none skipped by an empty read', async () => {
    // Prepare
    await createStream('esm-concurrent', 2);
    const texts = numbered(0, 600);
    const delivered: string[] = [];
    const { mapping } = run('esm-concurrent', async (event) => {
      delivered.push(...textsOf(event));
      return undefined;
    });

    // Act: puts from 20 writers at once while the mapping keeps reading both shards.
    for (let i = 0; i < texts.length; i += 20)
      await Promise.all(texts.slice(i, i + 20).map((text, j) => put('esm-concurrent', [text], `gw-${j}`)));
    await mapping.idle();
    await mapping.stop();

    // Assess
    expect([...delivered].sort()).toEqual([...texts].sort());
  });

  it('resumes after its checkpoint when restarted', async () => {
    // Prepare
    await createStream('esm-restart');
    const checkpoints = join(dir, 'esm-restart-checkpoints.json');
    await put('esm-restart', numbered(0, 4));
    const first = run('esm-restart', async () => undefined, checkpoints);
    await first.mapping.idle();
    await first.mapping.stop();
    await put('esm-restart', numbered(4, 7));

    // Act
    const second = run('esm-restart', async () => undefined, checkpoints);
    await second.mapping.idle();
    await second.mapping.stop();

    // Assess
    expect(first.calls.flat()).toEqual(numbered(0, 4));
    expect(second.calls.flat()).toEqual(numbered(4, 7));
  });

  it('reads a split shard to its end before its children', async () => {
    // Prepare
    await createStream('esm-split');
    await put('esm-split', numbered(0, 5), 'gw-a');
    const [parent] = (await kinesis.send(new ListShardsCommand({ StreamName: 'esm-split' }))).Shards ?? [];
    await kinesis.send(
      new SplitShardCommand({
        StreamName: 'esm-split',
        ShardToSplit: parent?.ShardId,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    for (;;) {
      const { StreamDescriptionSummary } = await kinesis.send(
        new DescribeStreamSummaryCommand({ StreamName: 'esm-split' }),
      );
      if (StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await put('esm-split', numbered(5, 9), 'gw-a');

    // Act
    const { calls, shards, mapping } = run('esm-split', async () => undefined);
    await mapping.idle();
    await mapping.stop();

    // Assess
    expect(calls.flat()).toEqual(numbered(0, 9));
    expect(calls[0]).toEqual(numbered(0, 5));
    expect(shards[0]).toBe(parent?.ShardId);
    expect(shards.slice(1).every((shard) => shard !== parent?.ShardId)).toBe(true);
  });
});
