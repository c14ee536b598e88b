/**
 * The on-disk outbox: store and forward for result batches.
 *
 * One file per batch (`<seq>.json`, written to a temp name, fsynced, renamed, directory
 * fsynced) holds the batch with its id, so a replay after a reconnect or a restart sends the
 * very same batch id and the aggregator counts it once. A file is removed only after its
 * PUBACK. fsync policy: every batch file and the checkpoint are fsynced before the batch
 * may be published. That costs three fsyncs per batch, and batches are large (up to ~1,000
 * results or 120 KB) and flushed at most a few times per second, so the disk sees a handful
 * of syncs per second while a power cut can lose only readings not yet in a batch -- and
 * those are re-read, because the checkpoint never moves past a persisted batch.
 *
 * The checkpoint (`checkpoint.json`) records the CSV source's next position and the dropped
 * counter. On open, the resume position is max(checkpoint, every stored batch's csvNext),
 * so a crash between writing a batch and writing the checkpoint loses nothing either.
 *
 * Bounded by batch count and bytes. Overflow policy: `drop-oldest` (default: the freshest
 * data matters most on a gateway that was offline for days) deletes the oldest unsent
 * batch; `reject` refuses the new one. Both count the dropped results.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { InferenceResult } from '../shared/schemas.ts';
import { readJson, replaceFileAtomic, writeJsonAtomic } from './durable.ts';

export type OverflowPolicy = 'drop-oldest' | 'reject';

export interface StoredBatch {
  seq: number;
  batchId: string;
  model: string;
  version: number;
  results: InferenceResult[];
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

export class Outbox {
  private readonly batches = new Map<number, StoredBatch>();
  private readonly inFlight = new Set<number>();
  private nextSeq = 0;
  private bytes = 0;
  private checkpoint: Checkpoint = { csvNext: 0, dropped: 0 };
  private readonly maxBatches: number;
  private readonly maxBytes: number;
  readonly overflow: OverflowPolicy;
  /** Serialises file writes so the checkpoint never runs ahead of a batch file. */
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    options: OutboxOptions,
  ) {
    this.maxBatches = options.maxBatches ?? 10_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.overflow = options.overflow ?? 'drop-oldest';
  }

  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    const outbox = new Outbox(dir, options);
    await mkdir(dir, { recursive: true });
    outbox.checkpoint = { csvNext: 0, dropped: 0, ...(await readJson<Checkpoint>(join(dir, CHECKPOINT))) };
    for (const name of (await readdir(dir)).sort()) {
      if (name.endsWith('.tmp')) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      const match = BATCH_FILE.exec(name);
      if (!match) continue;
      const seq = Number(match[1]);
      try {
        const text = await readFile(join(dir, name), 'utf8');
        const batch = { ...(JSON.parse(text) as StoredBatch), seq, bytes: text.length };
        outbox.batches.set(seq, batch);
        outbox.bytes += batch.bytes;
        if (batch.csvNext !== undefined && batch.csvNext > outbox.checkpoint.csvNext)
          outbox.checkpoint.csvNext = batch.csvNext;
      } catch {
        // A file that is not valid JSON was never renamed into place complete; skip it.
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
    for (const batch of this.batches.values()) n += batch.results.length;
    return n;
  }

  /**
   * Persists a batch (and the CSV checkpoint it carries) before anyone may publish it.
   * Returns false when the `reject` policy refused it.
   */
  append(input: {
    model: string;
    version: number;
    results: InferenceResult[];
    csvNext?: number;
  }): Promise<boolean> {
    const run = this.writing.then(() => this.appendNow(input));
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async appendNow(input: {
    model: string;
    version: number;
    results: InferenceResult[];
    csvNext?: number;
  }): Promise<boolean> {
    const seq = this.nextSeq++;
    const body: Omit<StoredBatch, 'seq' | 'bytes'> = {
      batchId: randomUUID(),
      model: input.model,
      version: input.version,
      results: input.results,
      ...(input.csvNext !== undefined ? { csvNext: input.csvNext } : {}),
    };
    const text = JSON.stringify(body);
    let accepted = true;
    while (this.batches.size >= this.maxBatches || this.bytes + text.length > this.maxBytes) {
      if (this.overflow === 'reject' || !(await this.dropOldest())) {
        accepted = false;
        break;
      }
    }
    if (accepted) {
      await replaceFileAtomic(this.dir, fileName(seq), text);
      this.batches.set(seq, { ...body, seq, bytes: text.length });
      this.bytes += text.length;
    } else {
      this.checkpoint.dropped += input.results.length;
    }
    if (input.csvNext !== undefined && input.csvNext > this.checkpoint.csvNext)
      this.checkpoint.csvNext = input.csvNext;
    await writeJsonAtomic(this.dir, CHECKPOINT, this.checkpoint);
    return accepted;
  }

  private async dropOldest(): Promise<boolean> {
    for (const [seq, batch] of this.batches) {
      if (this.inFlight.has(seq)) continue;
      await this.remove(seq);
      this.checkpoint.dropped += batch.results.length;
      return true;
    }
    return false;
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

  /** PUBACK arrived: the batch is done. */
  async ack(seq: number): Promise<void> {
    this.inFlight.delete(seq);
    await this.remove(seq);
  }

  private async remove(seq: number) {
    const batch = this.batches.get(seq);
    if (!batch) return;
    this.batches.delete(seq);
    this.bytes -= batch.bytes;
    await rm(join(this.dir, fileName(seq)), { force: true });
  }

  /** Waits for every queued write (used on shutdown). */
  async flush(): Promise<void> {
    await this.writing;
  }
}

function fileName(seq: number) {
  return `${String(seq).padStart(12, '0')}.json`;
}
