/**
 * The on-disk outbox: store and forward for result batches.
 *
 * One file per batch (`<seq>.json`) holds the batch with its id, so a replay after a
 * reconnect or a restart sends the very same batch id and the aggregator counts it once.
 *
 * fsync policy (group commit): a batch may be published only once it is durable. Every
 * batch file is written to a temp name and fsynced, renamed into place, and the directory
 * is fsynced -- once for all the batches that queued up meanwhile, so a fast source pays
 * one directory sync per group, not per batch. A power cut can then lose only readings not
 * yet in a batch, and those are read again because the resume position never passes a
 * durable batch.
 *
 * The checkpoint (`checkpoint.json`: the CSV source's next position and the dropped
 * counter) is NOT written per batch: on open, the resume position is max(checkpoint, every
 * stored batch's csvNext). It only has to be durable before a batch file is deleted (after
 * its PUBACK, or when dropped), so it is written then -- once per group of deletions.
 *
 * Bounded by batch count (10,000) and bytes (256 MB: about 2.3 million results, some eight
 * minutes of a 5,000/s source without a connection). Overflow policy: `drop-oldest`
 * (default: the freshest data matters most on a gateway that was offline for long) deletes
 * the oldest unsent batch; `reject` refuses the new one. Both count the dropped results.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { InferenceResult } from '../shared/schemas.ts';
import { fsyncDir, readJson, renameFile, replaceFileAtomic, writeFileDurable } from './durable.ts';

export type OverflowPolicy = 'drop-oldest' | 'reject';

export interface StoredBatch {
  seq: number;
  batchId: string;
  model: string;
  version: number;
  /** How many results, and their JSON array as UTF-8 bytes (serialised once, sent as is). */
  count: number;
  resultsJson: Buffer;
  /** The CSV source's next position once this batch is durable (absent for other sources). */
  csvNext?: number;
  bytes: number;
}

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
const BATCH_FILE = /^(\d{12})\.json$/;
const CLOSE_BRACE = Buffer.from('}');

export class Outbox {
  private readonly batches = new Map<number, StoredBatch>();
  private readonly inFlight = new Set<number>();
  private nextSeq = 0;
  private bytes = 0;
  private checkpoint: Checkpoint = { csvNext: 0, dropped: 0 };
  private durableCheckpoint = '';
  private readonly maxBatches: number;
  private readonly maxBytes: number;
  readonly overflow: OverflowPolicy;
  private queue: Pending[] = [];
  private deletions: number[] = [];
  private pumping: Promise<void> | undefined;

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
        const { results, ...rest } = JSON.parse(bytes.toString('utf8')) as StoredFile;
        const batch: StoredBatch = {
          ...rest,
          seq,
          count: results.length,
          resultsJson: Buffer.from(JSON.stringify(results)),
          bytes: bytes.length,
        };
        outbox.batches.set(seq, batch);
        outbox.bytes += batch.bytes;
        if (batch.csvNext !== undefined && batch.csvNext > outbox.checkpoint.csvNext)
          outbox.checkpoint.csvNext = batch.csvNext;
      } catch {
        // Only complete files are renamed into place; anything unreadable is debris.
        await rm(join(dir, name), { force: true });
      }
      outbox.nextSeq = Math.max(outbox.nextSeq, seq + 1);
    }
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
  append(input: BatchInput): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.pump();
    });
  }

  private pump() {
    this.pumping ??= this.drain().finally(() => {
      this.pumping = undefined;
      if (this.queue.length > 0 || this.deletions.length > 0) this.pump();
    });
  }

  private async drain() {
    while (this.queue.length > 0 || this.deletions.length > 0) {
      if (this.queue.length > 0) await this.commitGroup(this.queue.splice(0));
      if (this.deletions.length > 0) await this.deleteAcked(this.deletions.splice(0));
    }
  }

  /** Group commit: every file fsynced and renamed, then one directory fsync. */
  private async commitGroup(group: Pending[]) {
    const accepted: { pending: Pending; batch: StoredBatch; head: Buffer }[] = [];
    for (const pending of group) {
      const { input } = pending;
      const seq = this.nextSeq++;
      const batchId = randomUUID();
      const count = 'results' in input ? input.results.length : input.count;
      const resultsJson = 'results' in input ? Buffer.from(JSON.stringify(input.results)) : input.resultsJson;
      // The file is the wire message minus sentAt, plus csvNext: this head, the results
      // array as they came (serialised once), and a closing brace.
      const head = Buffer.from(
        `{"batchId":"${batchId}","model":${JSON.stringify(input.model)},"version":${input.version}${
          input.csvNext !== undefined ? `,"csvNext":${input.csvNext}` : ''
        },"results":`,
      );
      const batch: StoredBatch = {
        seq,
        batchId,
        model: input.model,
        version: input.version,
        count,
        resultsJson,
        ...(input.csvNext !== undefined ? { csvNext: input.csvNext } : {}),
        bytes: head.length + resultsJson.length + 1,
      };
      if (this.makeRoom(batch.bytes, accepted.length)) {
        accepted.push({ pending, batch, head });
        this.bytes += batch.bytes; // counted now, so the rest of the group sees the room it takes
      } else {
        this.checkpoint.dropped += count;
        pending.resolve(false);
      }
      if (input.csvNext !== undefined && input.csvNext > this.checkpoint.csvNext)
        this.checkpoint.csvNext = input.csvNext;
    }
    try {
      await Promise.all(
        accepted.map(async ({ batch, head }) => {
          const temp = join(this.dir, `${fileName(batch.seq)}.tmp`);
          await writeFileDurable(temp, [head, batch.resultsJson, CLOSE_BRACE]);
          await renameFile(temp, join(this.dir, fileName(batch.seq)));
        }),
      );
      if (accepted.length > 0) await fsyncDir(this.dir);
    } catch (error) {
      for (const { pending, batch } of accepted) {
        this.bytes -= batch.bytes;
        pending.reject(error as Error);
      }
      return;
    }
    for (const { pending, batch } of accepted) {
      this.batches.set(batch.seq, batch);
      pending.resolve(true);
    }
  }

  /** Applies the overflow policy; false when the new batch must be refused. */
  private makeRoom(size: number, committing: number): boolean {
    while (this.batches.size + committing >= this.maxBatches || this.bytes + size > this.maxBytes) {
      if (this.overflow === 'reject') return false;
      const oldest = [...this.batches.keys()].find((seq) => !this.inFlight.has(seq));
      if (oldest === undefined) return false;
      this.checkpoint.dropped += this.forget(oldest);
    }
    return true;
  }

  /** Drops a batch from memory and queues its file for deletion; returns its result count. */
  private forget(seq: number): number {
    const batch = this.batches.get(seq);
    if (!batch) return 0;
    this.batches.delete(seq);
    this.bytes -= batch.bytes;
    this.deletions.push(seq);
    return batch.count;
  }

  /** The checkpoint becomes durable before any file it covers is deleted. */
  private async deleteAcked(seqs: number[]) {
    await this.writeCheckpoint();
    await Promise.all(seqs.map((seq) => rm(join(this.dir, fileName(seq)), { force: true })));
  }

  private async writeCheckpoint() {
    const text = JSON.stringify(this.checkpoint);
    if (text === this.durableCheckpoint) return;
    await replaceFileAtomic(this.dir, CHECKPOINT, text);
    this.durableCheckpoint = text;
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

  /** PUBACK arrived: the batch is done (its file goes with the next checkpoint write). */
  ack(seq: number): void {
    this.inFlight.delete(seq);
    this.forget(seq);
    this.pump();
  }

  /** Waits until every queued batch is durable and deletions are done; saves the checkpoint. */
  async flush(): Promise<void> {
    while (this.pumping) await this.pumping;
    await this.writeCheckpoint();
  }
}

/** The results as objects, or already as the bytes of their JSON array. */
type BatchInput = {
  model: string;
  version: number;
  csvNext?: number;
} & ({ results: InferenceResult[] } | { resultsJson: Buffer; count: number });

interface StoredFile {
  batchId: string;
  model: string;
  version: number;
  csvNext?: number;
  results: InferenceResult[];
}

interface Pending {
  input: BatchInput;
  resolve: (accepted: boolean) => void;
  reject: (error: Error) => void;
}

function fileName(seq: number) {
  return `${String(seq).padStart(12, '0')}.json`;
}
