/**
 * The on-disk outbox: store and forward for result batches.
 *
 * One file per batch (`<seq>.json`) holds the batch with its id, so a replay after a
 * reconnect or a restart sends the very same batch id and the aggregator counts it once.
 *
 * fsync policy: a batch may be published only once it is durable. The BatchLog writes
 * the files (group commit, see batch-log.ts) and the outbox adopts each batch once it is
 * durable: in this thread (`append`) or from the device's result writer thread (`adopt`).
 * A power cut can then lose only readings not yet in a batch, and those are read again
 * because the resume position never passes a durable batch.
 *
 * The checkpoint (`checkpoint.json`: the CSV source's next position and the dropped
 * counter) is NOT written per batch: on open, the resume position is max(checkpoint, every
 * stored batch's csvNext). It only has to be durable before a batch file is deleted (after
 * its PUBACK, or when dropped), so it is written then -- once per group of deletions.
 *
 * Bounded by batch count (10,000) and bytes (256 MB: about 2.3 million results, some eight
 * minutes of a 5,000/s source without a connection). Overflow policy: `drop-oldest`
 * (default: the freshest data matters most on a gateway that was offline for long) deletes
 * the oldest unsent batch; `reject` refuses (and deletes) the new one. Both count the
 * dropped results. The policy applies when a batch is adopted, after it was written.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BATCH_FILE, type BatchInput, BatchLog, batchFileName, type StoredBatch } from './batch-log.ts';
import { readJson, replaceFileAtomic } from './durable.ts';

export type { StoredBatch } from './batch-log.ts';

export type OverflowPolicy = 'drop-oldest' | 'reject';

export interface OutboxOptions {
  maxBatches?: number;
  maxBytes?: number;
  overflow?: OverflowPolicy;
}

interface Checkpoint {
  csvNext: number;
  dropped: number;
}

const CHECKPOINT = 'checkpoint.json';
const RESULTS_KEY = Buffer.from('"results":');

export class Outbox {
  private readonly batches = new Map<number, StoredBatch>();
  private readonly inFlight = new Set<number>();
  private bytes = 0;
  private checkpoint: Checkpoint = { csvNext: 0, dropped: 0 };
  private durableCheckpoint = '';
  private readonly maxBatches: number;
  private readonly maxBytes: number;
  readonly overflow: OverflowPolicy;
  private log: BatchLog | undefined;
  private deletions: number[] = [];
  private deleting: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    options: OutboxOptions,
  ) {
    this.maxBatches = options.maxBatches ?? 10_000;
    this.maxBytes = options.maxBytes ?? 256 * 2 ** 20;
    this.overflow = options.overflow ?? 'drop-oldest';
  }

  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    const outbox = new Outbox(dir, options);
    await mkdir(dir, { recursive: true });
    outbox.checkpoint = { csvNext: 0, dropped: 0, ...(await readJson<Checkpoint>(join(dir, CHECKPOINT))) };
    outbox.durableCheckpoint = JSON.stringify(outbox.checkpoint);
    let nextSeq = 0;
    for (const name of (await readdir(dir)).sort()) {
      if (name.endsWith('.tmp')) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      const match = BATCH_FILE.exec(name);
      if (!match) continue;
      const seq = Number(match[1]);
      try {
        const bytes = await readFile(join(dir, name));
        const { batchId, model, version, csvNext, results } = JSON.parse(
          bytes.toString('utf8'),
        ) as StoredFile;
        const batch: StoredBatch = {
          seq,
          batchId,
          model,
          version,
          count: results.length,
          ...(csvNext !== undefined ? { csvNext } : {}),
          bytes: bytes.length,
          // The outbox writes the results last: `..."results":[...]}`.
          resultsOffset: bytes.indexOf(RESULTS_KEY) + RESULTS_KEY.length,
        };
        outbox.batches.set(seq, batch);
        outbox.bytes += batch.bytes;
        if (batch.csvNext !== undefined && batch.csvNext > outbox.checkpoint.csvNext)
          outbox.checkpoint.csvNext = batch.csvNext;
      } catch {
        // Only complete files are renamed into place; anything unreadable is debris.
        await rm(join(dir, name), { force: true });
      }
      nextSeq = Math.max(nextSeq, seq + 1);
    }
    outbox.log = new BatchLog(dir, nextSeq);
    return outbox;
  }

  /** Where the CSV source resumes. */
  get csvNext(): number {
    return this.checkpoint.csvNext;
  }

  get dropped(): number {
    return this.checkpoint.dropped;
  }

  get depth(): number {
    return this.batches.size;
  }

  get depthResults(): number {
    let n = 0;
    for (const batch of this.batches.values()) n += batch.count;
    return n;
  }

  /**
   * Persists a batch before anyone may publish it; resolves once it is durable.
   * Returns false when the `reject` policy refused it.
   */
  async append(input: BatchInput): Promise<boolean> {
    if (!this.log) throw new Error(`the outbox in ${this.dir} is written by another thread`);
    return this.adopt(await this.log.append(input));
  }

  /**
   * Hands the writing over to another thread's BatchLog: returns the sequence number it
   * starts at. From then on batches come in through `adopt` only.
   */
  handOverWriting(): number {
    const log = this.log;
    if (!log) throw new Error(`the outbox in ${this.dir} is already written by another thread`);
    this.log = undefined;
    return log.nextSeq;
  }

  /**
   * Takes in a batch that is durable in this outbox's directory, applying the overflow
   * policy; false when the `reject` policy refused it (its file is deleted).
   */
  adopt(batch: StoredBatch): boolean {
    if (batch.csvNext !== undefined && batch.csvNext > this.checkpoint.csvNext)
      this.checkpoint.csvNext = batch.csvNext;
    if (!this.makeRoom(batch.bytes)) {
      this.checkpoint.dropped += batch.count;
      this.deleteFiles([batch.seq]);
      return false;
    }
    this.batches.set(batch.seq, batch);
    this.bytes += batch.bytes;
    return true;
  }

  /** Applies the overflow policy; false when the new batch must be refused. */
  private makeRoom(size: number): boolean {
    while (this.batches.size >= this.maxBatches || this.bytes + size > this.maxBytes) {
      if (this.overflow === 'reject') return false;
      const oldest = [...this.batches.keys()].find((seq) => !this.inFlight.has(seq));
      if (oldest === undefined) return false;
      this.checkpoint.dropped += this.forget(oldest);
    }
    return true;
  }

  /** Drops a batch from memory and deletes its file; returns its result count. */
  private forget(seq: number): number {
    const batch = this.batches.get(seq);
    if (!batch) return 0;
    this.batches.delete(seq);
    this.bytes -= batch.bytes;
    this.deleteFiles([seq]);
    return batch.count;
  }

  /** Queues files for deletion; the checkpoint becomes durable before any of them goes. */
  private deleteFiles(seqs: number[]) {
    this.deletions.push(...seqs);
    this.deleting ??= (async () => {
      while (this.deletions.length > 0) {
        const group = this.deletions.splice(0);
        await this.writeCheckpoint();
        await Promise.all(group.map((seq) => rm(join(this.dir, batchFileName(seq)), { force: true })));
      }
      this.deleting = undefined;
    })();
  }

  private async writeCheckpoint() {
    const text = JSON.stringify(this.checkpoint);
    if (text === this.durableCheckpoint) return;
    await replaceFileAtomic(this.dir, CHECKPOINT, text);
    this.durableCheckpoint = text;
  }

  /** The JSON array of a batch's results, read from its file. */
  async readResults(batch: StoredBatch): Promise<Buffer> {
    const bytes = await readFile(join(this.dir, batchFileName(batch.seq)));
    if (bytes.length !== batch.bytes)
      throw new Error(`batch file ${batchFileName(batch.seq)} changed size on disk`);
    return bytes.subarray(batch.resultsOffset, bytes.length - 1);
  }

  /** A batch that cannot be sent (its file is unreadable): dropped and counted as such. */
  discard(seq: number): void {
    this.inFlight.delete(seq);
    this.checkpoint.dropped += this.forget(seq);
  }

  /** The oldest batch nobody is sending right now, marked as in flight. */
  take(): StoredBatch | undefined {
    for (const [seq, batch] of this.batches) {
      if (this.inFlight.has(seq)) continue;
      this.inFlight.add(seq);
      return batch;
    }
    return undefined;
  }

  /** The send failed: the batch goes back to the queue, unchanged (same id). */
  release(seq: number): void {
    this.inFlight.delete(seq);
  }

  /** PUBACK arrived: the batch is done (its file goes after the next checkpoint write). */
  ack(seq: number): void {
    this.inFlight.delete(seq);
    this.forget(seq);
  }

  /** Waits until every appended batch is durable and deletions are done; saves the checkpoint. */
  async flush(): Promise<void> {
    await this.log?.flush();
    while (this.deleting) await this.deleting;
    await this.writeCheckpoint();
  }
}

interface StoredFile {
  batchId: string;
  model: string;
  version: number;
  csvNext?: number;
  results: unknown[];
}
