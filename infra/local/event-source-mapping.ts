/**
 * The local stand-in for a Lambda event source mapping on a Kinesis stream, with the
 * settings the CDK stack deploys (streamMapping in the topology):
 *  - one poller per shard, one invocation in flight per shard (ParallelizationFactor 1),
 *    records in sequence order; a child shard (after a split or merge) starts only once its
 *    parents are read to their end, as Lambda does;
 *  - a batch is invoked when it holds `batchSize` records, reaches Lambda's 6 MB payload
 *    limit, its batching window has passed since its first record arrived on the stream, or
 *    its shard ends;
 *  - a synchronous invocation; a thrown error is retried (bisected into halves when
 *    bisectBatchOnFunctionError; a split is not a retry, as in Lambda), a partial batch response retries from the reported
 *    record (an unknown or empty identifier fails the whole batch, as in Lambda), records
 *    older than maxRecordAge or past retryAttempts go to the on-failure destination with
 *    the batch's metadata, and the shard moves on;
 *  - the checkpoint (last sequence number done per shard) is kept in a file in the data
 *    dir, so a restart resumes after it and redelivers anything it had not checkpointed.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  type _Record as KinesisRecord,
  ListShardsCommand,
  type Shard,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { errorMessage } from '../../shared/errors.ts';
import type { streamMapping } from '../../shared/topology.ts';
import { LOCAL_REGION } from './env.ts';

/** Lambda's limit on a synchronous invocation's payload. */
export const INVOCATION_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** The event's JSON around one record's data (ids, ARNs, names), counted toward the limit. */
const RECORD_OVERHEAD_BYTES = 600;
/** Lambda polls each shard about once a second when it has caught up. */
const DEFAULT_POLL_MS = 1_000;
const RETRY_BACKOFF_MS = 50;

/** The mapping's settings, as declared in the topology (streamMapping) or narrower in tests. */
export type MappingSettings = {
  [K in
    | 'batchSize'
    | 'maxBatchingWindowSeconds'
    | 'bisectBatchOnFunctionError'
    | 'reportBatchItemFailures'
    | 'retryAttempts'
    | 'maxRecordAgeSeconds']: (typeof streamMapping)[K] extends number ? number : boolean;
};

/** What the on-failure destination gets: the batch's metadata, as Lambda sends to SQS. */
export interface MappingFailure {
  reason: 'RetryAttemptsExhausted' | 'RecordAgeExceeded';
  shardId: string;
  startSequenceNumber: string;
  endSequenceNumber: string;
  batchSize: number;
  attempts: number;
  lastError?: string;
}

export interface EventSourceMappingOptions {
  kinesis: KinesisClient;
  streamName: string;
  settings: MappingSettings;
  /** The function, invoked synchronously; its resolved value is the batch response. */
  invoke: (event: KinesisStreamEvent) => Promise<unknown>;
  onFailure: (failure: MappingFailure) => void;
  /** A JSON file of the checkpoints (created when missing). */
  checkpointFile: string;
  /** Overrides settings.maxBatchingWindowSeconds (tests and benches compress time). */
  batchingWindowMs?: number;
  pollIntervalMs?: number;
  log?: (line: string) => void;
}

export interface EventSourceMapping {
  /** Resolves once every shard has handed all the records it has to the function. */
  idle(): Promise<void>;
  /** Stops polling after the invocations in flight (their records are checkpointed or not). */
  stop(): Promise<void>;
}

interface ShardCheckpoint {
  /** The last sequence number the function was done with (success or on-failure). */
  sequenceNumber?: string;
  /** The shard is closed and every record of it is done. */
  ended?: boolean;
}

class CheckpointStore {
  private readonly shards: Record<string, ShardCheckpoint>;

  constructor(private readonly file: string) {
    this.shards = existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, ShardCheckpoint>)
      : {};
  }

  get(shardId: string): ShardCheckpoint {
    return this.shards[shardId] ?? {};
  }

  set(shardId: string, checkpoint: ShardCheckpoint): void {
    this.shards[shardId] = checkpoint;
    // Written whole and renamed into place: a crash leaves the old or the new file, not half.
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.shards));
    renameSync(`${this.file}.tmp`, this.file);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function startEventSourceMapping(options: EventSourceMappingOptions): EventSourceMapping {
  const { kinesis, streamName, settings } = options;
  const log = options.log ?? (() => {});
  const windowMs = options.batchingWindowMs ?? settings.maxBatchingWindowSeconds * 1000;
  const pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  const checkpoints = new CheckpointStore(options.checkpointFile);
  const streamArn = `arn:aws:kinesis:${LOCAL_REGION}:000000000000:stream/${streamName}`;
  const pollers = new Map<string, ShardPoller>();
  let stopped = false;
  let idleWaiters: { since: number; resolve: () => void }[] = [];
  /** When the last shard listing that found every readable shard polled started. */
  let discoveredAt = Number.NEGATIVE_INFINITY;

  // Idle since `since`: a listing and, on every shard, an empty read that both started after
  // it, so a record put just before idle() was called cannot be missed.
  const isIdle = (since: number) =>
    discoveredAt >= since && [...pollers.values()].every((poller) => poller.isIdleSince(since));
  const wakeIdle = () => {
    idleWaiters = idleWaiters.filter((waiter) => {
      if (!isIdle(waiter.since)) return true;
      waiter.resolve();
      return false;
    });
  };

  class ShardPoller {
    private iterator: string | undefined;
    /** The last record read from this shard (checkpointed or not). */
    private lastRead: string | undefined;
    private buffer: KinesisRecord[] = [];
    /** When the last read that came back empty (with nothing buffered) started. */
    private emptyReadAt = Number.NEGATIVE_INFINITY;
    private invoking = false;
    ended = false;
    readonly running: Promise<void>;

    constructor(private readonly shardId: string) {
      this.running = this.loop().catch((error: unknown) => {
        log(`event source mapping: shard ${shardId} stopped: ${errorMessage(error)}`);
      });
    }

    isIdleSince(since: number): boolean {
      return this.ended || (this.emptyReadAt >= since && this.buffer.length === 0 && !this.invoking);
    }

    private async loop(): Promise<void> {
      const saved = checkpoints.get(this.shardId);
      if (saved.ended) {
        this.ended = true;
        return;
      }
      this.lastRead = saved.sequenceNumber;
      this.iterator = await this.iteratorAfter(saved.sequenceNumber);
      while (!stopped) {
        if (this.iterator && this.buffer.length < settings.batchSize) await this.fetch();
        if (this.buffer.length === 0) {
          if (!this.iterator) {
            this.ended = true;
            checkpoints.set(this.shardId, { ...checkpoints.get(this.shardId), ended: true });
            wakeIdle();
            return;
          }
          wakeIdle();
          await sleep(pollMs);
          continue;
        }
        // The window runs from the oldest waiting record's arrival on the stream, so records
        // that piled up during the last invocation go at once when they have waited enough.
        const waited = Date.now() - (this.buffer[0]?.ApproximateArrivalTimestamp?.getTime() ?? Date.now());
        const full =
          this.buffer.length >= settings.batchSize || bufferBytes(this.buffer) >= INVOCATION_PAYLOAD_BYTES;
        if (!full && this.iterator && waited < windowMs) {
          await sleep(Math.min(pollMs, windowMs - waited));
          continue;
        }
        const batch = takeBatch(this.buffer, settings.batchSize);
        this.invoking = true;
        try {
          await this.deliver(batch);
        } finally {
          this.invoking = false;
        }
        this.buffer.splice(0, batch.length);
        wakeIdle();
      }
    }

    private async iteratorAfter(sequenceNumber: string | undefined): Promise<string | undefined> {
      const { ShardIterator } = await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: this.shardId,
          ...(sequenceNumber
            ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: sequenceNumber }
            : { ShardIteratorType: 'TRIM_HORIZON' }),
        }),
      );
      return ShardIterator;
    }

    private async fetch(): Promise<void> {
      let page: Awaited<ReturnType<typeof getRecords>>;
      const startedAt = performance.now();
      try {
        page = await getRecords(this.iterator as string, settings.batchSize - this.buffer.length);
      } catch (error) {
        if ((error as { name?: string }).name !== 'ExpiredIteratorException') throw error;
        this.iterator = await this.iteratorAfter(this.lastRead);
        return;
      }
      const records = page.Records ?? [];
      this.buffer.push(...records);
      this.iterator = page.NextShardIterator;
      this.lastRead = records.at(-1)?.SequenceNumber ?? this.lastRead;
      if (records.length === 0 && this.buffer.length === 0) this.emptyReadAt = startedAt;
    }

    /** Hands `records` to the function until each is done or sent to the on-failure destination. */
    private async deliver(records: KinesisRecord[]): Promise<void> {
      const queue: { records: KinesisRecord[]; attempts: number; lastError?: string }[] = [
        { records, attempts: 0 },
      ];
      while (queue.length > 0 && !stopped) {
        const part = queue[0] as (typeof queue)[number];
        const oldest = part.records[0]?.ApproximateArrivalTimestamp?.getTime() ?? Date.now();
        if (Date.now() - oldest > settings.maxRecordAgeSeconds * 1000) {
          this.fail(part, 'RecordAgeExceeded');
          queue.shift();
          continue;
        }
        const outcome = await this.invokeOnce(part.records);
        if (outcome.ok) {
          this.checkpoint(part.records.at(-1));
          queue.shift();
          continue;
        }
        // Records before the reported failure are done; the rest are retried.
        const remaining = part.records.slice(outcome.failedFrom);
        this.checkpoint(part.records[outcome.failedFrom - 1]);
        // Splitting a batch does not count toward the retry quota; retrying one part does.
        if (outcome.thrown && settings.bisectBatchOnFunctionError && remaining.length > 1) {
          const half = Math.ceil(remaining.length / 2);
          const split = { attempts: part.attempts, lastError: outcome.error };
          queue.splice(
            0,
            1,
            { ...split, records: remaining.slice(0, half) },
            { ...split, records: remaining.slice(half) },
          );
          continue;
        }
        const attempts = part.attempts + 1;
        const failed = { records: remaining, attempts, lastError: outcome.error };
        if (attempts > settings.retryAttempts) {
          this.fail(failed, 'RetryAttemptsExhausted');
          queue.shift();
          continue;
        }
        queue[0] = failed;
        log(
          `event source mapping: shard ${this.shardId} batch of ${remaining.length} failed (attempt ${attempts}): ${outcome.error}`,
        );
        await sleep(RETRY_BACKOFF_MS);
      }
    }

    private async invokeOnce(
      records: KinesisRecord[],
    ): Promise<{ ok: true } | { ok: false; failedFrom: number; thrown: boolean; error: string }> {
      let response: unknown;
      try {
        response = await options.invoke(kinesisEvent(this.shardId, records));
      } catch (error) {
        return { ok: false, failedFrom: 0, thrown: true, error: errorMessage(error) };
      }
      if (!settings.reportBatchItemFailures) return { ok: true };
      const failures = (response as KinesisStreamBatchResponse | undefined)?.batchItemFailures ?? [];
      if (failures.length === 0) return { ok: true };
      const indexes = failures.map((failure) =>
        records.findIndex((record) => record.SequenceNumber === failure.itemIdentifier),
      );
      // An identifier that names no record of the batch fails the whole batch.
      const failedFrom = indexes.some((index) => index < 0) ? 0 : Math.min(...indexes);
      return {
        ok: false,
        failedFrom,
        thrown: false,
        error: `partial batch response from record ${failedFrom}`,
      };
    }

    private checkpoint(record: KinesisRecord | undefined): void {
      if (record?.SequenceNumber)
        checkpoints.set(this.shardId, {
          ...checkpoints.get(this.shardId),
          sequenceNumber: record.SequenceNumber,
        });
    }

    private fail(
      part: { records: KinesisRecord[]; attempts: number; lastError?: string },
      reason: MappingFailure['reason'],
    ): void {
      options.onFailure({
        reason,
        shardId: this.shardId,
        startSequenceNumber: part.records[0]?.SequenceNumber ?? '',
        endSequenceNumber: part.records.at(-1)?.SequenceNumber ?? '',
        batchSize: part.records.length,
        attempts: part.attempts,
        ...(part.lastError === undefined ? {} : { lastError: part.lastError }),
      });
      this.checkpoint(part.records.at(-1));
    }
  }

  const getRecords = (iterator: string, limit: number) =>
    kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: Math.max(1, limit) }));

  function kinesisEvent(shardId: string, records: KinesisRecord[]): KinesisStreamEvent {
    return {
      Records: records.map(
        (record): KinesisStreamRecord => ({
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: `${shardId}:${record.SequenceNumber}`,
          eventName: 'aws:kinesis:record',
          invokeIdentityArn: 'arn:aws:iam::000000000000:role/local-event-source-mapping',
          awsRegion: LOCAL_REGION,
          eventSourceARN: streamArn,
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey: record.PartitionKey ?? '',
            sequenceNumber: record.SequenceNumber ?? '',
            data: Buffer.from(record.Data ?? new Uint8Array()).toString('base64'),
            approximateArrivalTimestamp: (record.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
          },
        }),
      ),
    };
  }

  /** Starts a poller for each shard whose parents are read to their end; every poll interval. */
  const discovery = (async () => {
    while (!stopped) {
      const startedAt = performance.now();
      try {
        const shards = await listShards();
        const known = new Set(shards.map((shard) => shard.ShardId));
        const ended = (id: string | undefined) =>
          !id || !known.has(id) || pollers.get(id)?.ended === true || checkpoints.get(id).ended === true;
        for (const shard of shards) {
          const id = shard.ShardId as string;
          if (pollers.has(id) || !ended(shard.ParentShardId) || !ended(shard.AdjacentParentShardId)) continue;
          pollers.set(id, new ShardPoller(id));
        }
        // Idle only counts once every shard that can be read has a poller.
        if (shards.every((shard) => pollers.has(shard.ShardId as string))) discoveredAt = startedAt;
      } catch (error) {
        log(`event source mapping: listing the shards of ${streamName} failed: ${errorMessage(error)}`);
      }
      wakeIdle();
      await sleep(pollMs);
    }
  })();

  async function listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let token: string | undefined;
    do {
      const page = await kinesis.send(
        new ListShardsCommand(token ? { NextToken: token } : { StreamName: streamName }),
      );
      shards.push(...(page.Shards ?? []));
      token = page.NextToken;
    } while (token);
    return shards;
  }

  return {
    idle() {
      const since = performance.now();
      return new Promise((resolve) => {
        idleWaiters.push({ since, resolve });
      });
    },
    async stop() {
      stopped = true;
      await discovery;
      await Promise.all([...pollers.values()].map((poller) => poller.running));
      for (const waiter of idleWaiters.splice(0)) waiter.resolve();
    },
  };
}

function recordBytes(record: KinesisRecord): number {
  return Math.ceil(((record.Data?.length ?? 0) * 4) / 3) + RECORD_OVERHEAD_BYTES;
}

function bufferBytes(records: readonly KinesisRecord[]): number {
  let bytes = 0;
  for (const record of records) bytes += recordBytes(record);
  return bytes;
}

/** The first records of `buffer` that fit one invocation: at most `batchSize`, at most 6 MB. */
function takeBatch(buffer: readonly KinesisRecord[], batchSize: number): KinesisRecord[] {
  let bytes = 0;
  let count = 0;
  for (const record of buffer) {
    if (count >= batchSize) break;
    const size = recordBytes(record);
    if (count > 0 && bytes + size > INVOCATION_PAYLOAD_BYTES) break;
    bytes += size;
    count++;
  }
  return buffer.slice(0, count);
}
