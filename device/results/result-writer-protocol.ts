/** Messages between a device's result stream and the process's result writer (result-writer.ts). */

import type { InferenceResult } from '../../shared/schemas.ts';
import type { StoredBatch } from './batch-log.ts';
import type { BatcherOptions } from './batcher.ts';
import type { ReplayClassified, ResultChunk } from './result-encoding.ts';
import type { SummaryBatcherOptions } from './summary-batcher.ts';

/** A CSV replay chunk as the model classified it: readings first .. first + best.length - 1. */
export interface ReplayChunk extends ReplayClassified {
  version: number;
  first: number;
  ts: number;
  /** The CSV position after the chunk. */
  csvNext: number;
}

export type ToWriter =
  | {
      type: 'open';
      stream: number;
      dir: string;
      nextSeq: number;
      thing: string;
      model: string;
      batch: BatcherOptions;
      /** Summary mode: cells instead of results (absent: detail batches). */
      summary?: SummaryBatcherOptions;
    }
  /** The CSV source's truth column (one entry per file row). */
  | { type: 'truths'; stream: number; truths: readonly string[] }
  /** `lowConfidence`: the threshold of the chunk's model version (summary mode counts with it). */
  | { type: 'replay'; stream: number; chunk: ReplayChunk; lowConfidence: number }
  /** Detail mode: results made on the main thread, already JSON. */
  | { type: 'encoded'; stream: number; version: number; chunk: ResultChunk; csvNext?: number }
  /** Summary mode: results made on the main thread, as objects (they are folded, not sent). */
  | {
      type: 'results';
      stream: number;
      version: number;
      lowConfidence: number;
      results: InferenceResult[];
      csvNext?: number;
    }
  /** `orHeld`: answer once a storage fault holds batches in memory rather than wait for the disk. */
  | { type: 'flush'; stream: number; token: number; orHeld?: boolean }
  /** The disk has room again: write the held batches now. */
  | { type: 'retry'; stream: number }
  | { type: 'close'; stream: number; token: number };

export type FromWriter =
  /** A batch is durable in the stream's outbox directory. */
  | { type: 'stored'; stream: number; batch: StoredBatch }
  /** Results [from, to) of those the stream handed over are durable in the open batch's journal. */
  | { type: 'journalled'; stream: number; from: number; to: number }
  /** A journal write failed: those results wait for their batch (open-batch-journal.ts). */
  | { type: 'journal-fault'; stream: number; message: string }
  /** Summary mode: `count` more results are folded into the open cells. */
  | { type: 'folded'; stream: number; count: number }
  /** The answer to a flush or close: every batch before it was stored (or `error`). */
  | { type: 'done'; stream: number; token: number; error?: string }
  /** A storage fault holds batches in memory (fault set), or the hold ended (no fault). */
  | { type: 'storage'; stream: number; fault?: string; heldBytes: number }
  /** Batches can no longer be stored; everything after this fails. */
  | { type: 'failed'; stream: number; error: string };
