/**
 * Summary mode on the gateway: instead of one record per inference, results are folded into
 * per-(version, UTC minute) cells (SummaryCells, the cloud's own additive cell) and a summary
 * batch in SummaryBatchSchema's shape is cut every `maxAgeMs` (default 10 s), when the model
 * version changes, or before a batch would hold more cells than the schema allows. A batch
 * goes to the same sink as a detail batch (the outbox's BatchLog): it is durable, with its
 * batch id, before it may be sent, so replays and restarts count once exactly as in detail
 * mode. The CSV position a batch carries is the one after its last result, so a crash loses
 * only results in the open (not yet durable) batch, and those readings are read again.
 */
import type { CountedResult } from '../../shared/aggregation/aggregate.ts';
import { SummaryCells } from '../../shared/aggregation/summary-cells.ts';
import { type BatchSink, SinkAppends } from './batcher.ts';

/** How long a summary batch collects by default: one publish per 10 s per gateway. */
export const DEFAULT_SUMMARY_INTERVAL_MS = 10_000;
/** SummaryBatchSchema's bound on cells per batch. */
export const MAX_SUMMARY_CELLS = 64;

export interface SummaryBatcherOptions {
  /** A batch is cut this long after its first result. */
  maxAgeMs?: number;
  maxCells?: number;
}

export class SummaryBatcher {
  private open = new SummaryCells();
  private version: number | undefined;
  private csvNext: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly appends: SinkAppends;
  private readonly maxAgeMs: number;
  private readonly maxCells: number;

  constructor(
    sink: BatchSink,
    private readonly model: string,
    options: SummaryBatcherOptions = {},
  ) {
    this.appends = new SinkAppends(sink, 'a summary batch');
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_SUMMARY_INTERVAL_MS;
    this.maxCells = Math.min(options.maxCells ?? MAX_SUMMARY_CELLS, MAX_SUMMARY_CELLS);
  }

  /** Results by one model version, in source order; `csvNext` is the position after the last. */
  add(version: number, lowConfidence: number, results: readonly CountedResult[], csvNext?: number): void {
    this.addEach(version, lowConfidence, results.length, (i) => results[i] as CountedResult, csvNext);
  }

  /**
   * `add` for `count` results read through `resultAt` (which may reuse one object: each is
   * folded in before the next is read), so a CSV replay chunk needs no object per reading.
   */
  addEach(
    version: number,
    lowConfidence: number,
    count: number,
    resultAt: (i: number) => CountedResult,
    csvNext?: number,
  ): void {
    this.appends.check();
    if (this.version !== undefined && version !== this.version) this.cut();
    this.version = version;
    for (let i = 0; i < count; i++) {
      const result = resultAt(i);
      if (this.open.size >= this.maxCells && this.open.opensCell(result.ts)) {
        // Positions are contiguous: the batch cut here ends right before result i.
        if (csvNext !== undefined) this.csvNext = csvNext - (count - i);
        this.cut();
        this.version = version;
      }
      this.open.add(result, lowConfidence);
    }
    if (csvNext !== undefined) this.csvNext = csvNext;
    if (this.open.count > 0) this.timer ??= setTimeout(() => this.cut(), this.maxAgeMs);
  }

  /** Cuts the open batch now (it goes to the sink; `flush` also waits for it). */
  cut(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { open, version, csvNext } = this;
    this.open = new SummaryCells();
    this.csvNext = undefined;
    if (open.count === 0 || version === undefined) return;
    const input = {
      model: this.model,
      version,
      summary: { cells: open.toWire(), count: open.count },
      ...(csvNext !== undefined ? { csvNext } : {}),
    };
    this.appends.append(input);
  }

  /** Cuts the open batch and waits until every batch is in the sink. */
  async flush(): Promise<void> {
    this.cut();
    await this.appends.settle();
  }
}
