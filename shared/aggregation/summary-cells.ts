/**
 * Summary cells, the gateway's side of summary mode: results folded into one additive cell
 * per UTC minute, and the cell's wire form (SummaryCellSchema). No runtime imports beyond the
 * aggregation maths, so the device's result writer uses it without zod.
 */
import type { SummaryCell } from '../schemas.ts';
import { type AggregateCell, addResult, type CountedResult, emptyCell } from './aggregate.ts';
import type { Histogram } from './histogram.ts';

const MINUTE_MS = 60_000;

/**
 * The gateway side: results folded into one cell per UTC minute as they come, the open part
 * of a summary batch. Each cell is the additive AggregateCell the cloud keeps, so a summary
 * of a batch counts exactly what the cloud would count from the batch's results.
 */
export class SummaryCells {
  private readonly byMinute = new Map<number, AggregateCell>();
  /** Results folded in so far. */
  count = 0;

  /** Cells (UTC minutes) open so far. */
  get size(): number {
    return this.byMinute.size;
  }

  /** Whether a result stamped `ts` would open a cell of its own. */
  opensCell(ts: number): boolean {
    return !this.byMinute.has(minuteStart(ts));
  }

  add(result: CountedResult, lowConfidence: number): void {
    const minute = minuteStart(result.ts);
    let cell = this.byMinute.get(minute);
    if (!cell) {
      cell = emptyCell();
      this.byMinute.set(minute, cell);
    }
    addResult(cell, result, lowConfidence);
    this.count += 1;
  }

  /** The wire cells, sorted by minute. */
  toWire(): SummaryCell[] {
    return [...this.byMinute].sort(([a], [b]) => a - b).map(([minute, cell]) => cellToWire(minute, cell));
  }
}

const minuteStart = (ts: number) => ts - (((ts % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);

/** Results -> one wire cell per UTC minute they fall in (sorted by minute). */
export function summarizeResults(results: readonly CountedResult[], lowConfidence: number): SummaryCell[] {
  const cells = new SummaryCells();
  for (const result of results) cells.add(result, lowConfidence);
  return cells.toWire();
}

/** Inferences a summary batch covers: the sum of its cells' counts. */
export function summaryCount(cells: readonly Pick<SummaryCell, 'n'>[]): number {
  let total = 0;
  for (const cell of cells) total += cell.n;
  return total;
}

const pairs = (histogram: Histogram): [number, number][] =>
  Object.entries(histogram)
    .map(([index, count]): [number, number] => [Number(index), count])
    .sort(([a], [b]) => a - b);

/** Sums are rounded to 1e-6 so the JSON stays short; counts are exact. */
const round6 = (value: number) => Math.round(value * 1e6) / 1e6;

export function cellToWire(minuteMs: number, cell: AggregateCell): SummaryCell {
  return {
    minute: minuteMs,
    n: cell.count,
    low: cell.lowConfidence,
    csum: round6(cell.confidenceSum),
    lsum: round6(cell.latencySumMs),
    lab: cell.labelled,
    ok: cell.correct,
    classes: { ...cell.classes },
    ...(cell.scored > 0 ? { ns: cell.scored, vh: pairs(cell.valueHist) } : {}),
    // Regression cells only: absent for a classifier, so its wire form is unchanged.
    ...(cell.valued > 0
      ? {
          nv: cell.valued,
          vsum: round6(cell.valueSum),
          vsq: round6(cell.valueSquares),
          esq: round6(cell.errorSquares),
          eabs: round6(cell.errorAbs),
          vh: pairs(cell.valueHist),
        }
      : {}),
    ch: pairs(cell.confidenceHist),
    lh: pairs(cell.latencyHist),
  };
}

export function cellFromWire(wire: SummaryCell): AggregateCell {
  return {
    count: wire.n,
    lowConfidence: wire.low,
    confidenceSum: wire.csum,
    latencySumMs: wire.lsum,
    labelled: wire.lab,
    correct: wire.ok,
    classes: { ...wire.classes },
    valued: wire.nv ?? 0,
    scored: wire.ns ?? 0,
    valueSum: wire.vsum ?? 0,
    valueSquares: wire.vsq ?? 0,
    errorSquares: wire.esq ?? 0,
    errorAbs: wire.eabs ?? 0,
    valueHist: Object.fromEntries(wire.vh ?? []),
    confidenceHist: Object.fromEntries(wire.ch),
    latencyHist: Object.fromEntries(wire.lh),
  };
}
