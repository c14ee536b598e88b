/**
 * Summary mode on the wire: a gateway folds its results into per-minute cells (the same
 * additive AggregateCell the cloud keeps) and sends the cells instead of every result. A
 * 500-result batch is ~30 KB as detail JSON and ~1 KB as a summary, which is what makes IoT
 * Core (billed per 5 KB) and the stream (1 MB/s per shard) cheap per inference. The cloud
 * checks every cell on its own and keeps the good ones, as it does with results.
 */
import {
  describeZodError,
  type ResultBatch,
  ResultBatchSchema,
  type SummaryBatch,
  SummaryBatchSchema,
  type SummaryCell,
  SummaryCellSchema,
} from '../schemas.ts';
import { aggregateKeys } from '../topology.ts';
import type { MinuteCell } from './aggregate.ts';
import type { BatchEnvelope, Decoded, RejectedResult } from './decode.ts';
import { MAX_CLOCK_AHEAD_MS } from './decode.ts';
import { CONFIDENCE_EDGES, LATENCY_EDGES_MS } from './histogram.ts';
import { cellFromWire } from './summary-cells.ts';

export { cellFromWire, cellToWire, SummaryCells, summarizeResults, summaryCount } from './summary-cells.ts';

const MINUTE_MS = 60_000;

export type AnyBatch =
  | { mode: 'detail'; envelope: BatchEnvelope }
  | { mode: 'summary'; envelope: Omit<SummaryBatch, 'cells'> & { cells: unknown[] } };

/** Either wire format: `mode: 'summary'` selects summary mode, anything else is a detail batch. */
export function decodeAnyBatch(value: unknown): Decoded<AnyBatch> {
  if (value && typeof value === 'object' && (value as { mode?: unknown }).mode === 'summary') {
    const summary = SummaryBatchSchema.safeParse(value);
    if (!summary.success)
      return { ok: false, reason: `invalid summary batch: ${describeZodError(summary.error)}` };
    return { ok: true, value: { mode: 'summary', envelope: summary.data } };
  }
  const detail = ResultBatchSchema.safeParse(value);
  if (!detail.success)
    return { ok: false, reason: `invalid result batch: ${describeZodError(detail.error)}` };
  return { ok: true, value: { mode: 'detail', envelope: detail.data as ResultBatch } };
}

export interface CheckedCells {
  cells: MinuteCell[];
  rejected: RejectedResult[];
}

/** Each cell on its own: a cell whose numbers do not add up is rejected with the reason. */
export function checkSummaryCells(
  rawCells: readonly unknown[],
  rules: { receivedAt: number; labels?: readonly string[] },
): CheckedCells {
  const labels = rules.labels ? new Set(rules.labels) : undefined;
  const cells: MinuteCell[] = [];
  const rejected: RejectedResult[] = [];
  const minutes = new Set<number>();
  rawCells.forEach((raw, index) => {
    const problem = cellProblem(raw, rules.receivedAt, labels, minutes);
    if (typeof problem === 'string') {
      rejected.push({ index, reason: `cells.${index}: ${problem}`, raw });
      return;
    }
    minutes.add(problem.minute);
    cells.push({ minute: aggregateKeys.minute(problem.minute), cell: cellFromWire(problem) });
  });
  return { cells, rejected };
}

const sumOf = (values: Iterable<number>) => {
  let sum = 0;
  for (const value of values) sum += value;
  return sum;
};

function cellProblem(
  raw: unknown,
  receivedAt: number,
  labels: Set<string> | undefined,
  seen: Set<number>,
): SummaryCell | string {
  const parsed = SummaryCellSchema.safeParse(raw);
  if (!parsed.success) return describeZodError(parsed.error);
  const cell = parsed.data;
  if (cell.minute % MINUTE_MS !== 0) return `minute ${cell.minute} is not the start of a UTC minute`;
  if (seen.has(cell.minute)) return `minute ${cell.minute} appears twice in the batch`;
  if (cell.minute > receivedAt + MAX_CLOCK_AHEAD_MS)
    return `minute ${cell.minute} is more than a day ahead of the broker's clock (${receivedAt})`;
  const n = cell.n;
  if (cell.low > n) return `low (${cell.low}) exceeds n (${n})`;
  if (cell.lab > n) return `lab (${cell.lab}) exceeds n (${n})`;
  if (cell.ok > cell.lab) return `ok (${cell.ok}) exceeds lab (${cell.lab})`;
  if (cell.csum > n + 1e-6) return `csum (${cell.csum}) exceeds n (${n}): confidences are at most 1`;
  if (cell.lsum > n * 3_600_000) return `lsum (${cell.lsum}) is more than an hour per result`;
  // A regression cell (nv present) holds values: no classes or confidences, a value histogram.
  if (cell.nv !== undefined) return regressionCellProblem(cell) ?? cell;
  const classTotal = sumOf(Object.values(cell.classes));
  if (classTotal !== n) return `classes add up to ${classTotal}, not n (${n})`;
  for (const name of Object.keys(cell.classes)) {
    if (labels && !labels.has(name)) return `class '${name.slice(0, 64)}' is not a class of this model`;
    if (!labels && name.length > 64) return 'a class name is longer than 64 characters';
  }
  if (cell.ns !== undefined) {
    if (cell.ns !== n) return `ns (${cell.ns}) is not n (${n}): a cell holds one model version's results`;
    if (cell.ch.length > 0 || cell.csum > 0 || cell.low > 0)
      return 'an anomaly cell (ns) carries confidences';
    if (Object.keys(cell.classes).some((name) => name !== 'anomaly' && name !== 'normal'))
      return "an anomaly cell's classes are 'anomaly' and 'normal'";
    // The scores' histogram, when sent: one bucket each, as many scores as results.
    if (cell.vh) {
      if (new Set(cell.vh.map(([index]) => index)).size !== cell.vh.length) return 'vh repeats a bucket';
      const scores = sumOf(cell.vh.map(([, count]) => count));
      if (scores !== n) return `vh adds up to ${scores}, not n (${n})`;
    }
  }
  for (const [field, histogram, edges] of [
    ...(cell.ns === undefined ? ([['ch', cell.ch, CONFIDENCE_EDGES]] as const) : []),
    ['lh', cell.lh, LATENCY_EDGES_MS],
  ] as const) {
    const indexes = new Set(histogram.map(([index]) => index));
    if (indexes.size !== histogram.length) return `${field} repeats a bucket`;
    if (histogram.some(([index]) => index >= edges.length))
      return `${field} names a bucket beyond the last (${edges.length - 1})`;
    const total = sumOf(histogram.map(([, count]) => count));
    if (total !== n) return `${field} adds up to ${total}, not n (${n})`;
  }
  return cell;
}

function regressionCellProblem(cell: SummaryCell): string | undefined {
  const { n } = cell;
  if (cell.nv !== n) return `nv (${cell.nv}) is not n (${n}): a cell holds one model version's results`;
  if (
    Object.keys(cell.classes).length > 0 ||
    cell.ch.length > 0 ||
    cell.csum > 0 ||
    cell.low > 0 ||
    cell.ok > 0
  )
    return 'a regression cell (nv) carries classes or confidences';
  const values = sumOf((cell.vh ?? []).map(([, count]) => count));
  if (values !== n) return `vh adds up to ${values}, not n (${n})`;
  const latencies = sumOf(cell.lh.map(([, count]) => count));
  if (latencies !== n) return `lh adds up to ${latencies}, not n (${n})`;
  if (!Number.isFinite(cell.vsum ?? 0) || !Number.isFinite(cell.vsq ?? 0))
    return 'vsum and vsq must be finite';
  return undefined;
}
