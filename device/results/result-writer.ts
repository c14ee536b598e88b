/**
 * The device's results on their way to the outbox: a ResultStream turns each classified chunk
 * into result JSON (or summary cells), cuts batches and makes them durable (BatchLog, and the
 * open batch's journal); each durable batch goes to the stream's Outbox, which applies the
 * overflow policy, publishes it and deletes it after the PUBACK.
 *
 * It runs on the main thread. It once ran on a worker thread of its own, bundled with esbuild
 * at run time: the live bench (bench/device-live.ts) read the same CPU per result either way,
 * and the thread cost some 30-40 MB of RSS, so it went (and with it the messages it spoke).
 *
 * The guarantees: a batch is published only once durable, and the CSV resume position only
 * ever comes from durable batches, so a crash loses no reading whatever the stream had in hand.
 */
import { DEFAULT_LOW_CONFIDENCE } from '../../shared/aggregation/aggregate.ts';
import {
  addToHistogram,
  type Histogram,
  percentileFromHistogram,
} from '../../shared/aggregation/histogram.ts';
import { errorMessage } from '../../shared/errors.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { type BatchInput, BatchLog, type StoredBatch } from './batch-log.ts';
import { type BatcherOptions, ResultBatcher } from './batcher.ts';
import type { Outbox } from './outbox.ts';
import {
  encodeResultObjects,
  type ReplayClassified,
  ReplayEncoder,
  type ResultChunk,
  replayResultReader,
} from './result-encoding.ts';
import { SummaryBatcher, type SummaryBatcherOptions } from './summary-batcher.ts';

/** A CSV replay chunk as the model classified it: readings first .. first + best.length - 1. */
export interface ReplayChunk extends ReplayClassified {
  version: number;
  first: number;
  ts: number;
  /** The CSV position after the chunk. */
  csvNext: number;
}

/**
 * Buckets of the durable latency: 5% wide from 0.1 ms (to about half an hour), so a
 * percentile read from them is within 5% (the cloud's latency buckets are coarser above 10 ms).
 */
const DURABLE_EDGES_MS: readonly number[] = [0, ...Array.from({ length: 200 }, (_, i) => 0.1 * 1.05 ** i)];

/** Results handed over but not durable yet, before a source waits. */
const MAX_UNSTORED_RESULTS = 16_384;

/** Sees every result handed over, in the order handed (an anomaly model's event rule). */
export interface ResultTap {
  results(version: number, results: readonly InferenceResult[]): void;
  replay(chunk: ReplayChunk): void;
}

/**
 * One device's results on their way to its outbox: the sources hand over results here, in
 * source order, and `onPersisted` hears of each batch once it is durable (false: the
 * overflow policy refused it).
 */
export class ResultStream {
  /** Results handed over, and those of them in durable batches. */
  private handed = 0;
  private stored = 0;
  /** Summary mode: results folded into cells (they hold no memory then). */
  private folded = 0;
  private failure: Error | undefined;
  private readonly wakeups: (() => void)[] = [];
  private closed = false;
  private readonly log: BatchLog;
  private readonly encoder: ReplayEncoder;
  /** Detail batches (results as JSON), or in summary mode per-minute cells. */
  private readonly batcher: ResultBatcher | SummaryBatcher;
  /** The CSV source's truth column, one entry per file row ('' for none). */
  private truths: readonly string[] = [];
  /** The storage fault holding batches in memory, while it lasts. */
  private heldFault: string | undefined;
  private faultHeldBytes = 0;
  /** Stored bytes and results so far: what a result costs on disk, for the disk gate. */
  private storedBytes = 0;
  private storedResults = 0;
  private readonly summary: boolean;
  /** Each model version's low-confidence threshold, which summary mode counts with. */
  private readonly lowConfidence = new Map<number, number>();
  /**
   * Results handed over and not yet durable, as runs of `count` readings that arrived at
   * `at` (performance.now()), in order: batches become durable in the order results came.
   */
  private readonly arrivals: { count: number; at: number }[] = [];
  /**
   * Results durable so far, as a prefix of those handed over (in a segment, or journalled:
   * open-batch-journal.ts), and journalled runs past it that wait for the prefix to reach them.
   */
  private durableThrough = 0;
  private readonly journalledAhead: { from: number; to: number }[] = [];
  /** A journal write failed and none has succeeded since. */
  private journalFaulted = false;
  /** From a reading's arrival to its result being durable (ms), since the stream opened. */
  private readonly durableLatency: Histogram = {};
  private tap: ResultTap | undefined;

  constructor(
    private readonly outbox: Outbox,
    options: {
      thing: string;
      model: string;
      batch?: BatcherOptions;
      /** Summary mode: per-minute cells instead of results (absent: detail batches). */
      summary?: SummaryBatcherOptions;
    },
    private readonly onPersisted: (accepted: boolean, count: number, bytes: number) => void = () => undefined,
    /** Hears when a storage fault starts holding batches in memory, and when it ends. */
    private readonly onStorage: (fault: string | undefined, heldBytes: number) => void = () => undefined,
    /** Hears when results could not be journalled (they are durable once their batch is), and when they are again. */
    private readonly onJournalFault: (message: string) => void = () => undefined,
  ) {
    this.summary = options.summary !== undefined;
    this.log = new BatchLog(outbox.dir, outbox.handOverWriting(), ({ fault, heldBytes }) => {
      this.heldFault = fault;
      this.faultHeldBytes = heldBytes;
      this.onStorage(fault, heldBytes);
    });
    const sink = {
      append: async (input: BatchInput) => {
        this.storedBatch(await this.log.append(input));
        return true; // the Outbox applies the overflow policy when it adopts the batch
      },
      flush: () => this.log.flush(),
    };
    this.encoder = new ReplayEncoder(options.thing);
    this.batcher = options.summary
      ? new SummaryBatcher(sink, options.model, options.summary)
      : new ResultBatcher(sink, options.model, () => undefined, options.batch ?? {}, {
          dir: outbox.dir,
          journalled: (from, to) => this.journalled(from, to),
          fault: (message) => this.journalFault(message),
        });
  }

  /** From now on `tap` sees every result handed over. */
  setTap(tap: ResultTap): void {
    this.tap = tap;
  }

  /** A model version the device serves, with the threshold its manifest sets for low confidence. */
  setModel(version: number, lowConfidence: number): void {
    this.lowConfidence.set(version, lowConfidence);
  }

  private lowConfidenceOf(version: number): number {
    return this.lowConfidence.get(version) ?? DEFAULT_LOW_CONFIDENCE;
  }

  /** Summary mode: results are folded into per-minute cells, as objects. */
  get folds(): boolean {
    return this.summary;
  }

  /** Results handed over and not durable yet. */
  get backlog(): number {
    return this.handed - this.stored;
  }

  /** The storage fault holding results in memory, if any. */
  get storageFault(): string | undefined {
    return this.heldFault;
  }

  /** Bytes of results a storage fault holds in memory. */
  get heldBytes(): number {
    return this.heldFault ? this.faultHeldBytes : 0;
  }

  /** Bytes a result takes in a segment file (measured; 160 until a batch was stored). */
  get bytesPerResult(): number {
    return this.storedResults > 0 ? this.storedBytes / this.storedResults : 160;
  }

  /** Bytes of results handed over and not durable yet: what the disk still has to take. */
  get inHandBytes(): number {
    return Math.ceil(this.backlog * this.bytesPerResult);
  }

  /** The disk has room again: what a storage fault held is written now. */
  retry(): void {
    if (this.heldFault) this.log.retry();
  }

  /** The CSV source's truth column, one entry per file row ('' for none). */
  setTruths(truths: readonly string[]): void {
    this.truths = truths;
  }

  /** A classified CSV replay chunk: its results are encoded here (summary mode: folded). */
  addReplay(chunk: ReplayChunk): void {
    const n = chunk.best.length;
    this.handed += n;
    this.arrived(n, chunk.latencyMs);
    this.write(() => {
      const { batcher } = this;
      if (batcher instanceof SummaryBatcher) {
        const resultAt = replayResultReader(chunk.first, chunk, this.truths, chunk.ts);
        batcher.addEach(chunk.version, this.lowConfidenceOf(chunk.version), n, resultAt, chunk.csvNext);
        this.foldedMore(n);
      } else
        batcher.addEncoded(
          chunk.version,
          this.encoder.encode(chunk.first, n, chunk, this.truths, chunk.ts),
          chunk.csvNext,
        );
    });
    this.tap?.replay(chunk);
  }

  /** Results made on this thread (stdin, /infer), by one model version. */
  add(version: number, results: readonly InferenceResult[], csvNext?: number): void {
    this.tap?.results(version, results);
    const { batcher } = this;
    if (batcher instanceof SummaryBatcher) {
      this.handed += results.length;
      for (const result of results) this.arrived(1, result.latencyMs);
      this.write(() => {
        batcher.add(version, this.lowConfidenceOf(version), results, csvNext);
        this.foldedMore(results.length);
      });
      return;
    }
    this.addEncoded(
      version,
      encodeResultObjects(results),
      csvNext,
      results.map((result) => result.latencyMs),
    );
  }

  /** Results of one model version already encoded (the batcher copies them at once). */
  addEncoded(version: number, chunk: ResultChunk, csvNext?: number, latenciesMs?: readonly number[]): void {
    this.handed += chunk.count;
    if (latenciesMs) for (const latencyMs of latenciesMs) this.arrived(1, latencyMs);
    else this.arrived(chunk.count, 0);
    this.write(() => {
      if (this.batcher instanceof SummaryBatcher) throw new Error('a summary stream takes results, not JSON');
      this.batcher.addEncoded(version, chunk, csvNext);
    });
  }

  /**
   * Resolves once few enough results wait to be stored (backpressure for fast sources). In
   * summary mode a result is off the stream's hands once folded into a cell, which may wait
   * a whole interval for its batch: waiting for that would stall a fast source.
   */
  async drain(max = MAX_UNSTORED_RESULTS): Promise<void> {
    const waiting = () => (this.summary ? this.handed - this.folded : this.backlog);
    while (!this.failure && waiting() >= max) await new Promise<void>((wake) => this.wakeups.push(wake));
    if (this.failure) throw this.failure;
  }

  /**
   * Cuts the partial batch and waits until every result handed over is in the outbox. With
   * `orHeld` it also returns while a storage fault holds results in memory (for stop: their
   * CSV readings are read again after a restart, the resume position being durable only).
   */
  async flush(orHeld = false): Promise<void> {
    if (this.failure) throw this.failure;
    await this.settle(async () => {
      // A held batch never resolves its append until the disk has room: `orHeld` returns before.
      if (orHeld) {
        this.batcher.cut();
        await this.log.flush(true);
      } else await this.batcher.flush();
    });
    await this.outbox.flush();
  }

  /** Flushes and takes no more results; closing while the disk holds batches gives them up. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.failure) throw this.failure;
    if (this.log.holding) {
      this.batcher.cut();
      // Their CSV readings are read again after a restart (BatchLog.abandon).
      this.log.abandon('the result stream closed while the disk was full');
    } else await this.settle(() => this.batcher.flush());
    await this.outbox.flush();
  }

  /** A batch is durable in the outbox's directory. */
  private storedBatch(batch: StoredBatch) {
    const accepted = this.outbox.adopt(batch);
    this.stored += batch.count;
    this.durableUpTo(this.stored);
    this.storedBytes += batch.bytes;
    this.storedResults += batch.count;
    for (const wake of this.wakeups.splice(0)) wake();
    this.onPersisted(accepted, batch.count, batch.bytes);
  }

  /** Results [from, to) of those handed over are durable in the open batch's journal. */
  private journalled(from: number, to: number) {
    if (this.journalFaulted) {
      this.journalFaulted = false;
      this.onJournalFault('results are journalled again');
    }
    if (from <= this.durableThrough) this.durableUpTo(to);
    else this.journalledAhead.push({ from, to });
  }

  /**
   * A journal write failed (a full disk fails every batch's, two a second): the first is
   * reported, then nothing until one succeeds again.
   */
  private journalFault(message: string) {
    if (this.journalFaulted) return;
    this.journalFaulted = true;
    this.onJournalFault(
      `${message}; until journal writes work again, results are durable once their batch is`,
    );
  }

  /** Summary mode: `count` more results are folded into the open cells. */
  private foldedMore(count: number) {
    this.folded += count;
    for (const wake of this.wakeups.splice(0)) wake();
  }

  /** `count` results handed over now, of readings that arrived `latencyMs` before the predict ended. */
  private arrived(count: number, latencyMs: number) {
    const at = performance.now() - latencyMs;
    const last = this.arrivals[this.arrivals.length - 1];
    // Readings of one chunk share their arrival: one run, not one entry per result.
    if (last && Math.abs(last.at - at) < 0.05) last.count += count;
    else this.arrivals.push({ count, at });
  }

  /** Results up to `to` (of all handed over) are durable now, and the journalled runs it reaches. */
  private durableUpTo(to: number) {
    let through = to;
    for (let reached = true; reached; ) {
      reached = false;
      for (let i = this.journalledAhead.length - 1; i >= 0; i--) {
        const run = this.journalledAhead[i] as { from: number; to: number };
        if (run.from > through) continue;
        through = Math.max(through, run.to);
        this.journalledAhead.splice(i, 1);
        reached = true;
      }
    }
    if (through <= this.durableThrough) return;
    this.durable(through - this.durableThrough);
    this.durableThrough = through;
  }

  /** The next `count` results handed over are durable now. */
  private durable(count: number) {
    const now = performance.now();
    let left = count;
    while (left > 0 && this.arrivals.length > 0) {
      const run = this.arrivals[0] as { count: number; at: number };
      const take = Math.min(left, run.count);
      addToHistogram(this.durableLatency, now - run.at, DURABLE_EDGES_MS, take);
      run.count -= take;
      left -= take;
      if (run.count === 0) this.arrivals.shift();
    }
  }

  /** p50 and p99 of the time from a reading's arrival to its result being durable (ms). */
  durableLatencyPercentiles(): { p50: number | null; p99: number | null } {
    return {
      p50: percentileFromHistogram(this.durableLatency, DURABLE_EDGES_MS, 0.5),
      p99: percentileFromHistogram(this.durableLatency, DURABLE_EDGES_MS, 0.99),
    };
  }

  /** Fails everything waiting and everything after: the results can no longer be stored. */
  fail(reason: string): void {
    this.failure ??= new Error(reason);
    for (const wake of this.wakeups.splice(0)) wake();
  }

  /** Hands results to the batcher; a failure there is sticky (every call after it throws). */
  private write(add: () => void) {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('the result stream is closed');
    try {
      add();
    } catch (error) {
      this.fail(errorMessage(error));
    }
  }

  /** Waits for the batcher or log; a failure there fails the stream. */
  private async settle(run: () => Promise<void>) {
    try {
      await run();
    } catch (error) {
      this.fail(errorMessage(error));
      throw this.failure;
    }
  }
}
