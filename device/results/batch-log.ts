/**
 * The write side of the outbox: makes result batches durable.
 *
 * Each batch gets the next sequence number and a batch id. Batches are committed in groups:
 * a group's batches go into one segment file (`<seq of its first batch>.json`, one line per
 * batch: the wire message minus sentAt, plus csvNext), written to a temp name, fsynced,
 * renamed into place, and the directory fsynced. A group is whatever queued while the
 * previous commit ran, or for at most GROUP_WAIT_MS (or until GROUP_BYTES): a fast source
 * pays two fsyncs per few hundred KB rather than per batch, and a slow one waits at most
 * that long before its batch may be sent.
 *
 * It keeps no index: the Outbox adopts each batch once it is durable. The device runs its
 * log in its ResultStream (result-writer.ts), the Outbox (and tests) may run one of their own.
 *
 * A storage fault (ENOSPC, EDQUOT, EIO, EROFS; see disk.ts) does not fail the group: its temp
 * file is removed, the group is held in memory (its batches keep their seqs and ids) and is
 * written again on `retry()` or after RETRY_MS; batches appended meanwhile queue behind it.
 * `onFault` hears of the fault and of its end. Memory stays bounded because the device's
 * source pauses (result-writer.ts backpressure, disk.ts).
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { InferenceResult, SummaryCell } from '../../shared/schemas.ts';
import { type StorageFaultCode, storageFault } from '../platform/disk.ts';
import { fsyncDir, renameFile, writeFileDurable } from '../platform/durable.ts';

/**
 * A durable batch as the outbox indexes it. Its results stay on disk (the outbox holds no
 * result in memory, however deep it gets) and are read back when the batch is sent.
 */
export interface StoredBatch {
  seq: number;
  batchId: string;
  model: string;
  version: number;
  /** Summary mode: the batch carries per-minute cells (SummaryBatchSchema) instead of results. */
  mode?: 'summary';
  /** Inferences in the batch: its results, or the sum of its cells' counts. */
  count: number;
  /** The CSV source's next position once this batch is durable (absent for other sources). */
  csvNext?: number;
  /** Its segment file (named after the seq of the segment's first batch), and how many batches that holds. */
  file: number;
  batchesInFile: number;
  /** Where its line starts in the file, the line's length, and where in the line its results (or cells) array starts. */
  offset: number;
  bytes: number;
  resultsOffset: number;
}

/** The results as objects, or already as the bytes of their JSON array; or a summary's cells. */
export type BatchInput = {
  /** Given by the batcher when the open batch was journalled under it (open-batch-journal.ts). */
  batchId?: string;
  model: string;
  version: number;
  csvNext?: number;
} & (
  | { results: InferenceResult[] }
  | { resultsJson: Uint8Array; count: number }
  | { summary: { cells: SummaryCell[]; count: number } }
);

/** A segment file's name; the outbox reads these back on open. */
export const SEGMENT_FILE = /^(\d{12})\.json$/;

export function segmentFileName(firstSeq: number): string {
  return `${String(firstSeq).padStart(12, '0')}.json`;
}

/** How long a group waits for more batches, and the size that commits it at once. */
const GROUP_WAIT_MS = 10;
const GROUP_BYTES = 512 * 1024;
const LINE_END = Buffer.from('}\n');
/** A held group is tried again this often when nobody calls retry(). */
const RETRY_MS = 2_000;

interface Pending {
  input: BatchInput;
  resolve: (batch: StoredBatch) => void;
  reject: (error: Error) => void;
}

/** A group ready to write: its segment file's pieces and the batches it holds. */
interface Prepared {
  file: number;
  pieces: Uint8Array[];
  bytes: number;
  batches: StoredBatch[];
  group: Pending[];
}

/** What a storage fault left held in memory (undefined fault: none). */
export interface HeldState {
  fault: StorageFaultCode | undefined;
  heldBytes: number;
  heldBatches: number;
}

export class BatchLog {
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private committing: Promise<void> | undefined;
  /** Ends a group's wait early (it is full, or someone flushes). */
  private endWait: (() => void) | undefined;
  /** The group a storage fault keeps in memory, and what wakes its next attempt. */
  private held: Prepared | undefined;
  private wakeRetry: (() => void) | undefined;
  /** Flushes under way: a group commits at once rather than wait for more batches. */
  private flushing = 0;

  constructor(
    readonly dir: string,
    /** The sequence number of the next batch. */
    public nextSeq: number,
    private readonly onFault: (state: HeldState) => void = () => undefined,
  ) {}

  /** Whether a group waits in memory for the disk. */
  get holding(): boolean {
    return this.held !== undefined;
  }

  /**
   * Gives up the held group and everything queued behind it (the stream closes while the
   * disk is full): their appends fail. A CSV source reads those readings again after a
   * restart, since its resume position comes from durable batches only.
   */
  abandon(reason: string): void {
    const held = this.held;
    const queued = this.queue.splice(0);
    this.queuedBytes = 0;
    if (!held) return;
    this.held = undefined;
    const error = new Error(reason);
    for (const pending of [...held.group, ...queued]) pending.reject(error);
    this.wakeRetry?.();
  }

  /** Tries the held group again now (the disk has room again). */
  retry(): void {
    this.wakeRetry?.();
  }

  /** Resolves with the batch once its segment file is durable. */
  append(input: BatchInput): Promise<StoredBatch> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.queuedBytes += queuedSize(input);
      if (this.queuedBytes >= GROUP_BYTES) this.endWait?.();
      this.committing ??= this.commitQueued();
    });
  }

  /**
   * Waits until every appended batch is durable (or failed); commits the open group now.
   * With `orHeld`, also returns once a storage fault holds a group (stop must not wait for
   * the disk).
   */
  async flush(orHeld = false): Promise<void> {
    // While anyone flushes, no group waits for more batches: a batch appended while the
    // group before it commits would otherwise sit out a whole GROUP_WAIT_MS of the flush.
    this.flushing++;
    try {
      await this.flushAll(orHeld);
    } finally {
      this.flushing--;
    }
  }

  private async flushAll(orHeld: boolean) {
    while (this.committing) {
      if (orHeld && this.held) return;
      this.endWait?.();
      if (!orHeld) {
        await this.committing;
        continue;
      }
      const committing = this.committing;
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => this.held && resolve(), 50);
        void committing.finally(() => {
          clearInterval(poll);
          resolve();
        });
      });
    }
  }

  private async commitQueued() {
    while (this.queue.length > 0 || this.held) {
      if (this.held) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RETRY_MS);
          this.wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeRetry = undefined;
        await this.write(this.held);
        continue;
      }
      if (this.queuedBytes < GROUP_BYTES && this.flushing === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, GROUP_WAIT_MS);
          this.endWait = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.endWait = undefined;
      }
      this.queuedBytes = 0;
      await this.write(this.prepareGroup(this.queue.splice(0)));
    }
    this.committing = undefined;
  }

  private prepareGroup(group: Pending[]): Prepared {
    const file = this.nextSeq;
    const pieces: Uint8Array[] = [];
    let offset = 0;
    const batches = group.map(({ input }) => {
      const { batch, head, results } = this.prepare(input, file, group.length, offset);
      pieces.push(head, results, LINE_END);
      offset += batch.bytes + 1;
      return batch;
    });
    return { file, pieces, bytes: offset, batches, group };
  }

  /**
   * One segment file for the group: written, fsynced, renamed into place, directory fsynced.
   * A storage fault holds the group (see the top); any other error fails its batches.
   */
  private async write(prepared: Prepared) {
    const { file, pieces, batches, group } = prepared;
    const temp = join(this.dir, `${segmentFileName(file)}.tmp`);
    try {
      await writeFileDurable(temp, pieces);
      await renameFile(temp, join(this.dir, segmentFileName(file)));
      await fsyncDir(this.dir);
    } catch (error) {
      // No half-written file stays behind, whatever happened.
      await rm(temp, { force: true }).catch(() => undefined);
      const fault = storageFault(error);
      if (fault) {
        const first = !this.held;
        this.held = prepared;
        if (first) this.onFault({ fault, heldBytes: prepared.bytes, heldBatches: batches.length });
        return;
      }
      if (this.held === prepared) this.endHold();
      for (const pending of group) pending.reject(error as Error);
      return;
    }
    if (this.held === prepared) this.endHold();
    for (const [i, pending] of group.entries()) pending.resolve(batches[i] as StoredBatch);
  }

  private endHold() {
    this.held = undefined;
    this.onFault({ fault: undefined, heldBytes: 0, heldBatches: 0 });
  }

  private prepare(
    input: BatchInput,
    file: number,
    batchesInFile: number,
    offset: number,
  ): { batch: StoredBatch; head: Buffer; results: Uint8Array } {
    const seq = this.nextSeq++;
    const batchId = input.batchId ?? randomUUID();
    const { count, items, key } = lineBody(input);
    // The head of the line; the results (or cells) array follows as it came, then `}`.
    const head = Buffer.from(
      `{"batchId":"${batchId}","model":${JSON.stringify(input.model)},"version":${input.version}${
        input.csvNext !== undefined ? `,"csvNext":${input.csvNext}` : ''
      }${'summary' in input ? ',"mode":"summary"' : ''},"${key}":`,
    );
    const batch: StoredBatch = {
      seq,
      batchId,
      model: input.model,
      version: input.version,
      ...('summary' in input ? { mode: 'summary' as const } : {}),
      count,
      ...(input.csvNext !== undefined ? { csvNext: input.csvNext } : {}),
      file,
      batchesInFile,
      offset,
      bytes: head.length + items.length + 1,
      resultsOffset: head.length,
    };
    return { batch, head, results: items };
  }
}

/** What a batch's line carries after its head: the count, the array's bytes and its key. */
function lineBody(input: BatchInput): { count: number; items: Uint8Array; key: 'results' | 'cells' } {
  if ('summary' in input)
    return {
      count: input.summary.count,
      items: Buffer.from(JSON.stringify(input.summary.cells)),
      key: 'cells',
    };
  if ('results' in input)
    return { count: input.results.length, items: Buffer.from(JSON.stringify(input.results)), key: 'results' };
  return { count: input.count, items: input.resultsJson, key: 'results' };
}

/** A rough size for the group-commit threshold (the JSON is made later, at commit). */
function queuedSize(input: BatchInput): number {
  if ('summary' in input) return 600 * input.summary.cells.length;
  if ('results' in input) return 100 * input.results.length;
  return input.resultsJson.length;
}
