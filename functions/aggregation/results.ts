/**
 * The results aggregator's work for one IoT rule event: decode and validate, set bad input
 * aside in the errors table, claim the batch, add the pre-aggregated cells (one conditional
 * UpdateItem per key), mark the claim done, and emit metrics. It throws only when AWS itself
 * fails (so Lambda retries); bad input is answered, never thrown.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  type AggregateCell,
  countedClasses,
  DEFAULT_LOW_CONFIDENCE,
  emptyCell,
  type KeyedCell,
  mergeCells,
  preAggregate,
  summarizeCell,
  trainingDistributionOf,
} from '../../shared/aggregation/aggregate.ts';
import { checkResults, decodeBatchEnvelope, type RejectedResult } from '../../shared/aggregation/decode.ts';
import type { EdgeloopMetrics } from '../../shared/metrics.ts';
import { MetricUnit } from '../../shared/metrics.ts';
import type { RuleEvent } from '../../shared/schemas.ts';
import { idempotencyKeys } from '../../shared/topology.ts';
import { batchTag, cellFromItem, cellUpdate } from './aggregate-item.ts';
import {
  type ErrorRecord,
  intake,
  MAX_RESULT_ERRORS_PER_BATCH,
  recordErrors,
  setAside,
} from './errors-store.ts';
import { claim, isConditionFailure, markDone } from './idempotency.ts';
import type { ManifestLookup } from './manifests.ts';

export interface ResultsDeps {
  ddb: DynamoDBDocumentClient;
  tables: { aggregates: string; errors: string; idempotency: string };
  manifests: ManifestLookup;
  metrics: EdgeloopMetrics;
  logger: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
}

export type ResultsOutcome =
  | { status: 'rejected'; reason: string }
  | { status: 'duplicate'; batchId: string }
  | {
      status: 'counted';
      batchId: string;
      /** Results added by this invocation (0 when a resumed batch had been fully added). */
      counted: number;
      valid: number;
      rejected: number;
      repeatedIds: number;
      /** True when an earlier attempt had claimed the batch and not finished. */
      resumed: boolean;
    };

export async function aggregateResultEvent(raw: unknown, deps: ResultsDeps): Promise<ResultsOutcome> {
  const now = (deps.now ?? Date.now)();
  const input = intake('results', raw, now, decodeBatchEnvelope);
  if (!input.ok) return setAside(deps, input.record);
  const { event, value: batch } = input;
  const { thing, receivedAt } = event;

  const manifest = await deps.manifests.get(batch.model, batch.version);
  const checked = checkResults(batch.results, {
    receivedAt,
    ...(manifest
      ? { labels: countedClasses(manifest), task: manifest.preprocessing.task ?? 'classification' }
      : {}),
  });

  const claimId = idempotencyKeys.resultBatch(thing, batch.batchId);
  const state = await claim(deps.ddb, deps.tables.idempotency, claimId, now);
  if (state === 'done') {
    deps.logger.info('duplicate batch ignored', { thing, batchId: batch.batchId });
    return { status: 'duplicate', batchId: batch.batchId };
  }

  if (checked.rejected.length > 0)
    await recordErrors(deps.ddb, deps.tables.errors, resultErrors(event, batch.batchId, checked.rejected));

  const cells = preAggregate({
    model: batch.model,
    version: batch.version,
    thing,
    results: checked.results,
    lowConfidence: manifest?.lowConfidence ?? DEFAULT_LOW_CONFIDENCE,
  });
  const tag = batchTag(thing, batch.batchId);
  const applied = await Promise.all(cells.map((keyed) => applyCell(deps, keyed, tag)));
  await markDone(deps.ddb, deps.tables.idempotency, claimId, {
    valid: checked.results.length,
    rejected: checked.rejected.length,
  });

  const batchCell = cells
    .filter((keyed) => keyed.key.level === 'thing')
    .reduce((sum, keyed) => mergeCells(sum, keyed.cell), emptyCell());
  // Counted = newly added to the model-level items (what stats and the Inferences metric read).
  const countedCell = cells
    .filter((keyed, i) => keyed.key.level === 'model' && applied[i]?.applied)
    .reduce((sum, keyed) => mergeCells(sum, keyed.cell), emptyCell());
  // Drift over the current minute window of this version, from the model-level item as updated.
  const windows = applied
    .filter((outcome) => outcome?.after !== undefined)
    .map((outcome) => outcome.after as AggregateCell);
  const latestWindow = windows.at(-1);
  const drift =
    latestWindow && manifest ? summarizeCell(latestWindow, trainingDistributionOf(manifest)).drift : null;
  emitResultMetrics(
    deps.metrics,
    batch.model,
    batch.version,
    countedCell,
    batchCell,
    checked.rejected.length,
    drift?.psi,
  );

  return {
    status: 'counted',
    batchId: batch.batchId,
    counted: countedCell.count,
    valid: checked.results.length,
    rejected: checked.rejected.length,
    repeatedIds: checked.repeatedIds,
    resumed: state === 'pending',
  };
}

/** Adds one cell; false when this batch had already been added to that item. */
async function applyCell(
  deps: ResultsDeps,
  keyed: KeyedCell,
  tag: string,
): Promise<{ applied: boolean; after?: AggregateCell }> {
  const input = cellUpdate(deps.tables.aggregates, keyed.key, keyed.cell, tag);
  try {
    const response = await deps.ddb.send(
      new UpdateCommand({ ...input, ReturnValues: keyed.key.level === 'model' ? 'ALL_NEW' : 'NONE' }),
    );
    return response.Attributes
      ? { applied: true, after: cellFromItem(response.Attributes) }
      : { applied: true };
  } catch (error) {
    if (isConditionFailure(error)) return { applied: false };
    throw error;
  }
}

function emitResultMetrics(
  metrics: EdgeloopMetrics,
  model: string,
  version: number,
  counted: AggregateCell,
  batch: AggregateCell,
  rejected: number,
  psi: number | undefined,
): void {
  const summary = summarizeCell(batch);
  metrics.publishWith({ model, version: String(version) }, (m) => {
    m.put('inferences', counted.count);
    m.put('lowConfidence', counted.lowConfidence);
    if (counted.scored > 0) m.put('anomalyResults', counted.classes.anomaly ?? 0);
    if (summary.latencyP99Ms !== null) m.put('latencyP99', summary.latencyP99Ms, MetricUnit.Milliseconds);
    if (summary.liveAccuracy !== null) m.put('liveAccuracy', summary.liveAccuracy, MetricUnit.NoUnit);
    if (psi !== undefined) m.put('drift', psi, MetricUnit.NoUnit);
    if (rejected > 0) m.put('aggregatorErrors', rejected);
  });
}

/** Error records for the results (or summary cells) of one batch that could not be counted. */
export function resultErrors(event: RuleEvent, batchId: string, rejected: RejectedResult[]): ErrorRecord[] {
  const base = {
    source: 'results' as const,
    topic: event.topic,
    thing: event.thing,
    at: event.receivedAt,
    batchId,
  };
  const records: ErrorRecord[] = rejected.slice(0, MAX_RESULT_ERRORS_PER_BATCH).map((bad) => ({
    ...base,
    reason: bad.reason,
    resultIndex: bad.index,
    payload: Buffer.from(JSON.stringify(bad.raw) ?? String(bad.raw)),
  }));
  const more = rejected.length - MAX_RESULT_ERRORS_PER_BATCH;
  if (more > 0)
    records.push({
      ...base,
      reason: `${more} more rejected results in batch ${batchId} (first ${MAX_RESULT_ERRORS_PER_BATCH} recorded one by one)`,
      resultIndex: -1,
      payload: Buffer.from(
        rejected
          .slice(MAX_RESULT_ERRORS_PER_BATCH)
          .map((bad) => bad.reason)
          .join('\n'),
      ),
    });
  return records;
}
