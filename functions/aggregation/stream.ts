/**
 * The stream aggregator's work for one batch of Kinesis records (one shard, in sequence
 * order, thousands of gateways' batches): decode and validate each record, set bad input
 * aside, then write each DynamoDB item once for the whole batch.
 *
 * Layout and exactly-once, without transactions and without any set that grows with the fleet:
 *
 * 1. Thing items (`thing#<model>#<thing>`, one per thing, version and minute) take each
 *    gateway's cells (counts and class mix; the histograms live in the model items), and mark each batch added with a top-level attribute `t:<batch tag>`
 *    whose value is a tag of the stream record (sequence number) that added it. A thing sends
 *    at most 100 messages/s (IoT Core's fixed per-connection limit), so these marks are
 *    bounded by one gateway's own rate, never by the fleet's. The update is conditional on
 *    the marks being absent; when one is present, the record tag tells the two cases apart:
 *    the same record (a redelivery, a Lambda retry, a crash after this write) still counts
 *    towards the model items below, while another record (a device's outbox replay, an MQTT
 *    duplicate, across reshards too) is a duplicate and counts nowhere.
 * 2. Model items are write-sharded: `model#<model>#w<k>` with k picked by the stream shard, and
 *    one item per (minute, version, stream shard). Each carries `hwm`, the highest sequence
 *    number of its shard it holds, and an update only goes in when all its records are above
 *    it. A shard is processed in order (ParallelizationFactor 1), so a retried or bisected
 *    range re-adds nothing and finishes what an interrupted attempt left. A resharded stream
 *    starts new shards, hence new items; Lambda reads a parent shard before its children.
 *
 * Readers sum the `model#<model>` partition (the direct path) and the write shards.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  type AggregateCell,
  type AggregateKey,
  cellsByMinute,
  countedClasses,
  DEFAULT_LOW_CONFIDENCE,
  emptyCell,
  type MinuteCell,
  mergeCells,
  summarizeCell,
  type TrainingDistribution,
  trainingDistributionOf,
} from '../../shared/aggregation/aggregate.ts';
import { checkResults, type RejectedResult } from '../../shared/aggregation/decode.ts';
import { checkSummaryCells, decodeAnyBatch } from '../../shared/aggregation/summary.ts';
import type { EdgeloopMetrics } from '../../shared/metrics.ts';
import { MetricUnit } from '../../shared/metrics.ts';
import { AGGREGATE_WRITE_SHARDS, aggregateKeys } from '../../shared/topology.ts';
import { batchTag, cellAdds, type ExpressionParts, keySets } from './aggregate-item.ts';
import { type ErrorRecord, intake, recordErrors } from './errors-store.ts';
import { isConditionFailure } from './idempotency.ts';
import type { ManifestLookup } from './manifests.ts';
import { resultErrors } from './results.ts';

export interface StreamRecord {
  shardId: string;
  sequenceNumber: string;
  /** The record's data, base64: the rule event the IoT rule put on the stream. */
  data: string;
}

export interface StreamDeps {
  ddb: DynamoDBDocumentClient;
  tables: { aggregates: string; errors: string };
  manifests: ManifestLookup;
  metrics: EdgeloopMetrics;
  logger: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
  /** UpdateItems in flight at once (default 32). */
  concurrency?: number;
}

export interface StreamOutcome {
  records: number;
  /** Records set aside whole (not a rule event, not JSON, not a batch). */
  rejected: number;
  /** Results or summary cells set aside inside otherwise good batches. */
  rejectedParts: number;
  /** Batches another record had already added (outbox replays, duplicates). */
  duplicates: number;
  /** Results newly added to the model items by this call. */
  counted: number;
  /** Item writes this call made (conditional failures included). */
  writes: { thing: number; model: number };
}

/** Sequence numbers compare as text once padded to Kinesis' maximum of 128 digits. */
export const paddedSequence = (sequenceNumber: string) => sequenceNumber.padStart(128, '0');

/** The write shard (0..AGGREGATE_WRITE_SHARDS-1) of a stream shard: its index, or a hash. */
export function writeShardOf(shardId: string): number {
  const index = /(\d+)$/.exec(shardId)?.[1];
  if (index !== undefined) return Number(BigInt(index) % BigInt(AGGREGATE_WRITE_SHARDS));
  return createHash('sha256').update(shardId).digest().readUInt32BE(0) % AGGREGATE_WRITE_SHARDS;
}

/** A 48-bit tag of the record that added a batch to a thing item. */
const recordTag = (shardId: string, sequenceNumber: string) =>
  createHash('sha256').update(`${shardId}\n${sequenceNumber}`).digest('base64url').slice(0, 8);

/** One batch's cell for one minute, on its way to one thing item and one model item. */
interface Portion {
  seq: string;
  batchTag: string;
  recordTag: string;
  model: string;
  version: number;
  thing: string;
  minute: string;
  cell: AggregateCell;
}

/** Batch items of one shard (call once per shard, records in sequence order). */
export async function aggregateShardRecords(
  records: readonly StreamRecord[],
  deps: StreamDeps,
): Promise<StreamOutcome> {
  const now = (deps.now ?? Date.now)();
  const outcome: StreamOutcome = {
    records: records.length,
    rejected: 0,
    rejectedParts: 0,
    duplicates: 0,
    counted: 0,
    writes: { thing: 0, model: 0 },
  };
  const shardId = records[0]?.shardId;
  if (shardId === undefined) return outcome;
  if (records.some((record) => record.shardId !== shardId))
    throw new Error('aggregateShardRecords takes the records of one shard; group them by shard first');

  const errors: ErrorRecord[] = [];
  const portions: Portion[] = [];
  const seenBatches = new Set<string>();
  for (const record of records) {
    const decoded = await decodeRecord(record, now, deps);
    if (!decoded.ok) {
      errors.push(decoded.record);
      outcome.rejected += 1;
      continue;
    }
    errors.push(...decoded.errors);
    outcome.rejectedParts += decoded.rejectedParts;
    const tag = batchTag(decoded.thing, decoded.batchId);
    // The same batch twice in one call: the first record adds it, the later ones are duplicates.
    if (seenBatches.has(tag)) {
      outcome.duplicates += 1;
      continue;
    }
    seenBatches.add(tag);
    const seq = paddedSequence(record.sequenceNumber);
    const rTag = recordTag(shardId, record.sequenceNumber);
    for (const { minute, cell } of decoded.cells)
      portions.push({
        seq,
        batchTag: tag,
        recordTag: rTag,
        model: decoded.model,
        version: decoded.version,
        thing: decoded.thing,
        minute,
        cell,
      });
  }
  if (errors.length > 0) await recordErrors(deps.ddb, deps.tables.errors, errors);

  // 1. Thing items: which portions this shard's records added (now or in an earlier attempt).
  const byThing = groupBy(portions, (p) => `${p.model}\n${p.thing}\n${p.version}\n${p.minute}`);
  const kept: Portion[] = [];
  const dupBatches = new Set<string>();
  await inPool([...byThing.values()], deps.concurrency ?? 32, async (group) => {
    const result = await applyThingItem(deps, group);
    outcome.writes.thing += result.writes;
    kept.push(...result.kept);
    for (const p of result.duplicates) dupBatches.add(p.batchTag);
  });
  outcome.duplicates += dupBatches.size;

  // 2. Model items: one per (model, version, minute) for this shard, guarded by its hwm.
  const byModel = groupBy(kept, (p) => `${p.model}\n${p.version}\n${p.minute}`);
  const counted = new Map<string, { model: string; version: number; cell: AggregateCell }>();
  await inPool([...byModel.values()], deps.concurrency ?? 32, async (group) => {
    const result = await applyModelItem(deps, shardId, group);
    outcome.writes.model += result.writes;
    const first = group[0] as Portion;
    const key = `${first.model}\n${first.version}`;
    const sum = counted.get(key) ?? { model: first.model, version: first.version, cell: emptyCell() };
    for (const p of result.added) mergeCells(sum.cell, p.cell);
    counted.set(key, sum);
  });

  for (const { model, version, cell } of counted.values()) {
    outcome.counted += cell.count;
    const manifest = await deps.manifests.get(model, version);
    emitStreamMetrics(deps.metrics, model, version, cell, trainingDistributionOf(manifest));
  }
  if (outcome.rejected + outcome.rejectedParts > 0)
    deps.metrics.publishWith({ source: 'results' }, (m) =>
      m.put('aggregatorErrors', outcome.rejected + outcome.rejectedParts),
    );
  return outcome;
}

type DecodedRecord =
  | { ok: false; record: ErrorRecord }
  | {
      ok: true;
      thing: string;
      batchId: string;
      model: string;
      version: number;
      cells: MinuteCell[];
      errors: ErrorRecord[];
      rejectedParts: number;
    };

async function decodeRecord(record: StreamRecord, now: number, deps: StreamDeps): Promise<DecodedRecord> {
  const raw = parseRecordData(record.data);
  const input = intake('results', raw, now, decodeAnyBatch);
  if (!input.ok) return input;
  const { event, value } = input;
  const { envelope } = value;
  const manifest = await deps.manifests.get(envelope.model, envelope.version);
  const rules = {
    receivedAt: event.receivedAt,
    ...(manifest
      ? { labels: countedClasses(manifest), task: manifest.preprocessing.task ?? 'classification' }
      : {}),
  };
  let cells: MinuteCell[];
  let rejected: RejectedResult[];
  if (value.mode === 'detail') {
    const checked = checkResults(value.envelope.results, rules);
    cells = cellsByMinute(checked.results, manifest?.lowConfidence ?? DEFAULT_LOW_CONFIDENCE);
    rejected = checked.rejected;
  } else {
    ({ cells, rejected } = checkSummaryCells(value.envelope.cells, rules));
  }
  return {
    ok: true,
    thing: event.thing,
    batchId: envelope.batchId,
    model: envelope.model,
    version: envelope.version,
    cells,
    errors: rejected.length > 0 ? resultErrors(event, envelope.batchId, rejected) : [],
    rejectedParts: rejected.length,
  };
}

/** Kinesis data -> the JSON rule event, or the raw text for intake to reject with a reason. */
function parseRecordData(data: string): unknown {
  const text = Buffer.from(data, 'base64').toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return { streamRecord: text.slice(0, 1024) };
  }
}

const MAX_ATTEMPTS = 8;

/** One conditional ADD/SET UpdateItem on an aggregates item; false when its condition failed. */
async function conditionalUpdate(
  deps: StreamDeps,
  key: AggregateKey,
  parts: ExpressionParts,
  adds: string[],
  sets: string[],
  condition: string,
): Promise<boolean> {
  try {
    await deps.ddb.send(
      new UpdateCommand({
        TableName: deps.tables.aggregates,
        Key: { pk: key.pk, sk: key.sk },
        UpdateExpression: `ADD ${adds.join(', ')} SET ${sets.join(', ')}`,
        ConditionExpression: condition,
        ExpressionAttributeNames: parts.names,
        ExpressionAttributeValues: parts.values,
      }),
    );
    return true;
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    return false;
  }
}

/**
 * A thing item keeps counts, sums and the class mix but not the histograms: nothing reads
 * percentiles per gateway, and without them the item stays under 1 KB (one write unit).
 */
function withoutHistograms(cell: AggregateCell): AggregateCell {
  return { ...cell, confidenceHist: {}, latencyHist: {} };
}

async function applyThingItem(
  deps: StreamDeps,
  group: Portion[],
): Promise<{ kept: Portion[]; duplicates: Portion[]; writes: number }> {
  const first = group[0] as Portion;
  const key: AggregateKey = {
    level: 'thing',
    pk: aggregateKeys.thing(first.model, first.thing),
    sk: aggregateKeys.sort(first.minute, first.version),
    model: first.model,
    version: first.version,
    minute: first.minute,
    thing: first.thing,
  };
  const kept: Portion[] = [];
  const duplicates: Portion[] = [];
  let pending = group;
  let writes = 0;
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt >= MAX_ATTEMPTS)
      throw new Error(`thing item ${key.pk} ${key.sk} kept changing under its update`);
    const parts: ExpressionParts = { names: {}, values: {} };
    const adds = cellAdds(
      withoutHistograms(pending.reduce((sum, p) => mergeCells(sum, p.cell), emptyCell())),
      parts,
    );
    const sets = keySets(key, parts);
    const conditions: string[] = [];
    pending.forEach((p, i) => {
      parts.names[`#t${i}`] = `t:${p.batchTag}`;
      parts.values[`:t${i}`] = p.recordTag;
      sets.push(`#t${i} = :t${i}`);
      conditions.push(`attribute_not_exists(#t${i})`);
    });
    writes += 1;
    if (await conditionalUpdate(deps, key, parts, adds, sets, conditions.join(' AND '))) {
      kept.push(...pending);
      return { kept, duplicates, writes };
    }
    const item =
      (
        await deps.ddb.send(
          new GetCommand({
            TableName: deps.tables.aggregates,
            Key: { pk: key.pk, sk: key.sk },
            ConsistentRead: true,
          }),
        )
      ).Item ?? {};
    const next: Portion[] = [];
    for (const p of pending) {
      const mark = item[`t:${p.batchTag}`];
      if (mark === undefined) next.push(p);
      else if (mark === p.recordTag) kept.push(p);
      else duplicates.push(p);
    }
    pending = next;
  }
  return { kept, duplicates, writes };
}

async function applyModelItem(
  deps: StreamDeps,
  shardId: string,
  group: Portion[],
): Promise<{ added: Portion[]; writes: number }> {
  const first = group[0] as Portion;
  const key: AggregateKey = {
    level: 'model',
    pk: aggregateKeys.modelShard(first.model, writeShardOf(shardId)),
    sk: aggregateKeys.shardSort(first.minute, first.version, shardId),
    model: first.model,
    version: first.version,
    minute: first.minute,
  };
  let pending = [...group].sort((a, b) => a.seq.localeCompare(b.seq));
  let writes = 0;
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt >= MAX_ATTEMPTS)
      throw new Error(`model item ${key.pk} ${key.sk} kept changing under its update`);
    const parts: ExpressionParts = { names: { '#hwm': 'hwm', '#shard': 'shard' }, values: {} };
    const adds = cellAdds(
      pending.reduce((sum, p) => mergeCells(sum, p.cell), emptyCell()),
      parts,
    );
    const sets = [...keySets(key, parts), '#hwm = :last', '#shard = :shard'];
    parts.values[':first'] = pending[0]?.seq;
    parts.values[':last'] = pending.at(-1)?.seq;
    parts.values[':shard'] = shardId;
    writes += 1;
    if (
      await conditionalUpdate(deps, key, parts, adds, sets, 'attribute_not_exists(#hwm) OR #hwm < :first')
    ) {
      return { added: pending, writes };
    }
    const item = await deps.ddb.send(
      new GetCommand({
        TableName: deps.tables.aggregates,
        Key: { pk: key.pk, sk: key.sk },
        ConsistentRead: true,
        ProjectionExpression: 'hwm',
      }),
    );
    const hwm = String(item.Item?.hwm ?? '');
    pending = pending.filter((p) => p.seq > hwm);
  }
  return { added: [], writes };
}

function emitStreamMetrics(
  metrics: EdgeloopMetrics,
  model: string,
  version: number,
  counted: AggregateCell,
  training: TrainingDistribution | undefined,
): void {
  if (counted.count === 0) return;
  const summary = summarizeCell(counted, training);
  metrics.publishWith({ model, version: String(version) }, (m) => {
    m.put('inferences', counted.count);
    m.put('lowConfidence', counted.lowConfidence);
    if (counted.scored > 0) m.put('anomalyResults', counted.classes.anomaly ?? 0);
    if (summary.latencyP99Ms !== null) m.put('latencyP99', summary.latencyP99Ms, MetricUnit.Milliseconds);
    if (summary.liveAccuracy !== null) m.put('liveAccuracy', summary.liveAccuracy, MetricUnit.NoUnit);
    if (summary.valueMean !== null) m.put('predictionMean', summary.valueMean, MetricUnit.NoUnit);
    if (summary.liveRmse !== null) m.put('liveRmse', summary.liveRmse, MetricUnit.NoUnit);
    if (summary.drift) m.put('drift', summary.drift.psi, MetricUnit.NoUnit);
  });
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/**
 * Runs `work` over `items` with at most `limit` in flight. After a failure no new item
 * starts, and it rejects with the first failure once the ones in flight have settled: a
 * handler that returns (its shard to be retried) leaves no write of this call running.
 */
async function inPool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failure) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(runners);
  if (failure) throw failure.error;
}
