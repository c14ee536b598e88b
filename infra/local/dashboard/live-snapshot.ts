/**
 * The dashboard snapshot read from the real tables: the model registry (training panel), the
 * fleet registry (rollout and outbox panels), the per-minute aggregates (inference, class mix,
 * confidence, latency, live accuracy and drift panels) and the errors set aside. The numbers
 * come from the same cells and the same summary maths (shared/aggregation) as `edgeloop
 * stats`, so the page and the CLI agree to the result.
 */
import {
  localStatsSource,
  readErrors,
  readFleet,
  readModelCells,
  type StatsSource,
} from '../../../functions/aggregation/queries.ts';
import { readEvents } from '../../../functions/events/queries.ts';
import { listRegistry } from '../../../functions/training/registry.ts';
import {
  type AggregateCell,
  emptyCell,
  mergeCells,
  summarizeCell,
  type TrainingDistribution,
  trainingDistributionOf,
} from '../../../shared/aggregation/aggregate.ts';
import { bucketUpper, CONFIDENCE_EDGES } from '../../../shared/aggregation/histogram.ts';
import { tables } from '../../../shared/topology.ts';
import {
  type DashboardSnapshot,
  fleetDeviceFromStatus,
  type MinutePoint,
  trainingRunFromRegistry,
  type VersionSeries,
} from './snapshot.ts';

export interface LiveSource extends StatsSource {
  registryTable: string;
}

/** The local stack's tables (endpoints from AWS_ENDPOINT_URL_*, set by the local stack). */
export function localLiveSource(): LiveSource {
  return { ...localStatsSource(), registryTable: tables.registry.localName };
}

export interface LiveSnapshotOptions {
  /** How far back the time series and error count reach (default one hour). */
  windowMs?: number;
  /** How many of the latest errors to list (default 20). */
  errorLimit?: number;
}

export const DEFAULT_WINDOW_MS = 3_600_000;

export async function readLiveSnapshot(
  source: LiveSource,
  options: LiveSnapshotOptions = {},
): Promise<DashboardSnapshot> {
  const now = (source.now ?? Date.now)();
  const sinceMs = now - (options.windowMs ?? DEFAULT_WINDOW_MS);
  const [registry, fleet, errors, events] = await Promise.all([
    listRegistry({ ddb: source.ddb, table: source.registryTable }),
    readFleet(source),
    readErrors(source, sinceMs, options.errorLimit ?? 20),
    source.tables.events
      ? readEvents({ ddb: source.ddb, tables: { events: source.tables.events } }, { sinceMs, limit: 100 })
      : [],
  ]);
  const models = [...new Set([...registry.map((r) => r.model), ...fleet.things.map((t) => t.model)])].sort();
  const versions = (
    await Promise.all(models.map((model) => readVersionSeries(source, model, sinceMs, now)))
  ).flat();
  return {
    generatedAt: new Date(now).toISOString(),
    training: {
      runs: registry
        .map(trainingRunFromRegistry)
        .sort((a, b) => a.model.localeCompare(b.model) || a.version - b.version),
    },
    rollout: {
      fleet: fleet.things.map((row) =>
        fleetDeviceFromStatus(
          row.thing,
          { ...row, ts: row.statusTs },
          { lastSeen: row.lastSeen, online: row.online },
        ),
      ),
    },
    versions,
    events: events.map((e) => ({
      model: e.model,
      version: e.version,
      thing: e.thing,
      series: e.series,
      state: e.state,
      start: new Date(e.start).toISOString(),
      end: new Date(e.end).toISOString(),
      peakScore: e.peakScore,
      threshold: e.threshold,
      channels: e.channels,
    })),
    errors: {
      count: errors.count,
      latest: errors.latest.map((e) => ({
        at: new Date(e.at).toISOString(),
        reason: e.reason,
        topic: e.topic,
        thing: e.thing,
      })),
    },
  };
}

/** Per-version minute series, class mix and confidence histogram of one model. */
export async function readVersionSeries(
  source: StatsSource,
  model: string,
  sinceMs: number,
  now: number,
): Promise<VersionSeries[]> {
  const byVersion = new Map<
    number,
    { total: AggregateCell; minutes: { minute: number; cell: AggregateCell }[] }
  >();
  for (const item of await readModelCells(source, model, sinceMs, now)) {
    const version = item.version;
    const minute = Date.parse(item.minute);
    if (!Number.isInteger(version) || version < 1 || Number.isNaN(minute)) continue;
    let group = byVersion.get(version);
    if (!group) {
      group = { total: emptyCell(), minutes: [] };
      byVersion.set(version, group);
    }
    const cell = item.cell;
    mergeCells(group.total, cell);
    group.minutes.push({ minute, cell });
  }
  const series: VersionSeries[] = [];
  for (const [version, group] of [...byVersion].sort(([a], [b]) => a - b)) {
    const manifest = await source.manifests?.get(model, version);
    const training = trainingDistributionOf(manifest);
    const total = summarizeCell(group.total, training);
    const task =
      manifest?.preprocessing.task ??
      (group.total.valued > 0 ? 'regression' : group.total.scored > 0 ? 'anomaly' : undefined);
    series.push({
      model,
      version,
      ...(task === 'regression' || task === 'anomaly' ? { task } : {}),
      minutes: group.minutes
        .sort((a, b) => a.minute - b.minute)
        .map(({ minute, cell }) => minutePoint(minute, cell, training)),
      classMix: total.classCounts,
      confidence: {
        mean: clampRate(total.confidenceMean),
        histogram: CONFIDENCE_EDGES.map((from, index) => ({
          from,
          to: bucketUpper(index, CONFIDENCE_EDGES),
          count: group.total.confidenceHist[index] ?? 0,
        })),
      },
    });
  }
  return series;
}

function minutePoint(minute: number, cell: AggregateCell, training?: TrainingDistribution): MinutePoint {
  const summary = summarizeCell(cell, training);
  return {
    minute,
    inferences: summary.inferences,
    lowConfidenceRate: summary.lowConfidenceRate,
    confidenceMean: clampRate(summary.confidenceMean),
    latencyP50Ms: summary.latencyP50Ms,
    latencyP99Ms: summary.latencyP99Ms,
    liveAccuracy: summary.liveAccuracy,
    drift: summary.drift?.psi ?? null,
    ...(cell.valued > 0 ? { predictionMean: summary.valueMean, liveRmse: summary.liveRmse } : {}),
    ...(summary.anomalyRate !== null ? { anomalyRate: summary.anomalyRate } : {}),
  };
}

/** Float sums can land a hair above 1 (e.g. every confidence 1.0 summed and divided). */
function clampRate(value: number | null): number | null {
  return value === null ? null : Math.min(1, Math.max(0, value));
}
