/**
 * A Lambda Kinesis event -> per-shard record lists for aggregateShardRecords, and the partial
 * batch response: a shard whose writes failed reports its first record, so Lambda retries
 * that shard's records from there (the others are checkpointed).
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { errorMessage } from '../../shared/errors.ts';
import { aggregateShardRecords, type StreamDeps, type StreamRecord } from './stream.ts';

/** The shard of a Kinesis event record: eventID is `<shardId>:<sequenceNumber>`. */
export function shardOfEventId(eventId: string): string {
  const colon = eventId.lastIndexOf(':');
  return colon > 0 ? eventId.slice(0, colon) : eventId;
}

export async function aggregateKinesisEvent(
  event: KinesisStreamEvent,
  deps: StreamDeps,
): Promise<KinesisStreamBatchResponse> {
  const byShard = new Map<string, StreamRecord[]>();
  for (const record of event.Records ?? []) {
    const shardId = shardOfEventId(record.eventID);
    const list = byShard.get(shardId) ?? [];
    list.push({ shardId, sequenceNumber: record.kinesis.sequenceNumber, data: record.kinesis.data });
    byShard.set(shardId, list);
  }
  const failures: KinesisStreamBatchResponse['batchItemFailures'] = [];
  for (const records of byShard.values()) {
    try {
      const outcome = await aggregateShardRecords(records, deps);
      deps.logger.info('stream batch aggregated', { ...outcome, writes: undefined, ...outcome.writes });
    } catch (error) {
      deps.logger.warn('stream batch failed; Lambda retries it from its first record', {
        error: errorMessage(error),
      });
      failures.push({ itemIdentifier: records[0]?.sequenceNumber ?? '' });
    }
  }
  return { batchItemFailures: failures };
}
