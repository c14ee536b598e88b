/**
 * Read side of the aggregation tables, shared by `edgeloop stats` / `edgeloop fleet`, the
 * demo and the dashboards: per-version model statistics over a window, the fleet with
 * online/offline derived from last seen, and the errors set aside.
 */
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import {
  type AggregateCell,
  type CellSummary,
  emptyCell,
  mergeCells,
  summarizeCell,
  trainingDistributionOf,
} from '../../shared/aggregation/aggregate.ts';
import { isOnline, OFFLINE_AFTER_MS, onlineByVersion } from '../../shared/aggregation/fleet.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { aggregateKeys, buckets, errorKeys, tables } from '../../shared/topology.ts';
import { cellFromItem } from './aggregate-item.ts';
import type { ErrorItem } from './errors-store.ts';
import type { ManifestLookup } from './manifests.ts';
import { ManifestCache } from './manifests.ts';
import { type FleetItem, scanFleet } from './status.ts';

export interface StatsSource {
  ddb: DynamoDBDocumentClient;
  /** `events` is absent where its name is not known (`--aws` with table names from the environment). */
  tables: { aggregates: string; fleet: string; errors: string; events?: string };
  /** Manifests give each version its training distribution, for drift. */
  manifests?: ManifestLookup;
  now?: () => number;
}

/** What per-version model statistics need: the aggregates table only. */
export type ModelStatsSource = Omit<StatsSource, 'tables'> & {
  tables: Pick<StatsSource['tables'], 'aggregates'>;
};

/**
 * The local stack's tables through the shared clients (shared/aws.ts), which the local stack
 * points at its servers with AWS_ENDPOINT_URL_*; what the demo and the local dashboard use.
 */
export function localStatsSource(): StatsSource {
  return {
    ddb: dynamoClient(),
    tables: {
      aggregates: tables.aggregates.localName,
      fleet: tables.fleet.localName,
      errors: tables.errors.localName,
      events: tables.events.localName,
    },
    manifests: new ManifestCache(s3Client, buckets.models.localName),
  };
}

export interface VersionStats extends CellSummary {
  version: number;
  firstMinute: string;
  lastMinute: string;
}

export interface ModelStats {
  model: string;
  since: string;
  until: string;
  /** Distinct results aggregated in the window, all versions. */
  inferences: number;
  versions: VersionStats[];
}

/** Pages through a query; stops early once `max` items are in hand. COUNT queries add up Count. */
async function queryPages(
  ddb: DynamoDBDocumentClient,
  input: ConstructorParameters<typeof QueryCommand>[0],
  max = Number.POSITIVE_INFINITY,
): Promise<{ items: Record<string, unknown>[]; count: number }> {
  const items: Record<string, unknown>[] = [];
  let count = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    count += page.Count ?? 0;
    start = page.LastEvaluatedKey;
  } while (start && items.length < max);
  return { items: items.slice(0, max), count };
}

async function queryAll(ddb: DynamoDBDocumentClient, input: ConstructorParameters<typeof QueryCommand>[0]) {
  return (await queryPages(ddb, input)).items;
}

/** The summed cell of one (version, minute) of a model. */
export interface VersionMinuteCell {
  version: number;
  minute: string;
  cell: AggregateCell;
}

/**
 * Every model-level cell of `model` from sinceMs to now, one per (version, minute): the direct
 * path's `model#<model>` partition plus the stream aggregator's write shards, summed.
 */
export async function readModelCells(
  source: ModelStatsSource,
  model: string,
  sinceMs: number,
  now: number,
): Promise<VersionMinuteCell[]> {
  const partitions = [aggregateKeys.model(model), ...aggregateKeys.modelShards(model)];
  const pages = await Promise.all(partitions.map((pk) => queryWindow(source, pk, sinceMs, now)));
  const cells = new Map<string, VersionMinuteCell>();
  for (const item of pages.flat()) {
    const version = Number(item.version);
    const minute = String(item.minute);
    const key = `${minute}#${version}`;
    let entry = cells.get(key);
    if (!entry) {
      entry = { version, minute, cell: emptyCell() };
      cells.set(key, entry);
    }
    mergeCells(entry.cell, cellFromItem(item));
  }
  return [...cells.values()].sort((a, b) => a.minute.localeCompare(b.minute) || a.version - b.version);
}

/** Per-version statistics of `model` over the minutes from sinceMs to now. */
export async function readModelStats(
  source: ModelStatsSource,
  model: string,
  sinceMs: number,
): Promise<ModelStats> {
  const now = (source.now ?? Date.now)();
  const byVersion = new Map<number, { cell: AggregateCell; minutes: string[] }>();
  for (const { version, minute, cell } of await readModelCells(source, model, sinceMs, now)) {
    let group = byVersion.get(version);
    if (!group) {
      group = { cell: emptyCell(), minutes: [] };
      byVersion.set(version, group);
    }
    mergeCells(group.cell, cell);
    group.minutes.push(minute);
  }
  const versions: VersionStats[] = [];
  for (const [version, group] of [...byVersion].sort(([a], [b]) => a - b)) {
    const manifest = await source.manifests?.get(model, version);
    const minutes = group.minutes.sort();
    versions.push({
      version,
      ...summarizeCell(group.cell, trainingDistributionOf(manifest)),
      firstMinute: minutes[0] ?? '',
      lastMinute: minutes.at(-1) ?? '',
    });
  }
  return {
    model,
    since: new Date(sinceMs).toISOString(),
    until: new Date(now).toISOString(),
    inferences: versions.reduce((sum, version) => sum + version.inferences, 0),
    versions,
  };
}

function queryWindow(source: ModelStatsSource, pk: string, sinceMs: number, now: number) {
  return queryAll(source.ddb, {
    TableName: source.tables.aggregates,
    KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
    ExpressionAttributeValues: {
      ':pk': pk,
      ':from': aggregateKeys.minute(sinceMs),
      ':to': `${aggregateKeys.minute(now)}#~`,
    },
  });
}

export interface FleetRow extends FleetItem {
  online: boolean;
}

export interface FleetView {
  now: string;
  offlineAfterMs: number;
  things: FleetRow[];
  /** Online and total gateways per (model, version). */
  versions: { model: string; version: number | null; online: number; total: number }[];
}

export async function readFleet(source: StatsSource, offlineAfterMs = OFFLINE_AFTER_MS): Promise<FleetView> {
  const now = (source.now ?? Date.now)();
  const items = await scanFleet(source.ddb, source.tables.fleet);
  return {
    now: new Date(now).toISOString(),
    offlineAfterMs,
    things: items.map((item) => ({ ...item, online: isOnline(item.lastSeen, now, offlineAfterMs) })),
    versions: onlineByVersion(items, now, offlineAfterMs),
  };
}

export interface ErrorsView {
  since: string;
  count: number;
  latest: Pick<ErrorItem, 'at' | 'source' | 'thing' | 'topic' | 'reason' | 'payload'>[];
}

/** Errors set aside since sinceMs: how many, and the latest `limit` of them, newest first. */
export async function readErrors(source: StatsSource, sinceMs: number, limit = 10): Promise<ErrorsView> {
  const now = (source.now ?? Date.now)();
  const dayQueries: ConstructorParameters<typeof QueryCommand>[0][] = [];
  for (let day = Math.floor(now / 86_400_000); day >= Math.floor(sinceMs / 86_400_000); day--) {
    dayQueries.push({
      TableName: source.tables.errors,
      KeyConditionExpression: 'pk = :pk AND sk >= :from',
      ExpressionAttributeValues: {
        ':pk': errorKeys.partition(day * 86_400_000),
        ':from': errorKeys.sort(sinceMs, ''),
      },
      ScanIndexForward: false,
    });
  }
  // Counting reads keys only; the latest records come from the newest day partitions first.
  const counts = await Promise.all(
    dayQueries.map((input) => queryPages(source.ddb, { ...input, Select: 'COUNT' })),
  );
  const latest: ErrorItem[] = [];
  for (const input of dayQueries) {
    if (latest.length >= limit) break;
    const page = await queryPages(source.ddb, { ...input, Limit: limit }, limit - latest.length);
    latest.push(...(page.items as unknown as ErrorItem[]));
  }
  return {
    since: new Date(sinceMs).toISOString(),
    count: counts.reduce((sum, day) => sum + day.count, 0),
    latest: latest.map(({ at, source: from, thing, topic, reason, payload }) => ({
      at,
      source: from,
      thing,
      topic,
      reason,
      payload,
    })),
  };
}
