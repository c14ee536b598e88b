/**
 * The open batch's journal: a result is durable within `durableWithinMs` (default 20) of being
 * handed over, not only once its batch closes (up to `batchMaxAgeMs`, 500, later). Batches stay
 * as large as IoT Core's limits and per-5 KB billing favour; durability no longer waits for them.
 *
 * Each open detail batch gets a file `open/<batchId>.jsonl` in the outbox directory: one line
 * per write, holding the results handed over since the line before, appended and fdatasynced
 * (the directory is fsynced after the file's first line). Once the batch's own segment line is
 * durable the file is removed. On open, the outbox turns every journal whose batch id no
 * segment holds into a batch under that id (it was never sent: a batch is sent from its segment
 * only) and removes the others (`readJournal`). A torn last line was never fdatasynced, so it
 * never counted as durable and is dropped; any other unreadable line sends the file to
 * quarantine.
 *
 * A journal write that fails (a full disk) only means those results wait for their batch to
 * be durable, as they did before: the batch log keeps its own fault handling.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../shared/errors.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { fsyncDir, unwritten } from '../platform/durable.ts';

/** The journal's directory, under the outbox's. */
export const JOURNAL_DIR = 'open';
/** How long a result waits to be journalled, by default. */
export const DEFAULT_DURABLE_WITHIN_MS = 20;

const JOURNAL_FILE = /^([0-9a-f-]{36})\.jsonl$/;
const RESULTS_END = Buffer.from(']}\n');

/** A journal file's name for the batch `batchId`. */
export function journalFileName(batchId: string): string {
  return `${batchId}.jsonl`;
}

/** The batch id a journal file is named after, or undefined for any other name. */
export function journalBatchId(name: string): string | undefined {
  return JOURNAL_FILE.exec(name)?.[1];
}

const call = <T>(run: (done: (error: Error | null, value?: T) => void) => void) =>
  new Promise<T>((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));

/**
 * One open batch's journal file. Writes go out in order, one at a time; `written` hears of
 * each once it is durable. After a failure the file takes no more writes (and is kept: what
 * it holds is durable and recovered on the next open, unless the batch's segment holds it).
 */
export class JournalFile {
  private chain: Promise<void> = Promise.resolve();
  private fd: number | undefined;
  private failed = false;
  private readonly path: string;

  constructor(
    private readonly dir: string,
    batchId: string,
    private readonly head: { model: string; version: number },
    private readonly onFault: (message: string) => void,
  ) {
    this.path = join(dir, journalFileName(batchId));
  }

  /**
   * Appends `count` results (`results`: their JSON objects, comma-separated) and fdatasyncs;
   * `written` runs once they are durable.
   */
  write(results: Uint8Array, count: number, csvNext: number | undefined, written: () => void): void {
    const head = Buffer.from(
      `{"model":${JSON.stringify(this.head.model)},"version":${this.head.version},"n":${count}${
        csvNext !== undefined ? `,"csvNext":${csvNext}` : ''
      },"results":[`,
    );
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        const first = this.fd === undefined;
        if (first) {
          await call<void>((done) => fs.mkdir(this.dir, { recursive: true }, (error) => done(error)));
          this.fd = await call<number>((done) => fs.open(this.path, 'wx', done));
        }
        const fd = this.fd as number;
        await writeAll(fd, [head, results, RESULTS_END]);
        await call<void>((done) => fs.fdatasync(fd, done));
        if (first) await fsyncDir(this.dir);
        written();
      } catch (error) {
        this.failed = true;
        this.onFault(`results could not be journalled in ${this.path}: ${errorMessage(error)}`);
      }
    });
  }

  /** The batch is durable in its segment: the file goes once its writes are done. */
  remove(): Promise<void> {
    this.chain = this.chain.then(async () => {
      await this.close();
      await call<void>((done) => fs.rm(this.path, { force: true }, done)).catch(() => undefined);
    });
    return this.chain;
  }

  /** Closes the file and keeps it (its batch was not stored: the next open recovers it). */
  keep(): void {
    this.chain = this.chain.then(() => this.close());
  }

  private async close() {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await call<void>((done) => fs.close(fd, done)).catch(() => undefined);
  }
}

async function writeAll(fd: number, pieces: Uint8Array[]): Promise<void> {
  for (let rest = pieces; rest.length > 0; ) {
    const written = await call<number>((done) => fs.writev(fd, rest, done));
    rest = unwritten(rest, written);
  }
}

/** What a journal file holds: its batch's results so far (the lines that were complete). */
export interface JournalContents {
  model: string;
  version: number;
  results: InferenceResult[];
  csvNext?: number;
  /** Lines that could not be read, the torn last one aside. */
  corrupt: number;
}

/** Reads a journal file's bytes; undefined when it holds no complete line. */
export function readJournal(bytes: Buffer): JournalContents | undefined {
  const text = bytes.toString('utf8');
  const lines = text.split('\n');
  // The part after the last newline was never fdatasynced whole: it never counted as durable.
  lines.pop();
  let contents: JournalContents | undefined;
  let corrupt = 0;
  for (const line of lines) {
    try {
      const entry = JSON.parse(line) as {
        model: string;
        version: number;
        n: number;
        csvNext?: number;
        results: InferenceResult[];
      };
      if (
        typeof entry.model !== 'string' ||
        !Array.isArray(entry.results) ||
        entry.results.length !== entry.n
      )
        throw new Error('not a journal line');
      contents ??= { model: entry.model, version: entry.version, results: [], corrupt: 0 };
      contents.results.push(...entry.results);
      if (entry.csvNext !== undefined) contents.csvNext = entry.csvNext;
    } catch {
      corrupt++;
    }
  }
  if (contents) contents.corrupt = corrupt;
  return contents ?? (corrupt > 0 ? { model: '', version: 0, results: [], corrupt } : undefined);
}
