/**
 * Fleet scale of the results path: per (design, fleet size) the load on the hottest DynamoDB
 * partition key, the largest item, the cost per million inferences and whether the totals
 * came out exact, measured by running the real aggregation code against dynalite with
 * `ReturnConsumedCapacity: 'TOTAL'` (dynalite sizes items and capacity as DynamoDB does).
 *
 *   npx tsx bench/fleet-scale.ts [--json] [--fleets 1000,10000,100000] [--designs current,new] [--rate 50]
 *                                [--batch-seconds 10] [--minutes 3] [--sample-records 4000] [--e2e]
 *   npm run bench -- fleet
 *
 * `--e2e` adds one line from bench/fleet-e2e.ts: 1,000 MQTT gateways end to end through the
 * local stack's broker, Basic Ingest rule, kinesalite and event source mapping into the stream
 * aggregator, with its throughput and exact totals (`npm run bench -- fleet-e2e` alone).
 *
 * Traffic: every gateway infers `--rate` times a second and sends one batch every
 * `--batch-seconds` (10,000 batches/s at 100,000 gateways). The default rate is 50/s (500
 * results a batch) because IoT Core's rules engine alone charges $0.30 per million messages
 * (one rule + one action): at 10 inferences/s and one batch per 10 s (100 results a message)
 * that is already $0.003 per million inferences, above the $0.002 target, for any design
 * that goes through an IoT rule. `--rate 10` prints those figures.
 *
 * What is real and what is simulated (2 shared cores and dynalite at ~1,000 writes/s cannot
 * take 10,000 batches/s live):
 *  - Time is compressed: the simulated window (`--minutes`, 3 by default) is processed as fast
 *    as dynalite goes; per-second figures are capacity consumed / simulated seconds.
 *  - current: the direct path (IoT rule -> one Lambda call per batch), with the repo's
 *    `cellUpdate` on the model-level minute item, the one hot key, exactly as the results
 *    aggregator sends it. To go through 600,000 batches a minute, one call adds k consecutive
 *    batches (their summed cells and all k tags: the item grows exactly as with single
 *    updates, ~300 calls a minute) and its consumed WCU is counted k times (each single
 *    update would be charged the item size, which differs by at most k tags of 14 bytes).
 *    The per-gateway writes (claim, thing item, done mark) do not depend on the fleet: they
 *    are measured on 40 real `aggregateResultEvent` calls and scaled. Once the minute item
 *    reaches DynamoDB's 400 KB limit the rest of that minute cannot be added: those results
 *    are counted lost (exact: false) and their updates, which fail, consume nothing.
 *  - new: Basic Ingest -> rule -> Kinesis (partition key = thing) -> event source mapping
 *    (batches of up to 10,000 records / 6 MB / a 20 s window) -> the real stream aggregator
 *    (`aggregateShardRecords`) with summary-mode batches made by the real encoder
 *    (`summarizeResults`). The stream gets enough shards for its records and bytes with 20%
 *    headroom, and enough that one call (6 MB) holds a whole 20 s window. One shard is simulated; every shard carries the same share of gateways. Its
 *    invocation boundaries come from the full record sequence, but only every K-th gateway's
 *    records are aggregated (sampling keys: K keeps ~`--sample-records` records per run);
 *    per-gateway (thing) writes are scaled by K, the shard's model items are written in full.
 *    The hottest model key carries ceil(shards / 8) shards (AGGREGATE_WRITE_SHARDS = 8).
 *    Exactness is checked after fault injection on the sampled records: the last fifth of the
 *    shard's stream delivered again, 1% of batches replayed by their gateways as new records,
 *    and one invocation whose model writes fail and which Lambda then retries bisected.
 *    Capacity is metered on the clean pass only.
 *  - Lambda time = the aggregator's own CPU time (measured with DynamoDB calls answered at
 *    once) + 5 ms per round of DynamoDB calls (32 in flight), at 512 MB (current) or 1 GB (new).
 *    Failed conditional writes are charged 1 WCU; dynalite reports none for them.
 *  - Prices: shared/aggregation/prices.ts (one table, with its source and date).
 *
 * Each line: {"bench":"fleet-scale","design":"current|new","gateways":N,"batchesPerSecond":B,
 * "inferencesPerSecond":I,"hottestKeyWcuPerSec":W,"maxItemBytes":S,
 * "costPerMillionInferencesUsd":C,"exact":true|false}; without --json a table and the cost
 * breakdown go to stdout as well.
 */
import { parseArgs } from 'node:util';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { batchTag, cellUpdate } from '../functions/aggregation/aggregate-item.ts';
import { isConditionFailure } from '../functions/aggregation/idempotency.ts';
import type { ManifestLookup } from '../functions/aggregation/manifests.ts';
import { aggregateResultEvent } from '../functions/aggregation/results.ts';
import {
  aggregateShardRecords,
  type StreamDeps,
  type StreamRecord,
} from '../functions/aggregation/stream.ts';
import { type AggregateCell, cellsByMinute, emptyCell, mergeCells } from '../shared/aggregation/aggregate.ts';
import {
  type CostBreakdown,
  costPerMillionInferences,
  iotUnits,
  kinesisPutUnits,
} from '../shared/aggregation/prices.ts';
import { summarizeResults } from '../shared/aggregation/summary.ts';
import { dynamoClient } from '../shared/aws.ts';
import type { EdgeloopMetrics } from '../shared/metrics.ts';
import type { InferenceResult, Manifest } from '../shared/schemas.ts';
import { AGGREGATE_WRITE_SHARDS, aggregateKeys, streamMapping, tables } from '../shared/topology.ts';
import { seededRandom } from '../shared/training/random.ts';
import { main as e2eMain, type FleetE2eLine } from './fleet-e2e.ts';
import { LABELS, manifestFor, ruleEvent } from './support/aggregation-fixtures.ts';
import { startTestStack } from './support/local-stack.ts';

const LOW_CONFIDENCE = 0.6;
const KINESIS_RECORDS_PER_SHARD = 1000;
const KINESIS_BYTES_PER_SHARD = 1024 * 1024;
const LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024;
const DYNAMO_ROUND_MS = 5;
const IN_FLIGHT = 32;
const CALLS_PER_MINUTE = 300;

export interface FleetLine {
  bench: 'fleet-scale';
  design: 'current' | 'new';
  gateways: number;
  batchesPerSecond: number;
  inferencesPerSecond: number;
  hottestKeyWcuPerSec: number;
  maxItemBytes: number;
  costPerMillionInferencesUsd: number;
  exact: boolean;
}

interface Options {
  rate: number;
  batchSeconds: number;
  minutes: number;
  sampleRecords: number;
}

// ---------------------------------------------------------------------------------------
// Metering: every request the real code sends asks for its consumed capacity.
// ---------------------------------------------------------------------------------------

class Meter {
  readonly wcuByPk = new Map<string, number>();
  wcu = 0;
  rcu = 0;
  failedWrites = 0;
  enabled = true;

  add(pk: string, units: number, kind: 'write' | 'read'): void {
    if (!this.enabled) return;
    if (kind === 'read') {
      this.rcu += units;
      return;
    }
    this.wcu += units;
    this.wcuByPk.set(pk, (this.wcuByPk.get(pk) ?? 0) + units);
  }

  reset(): void {
    this.wcuByPk.clear();
    this.wcu = 0;
    this.rcu = 0;
    this.failedWrites = 0;
  }
}

function metered(real: DynamoDBDocumentClient, meter: Meter): DynamoDBDocumentClient {
  const send = async (command: { input: Record<string, unknown>; constructor: { name: string } }) => {
    const input = command.input;
    input.ReturnConsumedCapacity = 'TOTAL';
    const pk = String(
      (input.Key as { pk?: unknown } | undefined)?.pk ?? (input.Item as { pk?: unknown })?.pk ?? '',
    );
    const kind = /Get|Query|Scan/.test(command.constructor.name) ? 'read' : 'write';
    try {
      const response = (await real.send(command as never)) as { ConsumedCapacity?: unknown };
      const consumed = [response.ConsumedCapacity].flat() as ({ CapacityUnits?: number } | undefined)[];
      for (const entry of consumed) meter.add(pk, entry?.CapacityUnits ?? 0, kind);
      return response;
    } catch (error) {
      if (isConditionFailure(error)) {
        meter.add(pk, 1, 'write');
        if (meter.enabled) meter.failedWrites += 1;
      }
      throw error;
    }
  };
  return { send } as unknown as DynamoDBDocumentClient;
}

/** A client that answers every call at once: the aggregator's own CPU time, without dynalite. */
const instantClient = {
  send: async () => ({}),
} as unknown as DynamoDBDocumentClient;

// ---------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------

/** Results of one gateway batch (cheap, deterministic; the same shape the device sends). */
function gatewayResults(seed: number, count: number, startTs: number, spanMs: number): InferenceResult[] {
  const random = seededRandom(seed);
  const results: InferenceResult[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const label = LABELS[Math.floor(random() * LABELS.length)] ?? 'idle';
    const truth = i % 25 === 0 ? (random() < 0.85 ? label : 'idle') : undefined;
    results[i] = {
      id: `${seed}-${i}`,
      ts: startTs + Math.floor((i * spanMs) / count),
      label,
      confidence: Math.round(random() * 1000) / 1000,
      latencyMs: Math.round(0.05 * Math.exp(random() * 6) * 1000) / 1000,
      ...(truth === undefined ? {} : { truth }),
    };
  }
  return results;
}

/** DynamoDB's item size rules (names + values), as dynalite applies them. */
function itemBytes(item: Record<string, unknown>): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += Buffer.byteLength(name) + valueBytes(value);
  return size;
}

function valueBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number') {
    const digits = String(Math.abs(value))
      .replace(/[.\-e+]/g, '')
      .replace(/^0+/, '').length;
    return Math.ceil(digits / 2) + 1;
  }
  if (typeof value === 'boolean' || value === null) return 1;
  if (value instanceof Set) return [...value].reduce((sum: number, member) => sum + valueBytes(member), 0);
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, member) => sum + 1 + valueBytes(member), 0);
  if (typeof value === 'object')
    return 3 + itemBytes(value as Record<string, unknown>) + Object.keys(value).length;
  return 0;
}

async function partitionItems(ddb: DynamoDBDocumentClient, pk: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(
      new QueryCommand({
        TableName: tables.aggregates.localName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk },
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

const manifests = (manifest: Manifest): ManifestLookup => ({ get: async () => manifest });
/** Metrics are not what is measured here: a sink that keeps stdout for the JSON lines. */
const quietMetrics = () => ({ publishWith: () => {} }) as unknown as EdgeloopMetrics;

// ---------------------------------------------------------------------------------------
// current: the direct path
// ---------------------------------------------------------------------------------------

async function currentDesign(gateways: number, options: Options, epoch: number): Promise<Measured> {
  const model = `cur-${gateways}`;
  const perBatch = options.rate * options.batchSeconds;
  const batchesPerMinute = Math.round((gateways * 60) / options.batchSeconds);
  const manifest = manifestFor(model, 1, LOW_CONFIDENCE);
  // A pool of real batch cells (each a batch's results in its minute); cells repeat, tags do not.
  const pool = Array.from({ length: 32 }, (_, i) => {
    const [only] = cellsByMinute(gatewayResults(i + 1, perBatch, epoch, 1), LOW_CONFIDENCE);
    return only?.cell ?? emptyCell();
  });
  const detailBytes = Buffer.byteLength(
    JSON.stringify({
      batchId: 'b'.repeat(24),
      model,
      version: 1,
      sentAt: epoch,
      results: gatewayResults(1, perBatch, epoch, options.batchSeconds * 1000),
    }),
  );

  const meter = new Meter();
  const ddb = metered(dynamoClient(), meter);
  let expected = 0;
  let lost = 0;
  // Time compression: one call adds `perCall` consecutive batches (their summed cells and all
  // their tags), so the item grows exactly as with single updates, in ~CALLS_PER_MINUTE calls.
  const perCall = Math.max(1, Math.ceil(batchesPerMinute / CALLS_PER_MINUTE));
  let firstFailure = -1;
  for (let m = 0; m < options.minutes; m++) {
    const minute = aggregateKeys.minute(epoch + m * 60_000);
    const key = {
      level: 'model' as const,
      pk: aggregateKeys.model(model),
      sk: aggregateKeys.sort(minute, 1),
      model,
      version: 1,
      minute,
    };
    let failedAt = -1;
    for (let b = 0; b < batchesPerMinute; b += perCall) {
      const calls = Math.min(perCall, batchesPerMinute - b);
      const cell = emptyCell();
      const tags: string[] = [];
      for (let i = b; i < b + calls; i++) {
        mergeCells(cell, pool[i % pool.length] as AggregateCell);
        tags.push(batchTag(`gw-${i % gateways}`, `${model}-${m}-${i}`));
      }
      const input = cellUpdate(tables.aggregates.localName, key, cell, tags[0] as string);
      (input.ExpressionAttributeValues as Record<string, unknown>)[':tags'] = new Set(tags);
      const before = meter.wcu;
      try {
        await ddb.send(new UpdateCommand(input));
        expected += cell.count;
        // The call stands for `calls` single updates, each charged about the same item size.
        meter.add(key.pk, (meter.wcu - before) * (calls - 1), 'write');
      } catch (error) {
        if (isConditionFailure(error)) throw error;
        failedAt = b;
        break;
      }
    }
    if (failedAt >= 0) {
      firstFailure = failedAt;
      for (let b = failedAt; b < batchesPerMinute; b++)
        lost += (pool[b % pool.length] as AggregateCell).count;
    }
  }
  const hotWcu = meter.wcuByPk.get(aggregateKeys.model(model)) ?? 0;
  const items = await partitionItems(dynamoClient(), aggregateKeys.model(model));
  const stored = items.reduce((sum, item) => sum + Number(item.n ?? 0), 0);
  const maxItem = Math.max(0, ...items.map(itemBytes));

  // Per-batch writes that do not depend on the fleet: claim, thing item, done mark.
  const sample = await currentPerBatchSample(model, perBatch, epoch, manifest);
  const seconds = options.minutes * 60;
  const batchesPerSecond = gateways / options.batchSeconds;
  const units = iotUnits(detailBytes);
  const wcuPerSecond = hotWcu / seconds + batchesPerSecond * sample.wcuPerBatch;
  return {
    line: {
      batchesPerSecond,
      hottestKeyWcuPerSec: hotWcu / seconds,
      maxItemBytes: maxItem,
      exact: lost === 0 && stored === expected,
    },
    usage: {
      inferences: batchesPerSecond * perBatch,
      brokerMessageUnits: batchesPerSecond * units,
      ruleUnits: batchesPerSecond * units,
      actionUnits: batchesPerSecond * units,
      kinesisShards: 0,
      kinesisPutUnits: 0,
      lambdaRequests: batchesPerSecond,
      lambdaGbSeconds: batchesPerSecond * 0.5 * ((sample.cpuMs + 3 * DYNAMO_ROUND_MS) / 1000),
      dynamoWriteUnits: wcuPerSecond,
      dynamoReadUnits: batchesPerSecond * sample.rcuPerBatch,
    },
    notes: `${batchesPerMinute} batches/min on one item (${perCall} per call)${firstFailure >= 0 ? `, item full after ${firstFailure} batches (${lost} results lost in the window)` : ''}; detail batch ${detailBytes} B`,
  };
}

async function currentPerBatchSample(model: string, perBatch: number, epoch: number, manifest: Manifest) {
  const meter = new Meter();
  const ddb = metered(dynamoClient(), meter);
  const sampleModel = `${model}-sample`;
  const deps = {
    ddb,
    tables: {
      aggregates: tables.aggregates.localName,
      errors: tables.errors.localName,
      idempotency: tables.idempotency.localName,
    },
    manifests: manifests({ ...manifest, model: sampleModel }),
    metrics: quietMetrics(),
    logger: { info: () => {}, warn: () => {} },
  };
  const n = 40;
  const events = Array.from({ length: n }, (_, i) =>
    ruleEvent(
      `gw-${i}`,
      JSON.stringify({
        batchId: `${sampleModel}-${i}`,
        model: sampleModel,
        version: 1,
        sentAt: epoch,
        results: gatewayResults(1000 + i, perBatch, epoch + i * 1000, 1),
      }),
      epoch + 60_000,
    ),
  );
  for (const event of events) await aggregateResultEvent(event, deps);
  const modelPk = aggregateKeys.model(sampleModel);
  const perGatewayWcu = meter.wcu - (meter.wcuByPk.get(modelPk) ?? 0);
  const started = process.cpuUsage();
  for (const event of events)
    await aggregateResultEvent(event, { ...deps, ddb: instantClient, tables: { ...deps.tables } });
  const cpu = process.cpuUsage(started);
  return {
    wcuPerBatch: perGatewayWcu / n,
    rcuPerBatch: meter.rcu / n,
    cpuMs: (cpu.user + cpu.system) / 1000 / n,
  };
}

// ---------------------------------------------------------------------------------------
// new: Basic Ingest -> rule -> Kinesis -> event source mapping -> stream aggregator
// ---------------------------------------------------------------------------------------

interface Measured {
  line: Pick<FleetLine, 'batchesPerSecond' | 'hottestKeyWcuPerSec' | 'maxItemBytes' | 'exact'>;
  usage: Parameters<typeof costPerMillionInferences>[0];
  notes: string;
}

interface ShardRecord extends StreamRecord {
  thing: string;
  results: number;
}

async function newDesign(gateways: number, options: Options, epoch: number): Promise<Measured> {
  const model = `new-${gateways}`;
  const manifest = manifestFor(model, 1, LOW_CONFIDENCE);
  const perBatch = options.rate * options.batchSeconds;
  const batchMs = options.batchSeconds * 1000;
  const seconds = options.minutes * 60;
  const batchesPerGateway = Math.floor(seconds / options.batchSeconds);

  // Record size from the real encoder and rule event (what the rule puts on the stream).
  const probe = encodeBatch(
    model,
    'gw-probe',
    'probe-batch-0',
    gatewayResults(7, perBatch, epoch + 5000, batchMs),
    epoch,
  );
  const recordBytes = Buffer.byteLength(probe.data, 'base64');
  const recordsPerSecond = gateways / options.batchSeconds;
  // Shards: the stream's limits with 20% headroom, and enough that one invocation (at most
  // 6 MB of records) holds a whole batching window, so a gateway's batches in that window
  // share one thing-item write at every fleet size.
  const recordsPerCall = Math.min(streamMapping.batchSize, Math.floor(LAMBDA_PAYLOAD_BYTES / recordBytes));
  const shards = Math.max(
    1,
    Math.ceil(
      Math.max(
        recordsPerSecond / KINESIS_RECORDS_PER_SHARD,
        (recordsPerSecond * recordBytes) / KINESIS_BYTES_PER_SHARD,
      ) / 0.8,
    ),
    Math.ceil((recordsPerSecond * streamMapping.maxBatchingWindowSeconds) / recordsPerCall),
  );
  const shardGateways = Math.ceil(gateways / shards);
  const shardRecordsPerSecond = shardGateways / options.batchSeconds;
  const perInvocation = Math.max(
    1,
    Math.min(
      streamMapping.batchSize,
      Math.floor(LAMBDA_PAYLOAD_BYTES / recordBytes),
      Math.ceil(shardRecordsPerSecond * streamMapping.maxBatchingWindowSeconds),
    ),
  );
  const totalRecords = shardGateways * batchesPerGateway;
  const sampleEvery = Math.max(1, Math.ceil(totalRecords / options.sampleRecords));

  // The shard's records in arrival order; each gateway sends at its own offset in the period.
  const shardId = 'shardId-000000000000';
  const invocations: ShardRecord[][] = [];
  let current: ShardRecord[] = [];
  let position = 0;
  let sequence = 49_600_000_000_000_000_000_000_000_000n;
  const expected = { model: 0, things: new Map<string, number>() };
  for (let j = 0; j < batchesPerGateway; j++) {
    for (let g = 0; g < shardGateways; g++) {
      sequence += 17n;
      if (g % sampleEvery === 0) {
        const thing = `gw-${g}`;
        const startTs = epoch + j * batchMs + Math.floor((g * batchMs) / shardGateways);
        const results = gatewayResults(g * 1000 + j, perBatch, startTs - batchMs, batchMs);
        const record = encodeBatch(
          model,
          thing,
          `${model}-${thing}-${j}`,
          results,
          startTs,
          shardId,
          sequence,
        );
        current.push({ ...record, thing, results: results.length });
        expected.model += results.length;
        expected.things.set(thing, (expected.things.get(thing) ?? 0) + results.length);
      }
      position += 1;
      if (position % perInvocation === 0) {
        invocations.push(current);
        current = [];
      }
    }
  }
  if (current.length > 0 || position % perInvocation !== 0) invocations.push(current);

  const meter = new Meter();
  const ddb = metered(dynamoClient(), meter);
  const deps: StreamDeps = {
    ddb,
    tables: { aggregates: tables.aggregates.localName, errors: tables.errors.localName },
    manifests: manifests(manifest),
    metrics: quietMetrics(),
    logger: { info: () => {}, warn: () => {} },
    concurrency: IN_FLIGHT,
  };
  // Clean pass, metered.
  let thingWrites = 0;
  let modelWrites = 0;
  for (const records of invocations) {
    if (records.length === 0) continue;
    const outcome = await aggregateShardRecords(records, deps);
    thingWrites += outcome.writes.thing;
    modelWrites += outcome.writes.model;
  }
  const modelPk = aggregateKeys.modelShard(model, 0);
  const shardModelWcu = meter.wcuByPk.get(modelPk) ?? 0;
  const thingWcu = meter.wcu - shardModelWcu;
  let hottestThing = 0;
  for (const [pk, wcu] of meter.wcuByPk)
    if (pk.startsWith('thing#')) hottestThing = Math.max(hottestThing, wcu);
  const cleanRcu = meter.rcu;

  // Faults, not metered: a segment delivered again, gateways' replays, a crash and a bisected retry.
  meter.enabled = false;
  const sampled = invocations.filter((records) => records.length > 0);
  const tail = sampled.slice(Math.floor(sampled.length * 0.8));
  for (const records of tail) await aggregateShardRecords(records, deps);
  const replays: ShardRecord[] = [];
  sampled.flat().forEach((record, i) => {
    if (i % 100 === 37) {
      sequence += 17n;
      replays.push({ ...record, sequenceNumber: String(sequence) });
    }
  });
  if (replays.length > 0) {
    const crashing = {
      send: (command: { input: { Key?: { pk?: unknown } } }) =>
        command instanceof UpdateCommand && String(command.input.Key?.pk).startsWith('model#')
          ? Promise.reject(new Error('ProvisionedThroughputExceededException (injected)'))
          : ddb.send(command as never),
    } as unknown as DynamoDBDocumentClient;
    await aggregateShardRecords(replays, { ...deps, ddb: crashing }).catch(() => undefined);
    const half = Math.ceil(replays.length / 2);
    await aggregateShardRecords(replays.slice(0, half), deps);
    await aggregateShardRecords(replays.slice(half), deps);
  }

  // Exact: the shard's model items and every sampled thing hold what was sent, once.
  const client = dynamoClient();
  const modelItems = await partitionItems(client, modelPk);
  const modelTotal = modelItems.reduce((sum, item) => sum + Number(item.n ?? 0), 0);
  let thingsExact = true;
  let maxItem = Math.max(0, ...modelItems.map(itemBytes));
  for (const [thing, want] of expected.things) {
    const items = await partitionItems(client, aggregateKeys.thing(model, thing));
    const got = items.reduce((sum, item) => sum + Number(item.n ?? 0), 0);
    if (got !== want) thingsExact = false;
    maxItem = Math.max(maxItem, ...items.map(itemBytes));
  }

  // CPU of the aggregator itself, DynamoDB answered at once.
  const probeRecords = sampled.slice(0, 3).flat();
  const started = process.cpuUsage();
  await aggregateShardRecords(probeRecords, { ...deps, ddb: instantClient });
  const cpu = process.cpuUsage(started);
  const cpuMsPerRecord = (cpu.user + cpu.system) / 1000 / Math.max(1, probeRecords.length);

  // Scale the simulated shard to the whole stream.
  const invocationsPerSecond = (shards * shardRecordsPerSecond) / perInvocation;
  const thingWritesPerRecord = thingWrites / Math.max(1, sampled.flat().length);
  const modelWritesPerInvocation = modelWrites / Math.max(1, invocations.length);
  const invocationMs =
    perInvocation * cpuMsPerRecord +
    (Math.ceil((perInvocation * thingWritesPerRecord) / IN_FLIGHT) +
      Math.ceil(modelWritesPerInvocation / IN_FLIGHT)) *
      DYNAMO_ROUND_MS;
  const shardWcuPerSecond = (thingWcu * sampleEvery + shardModelWcu) / seconds;
  const hottestModelKey = (Math.ceil(shards / AGGREGATE_WRITE_SHARDS) * shardModelWcu) / seconds;
  const messageBytes = probe.payloadBytes;
  const units = iotUnits(messageBytes);
  return {
    line: {
      batchesPerSecond: recordsPerSecond,
      hottestKeyWcuPerSec: Math.max(hottestModelKey, hottestThing / seconds),
      maxItemBytes: maxItem,
      exact: thingsExact && modelTotal === expected.model,
    },
    usage: {
      inferences: recordsPerSecond * perBatch,
      brokerMessageUnits: 0,
      ruleUnits: recordsPerSecond * units,
      actionUnits: recordsPerSecond * units,
      kinesisShards: shards,
      kinesisPutUnits: recordsPerSecond * kinesisPutUnits(recordBytes),
      lambdaRequests: invocationsPerSecond,
      lambdaGbSeconds: invocationsPerSecond * 1 * (invocationMs / 1000),
      dynamoWriteUnits: shards * shardWcuPerSecond,
      dynamoReadUnits: (shards * cleanRcu * sampleEvery) / seconds,
    },
    notes: `${shards} shards, ${perInvocation} records/invocation, 1 in ${sampleEvery} gateways sampled, summary message ${messageBytes} B, record ${recordBytes} B, concurrency ${shards * streamMapping.parallelizationFactor}`,
  };
}

/** One gateway batch as the stream carries it: summary JSON -> rule event -> record data. */
function encodeBatch(
  model: string,
  thing: string,
  batchId: string,
  results: InferenceResult[],
  receivedAt: number,
  shardId = 'shardId-000000000000',
  sequence = 1n,
): StreamRecord & { payloadBytes: number } {
  const payload = JSON.stringify({
    mode: 'summary',
    batchId,
    model,
    version: 1,
    sentAt: receivedAt,
    cells: summarizeResults(results, LOW_CONFIDENCE),
  });
  const data = Buffer.from(JSON.stringify(ruleEvent(thing, payload, receivedAt))).toString('base64');
  return { shardId, sequenceNumber: String(sequence), data, payloadBytes: Buffer.byteLength(payload) };
}

// ---------------------------------------------------------------------------------------

function parse(): Options & {
  json: boolean;
  e2e: boolean;
  fleets: number[];
  designs: ('current' | 'new')[];
} {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      fleets: { type: 'string', default: '1000,10000,100000' },
      designs: { type: 'string', default: 'current,new' },
      rate: { type: 'string', default: '50' },
      'batch-seconds': { type: 'string', default: '10' },
      minutes: { type: 'string', default: '3' },
      'sample-records': { type: 'string', default: '4000' },
      e2e: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  const number = (name: string, value: string | undefined, min: number) => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min) {
      console.error(`fleet-scale: --${name} must be a number >= ${min}, got '${value}'`);
      process.exit(2);
    }
    return parsed;
  };
  return {
    json: values.json ?? false,
    e2e: values.e2e ?? false,
    designs: String(values.designs)
      .split(',')
      .map((design) => {
        if (design !== 'current' && design !== 'new') {
          console.error(`fleet-scale: --designs takes current and/or new, got '${design}'`);
          process.exit(2);
        }
        return design;
      }),
    fleets: String(values.fleets)
      .split(',')
      .map((fleet) => number('fleets', fleet, 1)),
    rate: number('rate', values.rate, 0.1),
    batchSeconds: number('batch-seconds', values['batch-seconds'], 1),
    minutes: number('minutes', values.minutes, 3),
    sampleRecords: number('sample-records', values['sample-records'], 100),
  };
}

const round = (value: number, digits: number) => Number(value.toPrecision(digits));

export async function main(): Promise<(FleetLine | FleetE2eLine)[]> {
  const options = parse();
  const stack = await startTestStack({ logLevel: 'ERROR' });
  const lines: (FleetLine | FleetE2eLine)[] = [];
  const breakdowns: { design: string; gateways: number; cost: CostBreakdown; notes: string }[] = [];
  try {
    // A fixed UTC minute boundary, so every run splits batches into minutes the same way.
    const epoch = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    for (const design of options.designs) {
      for (const gateways of options.fleets) {
        const measured =
          design === 'current'
            ? await currentDesign(gateways, options, epoch)
            : await newDesign(gateways, options, epoch);
        const cost = costPerMillionInferences(measured.usage);
        const line: FleetLine = {
          bench: 'fleet-scale',
          design,
          gateways,
          batchesPerSecond: round(measured.line.batchesPerSecond, 6),
          inferencesPerSecond: round(measured.usage.inferences, 6),
          hottestKeyWcuPerSec: round(measured.line.hottestKeyWcuPerSec, 4),
          maxItemBytes: Math.round(measured.line.maxItemBytes),
          costPerMillionInferencesUsd: round(cost.total, 3),
          exact: measured.line.exact,
        };
        lines.push(line);
        breakdowns.push({ design, gateways, cost, notes: measured.notes });
        console.log(JSON.stringify(line));
      }
    }
  } finally {
    await stack.stop();
  }
  if (!options.json) {
    console.log('\ncost per million inferences by service (USD):');
    for (const { design, gateways, cost, notes } of breakdowns)
      console.log(
        `${design.padEnd(8)} ${String(gateways).padStart(7)}  ${Object.entries(cost)
          .map(([name, value]) => `${name} ${round(value, 3)}`)
          .join('  ')}\n${''.padEnd(18)}${notes}`,
      );
  }
  // The same path end to end on the local stack (its own stack: one runs per process).
  if (options.e2e) lines.push(await e2eMain(options.json ? ['--json'] : []));
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
