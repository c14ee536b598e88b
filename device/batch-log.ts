/**
 * The write side of the outbox: makes result batches durable, one file per batch.
 *
 * Each batch gets the next sequence number and a batch id, and its file (`<seq>.json`: the
 * wire message minus sentAt, plus csvNext) is written to a temp name, fsynced and renamed
 * into place; then the directory is fsynced once for every batch that queued up meanwhile
 * (group commit), so a fast source pays one directory sync per group, not per batch.
 *
 * It keeps no index: the Outbox adopts each batch once it is durable. The device runs its
 * log on the result writer thread, the Outbox (and tests) may run one in-thread.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { InferenceResult } from '../shared/schemas.ts';
import { fsyncDir, renameFile, writeFileDurable } from './durable.ts';

/**
 * A durable batch as the outbox indexes it. Its results stay on disk (the outbox holds no
 * result in memory, however deep it gets) and are read back when the batch is sent.
 */
export interface StoredBatch {
  seq: number;
  batchId: string;
  model: string;
  version: number;
  count: number;
  /** The CSV source's next position once this batch is durable (absent for other sources). */
  csvNext?: number;
  /** Size of the batch file, and where its results array starts (it ends before the last byte). */
  bytes: number;
  resultsOffset: number;
}

/** The results as objects, or already as the bytes of their JSON array. */
export type BatchInput = {
  model: string;
  version: number;
  csvNext?: number;
} & ({ results: InferenceResult[] } | { resultsJson: Uint8Array; count: number });

/** The file a batch is stored in; the outbox reads these names back on open. */
export const BATCH_FILE = /^(\d{12})\.json$/;

export function batchFileName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.json`;
}

const CLOSE_BRACE = Buffer.from('}');

interface Pending {
  input: BatchInput;
  resolve: (batch: StoredBatch) => void;
  reject: (error: Error) => void;
}

export class BatchLog {
  private queue: Pending[] = [];
  private committing: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    /** The sequence number of the next batch. */
    public nextSeq: number,
  ) {}

  /** Resolves with the batch once its file is durable. */
  append(input: BatchInput): Promise<StoredBatch> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.committing ??= this.commitQueued();
    });
  }

  /** Waits until every appended batch is durable (or failed). */
  async flush(): Promise<void> {
    while (this.committing) await this.committing;
  }

  private async commitQueued() {
    while (this.queue.length > 0) await this.commitGroup(this.queue.splice(0));
    this.committing = undefined;
  }

  /** Group commit: every file fsynced and renamed, then one directory fsync. */
  private async commitGroup(group: Pending[]) {
    const batches = group.map(({ input }) => this.prepare(input));
    try {
      await Promise.all(
        batches.map(async ({ batch, head, results }) => {
          const temp = join(this.dir, `${batchFileName(batch.seq)}.tmp`);
          await writeFileDurable(temp, [head, results, CLOSE_BRACE]);
          await renameFile(temp, join(this.dir, batchFileName(batch.seq)));
        }),
      );
      await fsyncDir(this.dir);
    } catch (error) {
      for (const pending of group) pending.reject(error as Error);
      return;
    }
    for (const [i, pending] of group.entries()) pending.resolve((batches[i] as { batch: StoredBatch }).batch);
  }

  private prepare(input: BatchInput): { batch: StoredBatch; head: Buffer; results: Uint8Array } {
    const seq = this.nextSeq++;
    const batchId = randomUUID();
    const count = 'results' in input ? input.results.length : input.count;
    const results = 'results' in input ? Buffer.from(JSON.stringify(input.results)) : input.resultsJson;
    // The head of the file; the results array follows as it came (serialised once), then `}`.
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
      ...(input.csvNext !== undefined ? { csvNext: input.csvNext } : {}),
      bytes: head.length + results.length + 1,
      resultsOffset: head.length,
    };
    return { batch, head, results };
  }
}
