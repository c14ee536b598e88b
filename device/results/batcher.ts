/**
 * Results -> batches: the ResultBatcher cuts batches by size (under IoT Core's 128 KB
 * message limit, with headroom, counted in exact UTF-8 bytes) and count and age, and hands
 * each one to a sink that makes it durable (the outbox's BatchLog) before it may be sent.
 * It runs in the device's ResultStream (result-writer.ts); tests run it over an Outbox.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { errorMessage } from '../../shared/errors.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { MAX_BATCH_RESULTS } from '../../shared/topology.ts';
import type { BatchInput } from './batch-log.ts';
import { DEFAULT_DURABLE_WITHIN_MS, JOURNAL_DIR, JournalFile } from './open-batch-journal.ts';
import { encodeResultObjects, type ResultChunk } from './result-encoding.ts';

/** Where cut batches go: resolves once the batch is durable (false: refused by policy). */
export interface BatchSink {
  append(input: BatchInput): Promise<boolean>;
  flush(): Promise<void>;
}

/** IoT Core rejects messages over 128 KB; the results array stays below this (the envelope is small). */
export const MAX_BATCH_BYTES = 120_000;

const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * Batches on their way into a sink, for a batcher: it waits on the last append (the sink
 * stores them in order), and the first failure is kept, not thrown into the void, so the
 * next add or flush reports it (a source must not read on past readings it cannot store).
 */
export class SinkAppends {
  private pending: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;

  constructor(
    private readonly sink: BatchSink,
    /** What a batch is, for the failure's message ('a result batch'). */
    private readonly what: string,
  ) {}

  append(
    input: BatchInput,
    onStored: (accepted: boolean) => void = () => undefined,
    onFailed: () => void = () => undefined,
  ): void {
    this.pending = this.sink.append(input).then(onStored, (error: unknown) => {
      onFailed();
      this.failure ??= new Error(`${this.what} could not be stored: ${errorMessage(error)}`);
    });
  }

  /** Throws the failure, if a batch could not be stored. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits until every batch appended is in the sink; throws the failure, if any. */
  async settle(): Promise<void> {
    // The sink's flush commits its open group now; waiting on the last append first would sit
    // out the group's wait for more batches (BatchLog's GROUP_WAIT_MS) on every flush.
    await Promise.all([this.pending, this.sink.flush()]);
    this.check();
  }
}

export interface BatcherOptions {
  maxBytes?: number;
  maxResults?: number;
  /** A partial batch is flushed after this long. */
  maxAgeMs?: number;
  /**
   * The open batch's results are journalled this long after they came at most (0: they are
   * durable only once their batch is). See open-batch-journal.ts.
   */
  durableWithinMs?: number;
}

/** Where the open batch's journal goes, and who hears of it. */
export interface JournalTarget {
  dir: string;
  /** Results [from, to) of all the batcher was given are durable. */
  journalled(from: number, to: number): void;
  fault(message: string): void;
}

export class ResultBatcher {
  /** The open batch: the bytes of its JSON array so far (`[` and the results, comma-separated). */
  private open: Buffer;
  /** Bytes of `open` written so far. */
  private used = 1;
  /** Results in the open batch, and the size of its array so far once they are all copied. */
  private count = 0;
  private size = 1;
  private csvNext: number | undefined;
  private version: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly appends: SinkAppends;
  private readonly maxBytes: number;
  private readonly maxResults: number;
  private readonly maxAgeMs: number;
  private readonly durableWithinMs: number;
  /** The open batch's id (given once it is journalled or cut), and its journal. */
  private batchId: string | undefined;
  private journalFile: JournalFile | undefined;
  /** Results of the open batch journalled so far, and where their bytes end in `open`. */
  private journalledCount = 0;
  private journalledBytes = 1;
  private journalTimer: NodeJS.Timeout | undefined;
  /** Results in the batches cut so far: the open batch's first result's number. */
  private cutResults = 0;
  /** Journals of stored batches on their way out (a flush waits for them). */
  private readonly removing = new Set<Promise<void>>();

  constructor(
    outbox: BatchSink,
    private readonly model: string,
    private readonly onPersisted: (accepted: boolean, count: number) => void,
    options: BatcherOptions = {},
    private readonly journal?: JournalTarget,
  ) {
    this.appends = new SinkAppends(outbox, 'a result batch');
    this.maxBytes = options.maxBytes ?? MAX_BATCH_BYTES;
    // By default the size limit cuts: fewer, fuller messages (IoT Core bills by 5 KB anyway).
    this.maxResults = Math.min(options.maxResults ?? MAX_BATCH_RESULTS, MAX_BATCH_RESULTS);
    this.maxAgeMs = options.maxAgeMs ?? 500;
    this.durableWithinMs = journal ? (options.durableWithinMs ?? DEFAULT_DURABLE_WITHIN_MS) : 0;
    this.open = Buffer.allocUnsafeSlow(this.maxBytes);
    this.open[0] = OPEN_BRACKET;
  }

  /**
   * Adds results made by one model version; `csvNext` is the CSV position after the last
   * of them (results must arrive in source order for the checkpoint to be exact).
   */
  add(version: number, results: readonly InferenceResult[], csvNext?: number): void {
    this.addEncoded(version, encodeResultObjects(results), csvNext);
  }

  /** `add` for results already encoded; the chunk's bytes are copied before this returns. */
  addEncoded(version: number, chunk: ResultChunk, csvNext?: number): void {
    this.appends.check();
    if (this.version !== undefined && version !== this.version) this.cut();
    this.version = version;
    const { ends, count } = chunk;
    // Results [runStart, i) are in the open batch's count and size but not copied yet: a run
    // is copied in one piece (with the commas between its results) when the batch is cut.
    let runStart = 0;
    for (let i = 0; i < count; i++) {
      const size = (ends[i] as number) - (i === 0 ? 0 : (ends[i - 1] as number) + 1);
      const needed = (this.count > 0 ? 1 : 0) + size; // its comma, unless it opens the batch
      // + 1: the closing bracket.
      if (this.count > 0 && (this.count >= this.maxResults || this.size + needed + 1 > this.maxBytes)) {
        this.copyRun(chunk, runStart, i);
        runStart = i;
        // Positions are contiguous, so the batch cut here ends right before result i. Giving it
        // the position after its own last result keeps a restart from replaying (under new batch
        // ids) readings whose batch was already acknowledged and deleted.
        if (csvNext !== undefined) this.csvNext = csvNext - (count - i);
        this.cut();
      }
      this.size += this.count > 0 ? 1 + size : size;
      this.count++;
    }
    this.copyRun(chunk, runStart, count);
    if (csvNext !== undefined) this.csvNext = csvNext;
    if (this.count > 0) this.timer ??= setTimeout(() => this.cut(), this.maxAgeMs);
    if (this.count > this.journalledCount && this.durableWithinMs > 0)
      this.journalTimer ??= setTimeout(() => this.writeJournal(), this.durableWithinMs);
  }

  /** Journals the open batch's results since the last write (see open-batch-journal.ts). */
  private writeJournal() {
    this.journalTimer = undefined;
    const journal = this.journal;
    if (!journal || this.version === undefined || this.count === this.journalledCount) return;
    this.batchId ??= randomUUID();
    this.journalFile ??= new JournalFile(
      join(journal.dir, JOURNAL_DIR),
      this.batchId,
      { model: this.model, version: this.version },
      journal.fault,
    );
    // The bytes after '[' (or after the comma that follows the last journalled result): the
    // open buffer only grows at its end, so the slice stays as it is until written.
    const bytes = this.open.subarray(this.journalledBytes + (this.journalledCount > 0 ? 1 : 0), this.used);
    const from = this.cutResults + this.journalledCount;
    const to = this.cutResults + this.count;
    this.journalFile.write(bytes, this.count - this.journalledCount, this.csvNext, () =>
      journal.journalled(from, to),
    );
    this.journalledCount = this.count;
    this.journalledBytes = this.used;
  }

  /** Copies results [from, to) of `chunk` to the end of the open batch's bytes. */
  private copyRun(chunk: ResultChunk, from: number, to: number) {
    if (from >= to) return;
    const start = from === 0 ? 0 : (chunk.ends[from - 1] as number) + 1;
    const end = chunk.ends[to - 1] as number;
    if (this.open.length < this.used + 1 + (end - start) + 1) {
      const grown = Buffer.allocUnsafe(this.used + 1 + (end - start) + 1);
      this.open.copy(grown, 0, 0, this.used);
      this.open = grown;
    }
    if (this.used > 1) this.open[this.used++] = COMMA;
    this.used += Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength).copy(
      this.open,
      this.used,
      start,
      end,
    );
  }

  /** Cuts the open batch now (it goes to the sink; `flush` also waits for it). */
  cut(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.journalTimer);
    this.journalTimer = undefined;
    if (this.count === 0 || this.version === undefined) return;
    this.open[this.used++] = CLOSE_BRACKET;
    const count = this.count;
    const journalFile = this.journalFile;
    const input = {
      batchId: this.batchId ?? randomUUID(),
      model: this.model,
      version: this.version,
      // The batch takes the buffer (its file is written from it); the next one gets a new one.
      resultsJson: this.open.subarray(0, this.used),
      count,
      ...(this.csvNext !== undefined ? { csvNext: this.csvNext } : {}),
    };
    this.open = Buffer.allocUnsafeSlow(this.maxBytes);
    this.open[0] = OPEN_BRACKET;
    this.used = 1;
    this.size = 1;
    this.count = 0;
    this.csvNext = undefined;
    this.cutResults += count;
    this.batchId = undefined;
    this.journalFile = undefined;
    this.journalledCount = 0;
    this.journalledBytes = 1;
    this.appends.append(
      input,
      (accepted) => {
        // Durable in its segment (or refused by policy, its file deleted): the journal is done.
        const removed = journalFile?.remove();
        if (removed) {
          this.removing.add(removed);
          void removed.then(() => this.removing.delete(removed));
        }
        this.onPersisted(accepted, count);
      },
      () => journalFile?.keep(),
    );
  }

  /** Cuts the partial batch and waits until every batch is in the outbox. */
  async flush(): Promise<void> {
    this.cut();
    await this.appends.settle();
    await Promise.all(this.removing);
  }
}
