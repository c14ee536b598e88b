/** Messages between the device's main thread and its result writer thread (result-writer.ts). */
import type { StoredBatch } from './batch-log.ts';
import type { BatcherOptions } from './batcher.ts';
import type { ReplayClassified, ResultChunk } from './result-encoding.ts';

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
    }
  /** The CSV source's truth column (one entry per file row). */
  | { type: 'truths'; stream: number; truths: readonly string[] }
  | { type: 'replay'; stream: number; chunk: ReplayChunk }
  | { type: 'encoded'; stream: number; version: number; chunk: ResultChunk; csvNext?: number }
  /** `orHeld`: answer once a storage fault holds batches in memory rather than wait for the disk. */
  | { type: 'flush'; stream: number; token: number; orHeld?: boolean }
  /** The disk has room again: write the held batches now. */
  | { type: 'retry'; stream: number }
  | { type: 'close'; stream: number; token: number };

export type FromWriter =
  /** A batch is durable in the stream's outbox directory. */
  | { type: 'stored'; stream: number; batch: StoredBatch }
  /** The answer to a flush or close: every batch before it was stored (or `error`). */
  | { type: 'done'; stream: number; token: number; error?: string }
  /** A storage fault holds batches in memory (fault set), or the hold ended (no fault). */
  | { type: 'storage'; stream: number; fault?: string; heldBytes: number }
  /** Batches can no longer be stored; everything after this fails. */
  | { type: 'failed'; stream: number; error: string };
