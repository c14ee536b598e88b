/**
 * The device's results on their way to the outbox. One result writer per process (shared by
 * every device of a fleet-sim, result-writer-core.ts) turns each classified chunk into result
 * JSON, cuts batches and makes them durable; each durable batch comes back to its stream's
 * Outbox, which applies the overflow policy, publishes it and deletes it after the PUBACK.
 *
 * It runs on the main thread. It once ran on a worker thread of its own, bundled with esbuild
 * at run time: the live bench (bench/device-live.ts) read the same CPU per result either way,
 * and the thread cost some 30-40 MB of RSS, so it went.
 *
 * The guarantees: a batch is published only once durable, and the CSV resume position only
 * ever comes from durable batches, so a crash loses no reading whatever the writer had in hand.
 */
import { DEFAULT_LOW_CONFIDENCE } from '../../shared/aggregation/aggregate.ts';
import {
  addToHistogram,
  type Histogram,
  percentileFromHistogram,
} from '../../shared/aggregation/histogram.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import type { BatcherOptions } from './batcher.ts';
import type { Outbox } from './outbox.ts';
import { encodeResultObjects, type ResultChunk } from './result-encoding.ts';
import { createResultWriter } from './result-writer-core.ts';
import type { FromWriter, ReplayChunk, ToWriter } from './result-writer-protocol.ts';
import type { SummaryBatcherOptions } from './summary-batcher.ts';

export type { ReplayChunk } from './result-writer-protocol.ts';

/**
 * Buckets of the durable latency: 5% wide from 0.1 ms (to about half an hour), so a
 * percentile read from them is within 5% (the cloud's latency buckets are coarser above 10 ms).
 */
const DURABLE_EDGES_MS: readonly number[] = [0, ...Array.from({ length: 200 }, (_, i) => 0.1 * 1.05 ** i)];

/** Results handed to the writer but not durable yet, before a source waits. */
const MAX_UNSTORED_RESULTS = 16_384;

/** The process's one result writer, and the streams it writes for. */
const streams = new Map<number, ResultStream>();
let nextStreamId = 1;
const writer = createResultWriter((message: FromWriter) => streams.get(message.stream)?.receive(message));

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
  private readonly id: number;
  /** Results handed to the writer, and those of them in durable batches. */
  private handed = 0;
  private stored = 0;
  /** Summary mode: results the writer has folded into cells (they hold no memory then). */
  private folded = 0;
  private failure: Error | undefined;
  private readonly wakeups: (() => void)[] = [];
  private readonly answers = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  private nextToken = 0;
  private closed = false;
  /** The storage fault holding batches in the writer, while it lasts. */
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
    /** Hears when results could not be journalled (they are durable once their batch is). */
    private readonly onJournalFault: (message: string) => void = () => undefined,
  ) {
    this.summary = options.summary !== undefined;
    this.id = nextStreamId++;
    streams.set(this.id, this);
    writer({
      type: 'open',
      stream: this.id,
      dir: outbox.dir,
      nextSeq: outbox.handOverWriting(),
      thing: options.thing,
      model: options.model,
      batch: options.batch ?? {},
      ...(options.summary ? { summary: options.summary } : {}),
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

  /** Summary mode: results are folded into per-minute cells in the writer, as objects. */
  get folds(): boolean {
    return this.summary;
  }

  /** Results handed over and not durable yet. */
  get backlog(): number {
    return this.handed - this.stored;
  }

  /** The storage fault holding results in memory in the writer, if any. */
  get storageFault(): string | undefined {
    return this.heldFault;
  }

  /** Bytes of results a storage fault holds in memory in the writer. */
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

  /** The disk has room again: the writer writes what it holds now. */
  retry(): void {
    if (this.heldFault) writer({ type: 'retry', stream: this.id });
  }

  /** The CSV source's truth column, one entry per file row ('' for none). */
  setTruths(truths: readonly string[]): void {
    this.send({ type: 'truths', stream: this.id, truths });
  }

  /** A classified CSV replay chunk; its results are encoded in the writer. */
  addReplay(chunk: ReplayChunk): void {
    this.handed += chunk.best.length;
    this.arrived(chunk.best.length, chunk.latencyMs);
    this.send({ type: 'replay', stream: this.id, chunk, lowConfidence: this.lowConfidenceOf(chunk.version) });
    this.tap?.replay(chunk);
  }

  /** Results made on this thread (stdin, /infer), by one model version. */
  add(version: number, results: readonly InferenceResult[], csvNext?: number): void {
    this.tap?.results(version, results);
    if (this.summary) {
      this.handed += results.length;
      for (const result of results) this.arrived(1, result.latencyMs);
      this.send({
        type: 'results',
        stream: this.id,
        version,
        lowConfidence: this.lowConfidenceOf(version),
        results: [...results],
        ...(csvNext !== undefined ? { csvNext } : {}),
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
    this.send({
      type: 'encoded',
      stream: this.id,
      version,
      chunk,
      ...(csvNext !== undefined ? { csvNext } : {}),
    });
  }

  /**
   * Resolves once few enough results wait to be stored (backpressure for fast sources). In
   * summary mode a result is off the writer's hands once folded into a cell, which may wait
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
    await this.ask('flush', orHeld);
    await this.outbox.flush();
  }

  /** Flushes, then lets the writer forget this stream. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.ask('close');
      await this.outbox.flush();
    } finally {
      streams.delete(this.id);
    }
  }

  receive(message: FromWriter): void {
    if (message.type === 'folded') {
      this.folded += message.count;
      for (const wake of this.wakeups.splice(0)) wake();
    } else if (message.type === 'stored') {
      const { batch } = message;
      const accepted = this.outbox.adopt(batch);
      this.stored += batch.count;
      this.durableUpTo(this.stored);
      this.storedBytes += batch.bytes;
      this.storedResults += batch.count;
      for (const wake of this.wakeups.splice(0)) wake();
      this.onPersisted(accepted, batch.count, batch.bytes);
    } else if (message.type === 'journalled') {
      if (message.from <= this.durableThrough) this.durableUpTo(message.to);
      else this.journalledAhead.push({ from: message.from, to: message.to });
    } else if (message.type === 'journal-fault') {
      this.onJournalFault(message.message);
    } else if (message.type === 'storage') {
      this.heldFault = message.fault;
      this.faultHeldBytes = message.heldBytes;
      this.onStorage(this.heldFault, this.faultHeldBytes);
    } else if (message.type === 'done' && !message.error) {
      this.answers.get(message.token)?.resolve();
      this.answers.delete(message.token);
    } else if (message.error) this.fail(message.error); // the writer's failures are sticky
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
    for (const answer of this.answers.values()) answer.reject(this.failure);
    this.answers.clear();
  }

  private ask(type: 'flush' | 'close', orHeld = false): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const token = this.nextToken++;
    return new Promise((resolve, reject) => {
      this.answers.set(token, { resolve, reject });
      writer(
        type === 'flush' && orHeld
          ? { type, stream: this.id, token, orHeld }
          : { type, stream: this.id, token },
      );
    });
  }

  private send(message: ToWriter) {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('the result stream is closed');
    writer(message);
  }
}
