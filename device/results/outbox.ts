/**
 * The on-disk outbox: store and forward for result batches.
 *
 * Segment files (`<seq>.json`, one line per batch, see batch-log.ts) hold each batch with
 * its id, so a replay after a reconnect or a restart sends the very same batch id and the
 * aggregator counts it once. In memory the outbox keeps only an index (seq, id, file, offset,
 * count): the publisher reads a batch's results back from its file when it sends it.
 *
 * fsync policy: a batch may be published only once it is durable. The BatchLog writes
 * the files (group commit, see batch-log.ts) and the outbox adopts each batch once it is
 * durable: through its own log (`append`) or from the device's ResultStream (`adopt`).
 * A power cut can then lose only readings not yet in a batch, and those are read again
 * because the resume position never passes a durable batch.
 *
 * The checkpoint (`checkpoint.json`: the CSV source's next position and the dropped
 * counter) is NOT written per batch: on open, the resume position is max(checkpoint, every
 * stored batch's csvNext). It only has to be durable before a segment file is deleted (once
 * every batch in it was acknowledged, dropped or refused), so it is written then.
 *
 * Bounded by batch count (10,000) and bytes (256 MB: about 2.3 million results, some eight
 * minutes of a 5,000/s source without a connection). Overflow policy: `drop-oldest`
 * (default: the freshest data matters most on a gateway that was offline for long) drops
 * the oldest unsent batch; `reject` refuses the new one. Both count the dropped results. The
 * policy applies when a batch is adopted, after it was written; its file goes with the last
 * batch in it. It also applies once the disk's free space is below its reserve (disk.ts): a
 * source that can pause (CSV replay, stdin) pauses before that, so only one that cannot
 * (POST /infer) or another writer on the same disk ever makes the outbox drop.
 *
 * Nothing stored is removed unread. A segment that cannot be read (any error but ENOENT) is
 * moved to `quarantine/`, which the outbox ignores; one with corrupt lines is copied there
 * and its readable batches are still sent. A batch whose file fails when it is sent is set
 * aside the same way. The status counts the quarantined files; an operator inspects them.
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { summaryCount } from '../../shared/aggregation/summary-cells.ts';
import { errorMessage } from '../../shared/errors.ts';
import { isStorageFault } from '../platform/disk.ts';
import { readJson, replaceFileAtomic } from '../platform/durable.ts';
import { type BatchInput, BatchLog, SEGMENT_FILE, type StoredBatch, segmentFileName } from './batch-log.ts';
import { JOURNAL_DIR, journalBatchId, readJournal } from './open-batch-journal.ts';

export type { StoredBatch } from './batch-log.ts';

export type OverflowPolicy = 'drop-oldest' | 'reject';

export interface OutboxOptions {
  maxBatches?: number;
  maxBytes?: number;
  overflow?: OverflowPolicy;
  /**
   * Bytes the disk's free space is below its reserve (disk.ts; 0 while the reserve is
   * intact): the overflow policy applies until the outbox gave up that much.
   */
  diskShortfall?: () => number;
  /** Hears of a checkpoint or deletion that failed (kept and tried again). */
  onError?: (message: string) => void;
}

interface Checkpoint {
  csvNext: number;
  dropped: number;
}

const CHECKPOINT = 'checkpoint.json';
export const QUARANTINE_DIR = 'quarantine';
const DELETE_RETRY_MS = 1_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const RESULTS_KEY = Buffer.from('"results":');
const CELLS_KEY = Buffer.from('"cells":');

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
  /** Batches not yet done (acknowledged, dropped or refused) per segment file. */
  private readonly segments = new Map<number, number>();
  private deletions: number[] = [];
  private deleting: Promise<void> | undefined;
  /** Deletions wait for the disk (the checkpoint could not be written): flush does not wait for them. */
  private deletionsStalled = false;
  /** Segment files that go to quarantine, not away, once every batch in them is done. */
  private readonly setAsideFiles = new Set<number>();
  /** Files in quarantine (found there on open, or put there since). */
  quarantined = 0;

  private constructor(
    readonly dir: string,
    private readonly options: OutboxOptions,
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
    outbox.quarantined = (await readdir(join(dir, QUARANTINE_DIR)).catch(() => [])).length;
    let nextSeq = 0;
    for (const name of (await readdir(dir)).sort()) {
      if (name.endsWith('.tmp')) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      const match = SEGMENT_FILE.exec(name);
      if (!match) continue;
      const file = Number(match[1]);
      nextSeq = Math.max(nextSeq, file + 1);
      const batches = await outbox.readSegment(file);
      if (batches.length > 0) outbox.segments.set(file, batches.length);
      for (const batch of batches) {
        outbox.batches.set(batch.seq, batch);
        outbox.bytes += batch.bytes;
        if (batch.csvNext !== undefined && batch.csvNext > outbox.checkpoint.csvNext)
          outbox.checkpoint.csvNext = batch.csvNext;
        nextSeq = Math.max(nextSeq, batch.seq + 1);
      }
    }
    outbox.log = new BatchLog(dir, nextSeq);
    await outbox.recoverJournals();
    return outbox;
  }

  /**
   * The batches of a stored segment file to send. A file that cannot be read goes to
   * quarantine whole; one with corrupt lines is copied there first (its readable batches are
   * sent from the original); an empty one holds nothing and goes.
   */
  private async readSegment(file: number): Promise<StoredBatch[]> {
    const name = segmentFileName(file);
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      await this.quarantine(name, 'move', `it cannot be read (${errorMessage(error)})`);
      return [];
    }
    if (bytes.length === 0) {
      await rm(join(this.dir, name), { force: true });
      return [];
    }
    const { batches, corrupt } = parseSegment(file, bytes);
    if (corrupt === 0) return batches;
    const why = `${corrupt} of its ${corrupt + batches.length} lines are corrupt`;
    if (batches.length === 0) {
      await this.quarantine(name, 'move', why);
      return [];
    }
    // The readable batches are still sent; quarantine keeps the whole file as it was.
    return (await this.quarantine(name, 'copy', `${why}; its ${batches.length} readable batches are sent`))
      ? batches
      : [];
  }

  /**
   * Puts a segment file (or whatever stands under its name) into quarantine/; true when it
   * is there. When even that fails the file stays where it is, unindexed (a restart tries
   * again): it is never removed.
   */
  private async quarantine(name: string, how: 'move' | 'copy', why: string): Promise<boolean> {
    const to = join(this.dir, QUARANTINE_DIR, `${name.replaceAll('/', '-')}.${Date.now()}`);
    try {
      await mkdir(join(this.dir, QUARANTINE_DIR), { recursive: true });
      if (how === 'copy') await copyFile(join(this.dir, name), to, constants.COPYFILE_EXCL);
      else await rename(join(this.dir, name), to);
      this.quarantined++;
      this.options.onError?.(`outbox file ${name} quarantined as ${to}: ${why}`);
      return true;
    } catch (error) {
      if (how === 'copy') return this.quarantine(name, 'move', why);
      this.options.onError?.(
        `outbox file ${name} is left in place and not sent: ${why}, and it cannot be moved to quarantine (${errorMessage(error)})`,
      );
      return false;
    }
  }

  /**
   * The open batches' journals a stop left (open-batch-journal.ts): each one whose batch no
   * segment holds becomes a batch under its id (never sent before: batches are sent from
   * segments), the others go. A batch acknowledged and deleted before its journal went is
   * sent again under the same id, which the aggregator counts once.
   */
  private async recoverJournals() {
    const dir = join(this.dir, JOURNAL_DIR);
    const names = (await readdir(dir).catch(() => [] as string[])).sort();
    const stored = new Set([...this.batches.values()].map((batch) => batch.batchId));
    for (const name of names) {
      const batchId = journalBatchId(name);
      if (!batchId) continue;
      const file = join(JOURNAL_DIR, name);
      if (!stored.has(batchId)) {
        let contents: ReturnType<typeof readJournal>;
        try {
          contents = readJournal(await readFile(join(this.dir, file)));
        } catch (error) {
          await this.quarantine(file, 'move', `it cannot be read (${errorMessage(error)})`);
          continue;
        }
        const why = `${contents?.corrupt} of its lines are corrupt; its ${contents?.results.length} readable results are sent`;
        if (contents?.corrupt && !(await this.quarantine(file, 'copy', why))) continue;
        if (contents && contents.results.length > 0)
          await this.append({
            batchId,
            model: contents.model,
            version: contents.version,
            results: contents.results,
            ...(contents.csvNext !== undefined ? { csvNext: contents.csvNext } : {}),
          });
      }
      await rm(join(this.dir, file), { force: true });
    }
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
    if (!this.segments.has(batch.file)) this.segments.set(batch.file, batch.batchesInFile);
    if (!this.makeRoom(batch.bytes)) {
      this.checkpoint.dropped += batch.count;
      this.done(batch.file);
      return false;
    }
    this.batches.set(batch.seq, batch);
    this.bytes += batch.bytes;
    return true;
  }

  /** One more batch of a segment is done; the file goes with its last one. */
  private done(file: number) {
    const left = (this.segments.get(file) ?? 1) - 1;
    if (left > 0) {
      this.segments.set(file, left);
      return;
    }
    this.segments.delete(file);
    this.deleteFiles([file]);
  }

  /**
   * Applies the overflow policy; false when the new batch must be refused. The disk's
   * reserve counts like maxBytes: below it, drop-oldest gives up as many bytes as are missing
   * (their files go once every batch in them is done) and reject refuses the new batch.
   */
  private makeRoom(size: number): boolean {
    let shortfall = this.options.diskShortfall?.() ?? 0;
    while (this.batches.size >= this.maxBatches || this.bytes + size > this.maxBytes || shortfall > 0) {
      if (this.overflow === 'reject') return false;
      const oldest = [...this.batches.keys()].find((seq) => !this.inFlight.has(seq));
      if (oldest === undefined) return false;
      shortfall -= this.batches.get(oldest)?.bytes ?? 0;
      this.checkpoint.dropped += this.forget(oldest);
    }
    return true;
  }

  /** Drops a batch from the index (its segment file goes with the last batch in it); returns its result count. */
  private forget(seq: number): number {
    const batch = this.batches.get(seq);
    if (!batch) return 0;
    this.batches.delete(seq);
    this.bytes -= batch.bytes;
    this.done(batch.file);
    return batch.count;
  }

  /** Queues segment files for deletion; the checkpoint becomes durable before any of them goes. */
  private deleteFiles(files: number[]) {
    this.deletions.push(...files);
    this.deleting ??= (async () => {
      while (this.deletions.length > 0) {
        const group = this.deletions.splice(0);
        try {
          await this.writeCheckpoint();
        } catch (error) {
          // A full, read-only or failing disk: the files stay until the checkpoint is durable
          // (deleting them first could move the resume position back).
          this.deletions.unshift(...group);
          if (!this.deletionsStalled)
            this.options.onError?.(`outbox checkpoint not written, deletions wait: ${errorMessage(error)}`);
          this.deletionsStalled = true;
          await sleep(DELETE_RETRY_MS);
          continue;
        }
        this.deletionsStalled = false;
        await Promise.all(
          group.map((file) =>
            this.setAsideFiles.delete(file)
              ? this.quarantine(segmentFileName(file), 'move', 'a batch in it could not be read to be sent')
              : rm(join(this.dir, segmentFileName(file)), { force: true }).catch((error: unknown) =>
                  // Every batch in it is done: a restart sends them again under the same ids.
                  this.options.onError?.(
                    `outbox file ${segmentFileName(file)} not deleted: ${errorMessage(error)}`,
                  ),
                ),
          ),
        );
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

  /** The JSON array of a batch's results (a summary batch's cells), read from its segment file. */
  async readResults(batch: StoredBatch): Promise<Buffer> {
    const name = segmentFileName(batch.file);
    const length = batch.bytes - batch.resultsOffset - 1; // up to the line's closing brace
    const buffer = Buffer.allocUnsafe(length);
    const handle = await open(join(this.dir, name), 'r');
    try {
      const { bytesRead } = await handle.read(buffer, 0, length, batch.offset + batch.resultsOffset);
      if (bytesRead !== length) throw new Error(`segment file ${name} is shorter than its index says`);
    } finally {
      await handle.close();
    }
    return buffer;
  }

  /** A batch whose file is gone (removed by someone else): nothing to send, dropped and counted. */
  discard(seq: number): void {
    this.inFlight.delete(seq);
    this.checkpoint.dropped += this.forget(seq);
  }

  /**
   * A batch that cannot be sent (its file fails to read): set aside, not dropped. Its file
   * goes to quarantine once every other batch in it is done.
   */
  setAside(seq: number): void {
    this.inFlight.delete(seq);
    const batch = this.batches.get(seq);
    if (batch) this.setAsideFiles.add(batch.file);
    this.forget(seq);
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
    while (this.deleting && !this.deletionsStalled) await this.deleting;
    try {
      await this.writeCheckpoint();
    } catch (error) {
      // The resume position is also in the stored batches; the checkpoint is written again later.
      if (!isStorageFault(error)) throw error;
      this.options.onError?.(`outbox checkpoint not written: ${errorMessage(error)}`);
    }
  }

  /** Writes the checkpoint now if it changed (a crash exit saves what it can). */
  saveCheckpoint(): Promise<void> {
    return this.writeCheckpoint();
  }
}

type StoredLine = {
  batchId: string;
  model: string;
  version: number;
  csvNext?: number;
} & ({ mode?: undefined; results: unknown[] } | { mode: 'summary'; cells: { n?: unknown }[] });

/**
 * The batches of a segment file, one per line; batch i has the seq `file + i`. A line that
 * does not parse is counted as corrupt (files are complete when renamed into place, so only
 * a damaged disk makes one).
 */
function parseSegment(file: number, bytes: Buffer): { batches: StoredBatch[]; corrupt: number } {
  const lines: { offset: number; end: number }[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const newline = bytes.indexOf(0x0a, offset);
    const end = newline === -1 ? bytes.length : newline;
    lines.push({ offset, end });
    offset = end + 1;
  }
  const batches: StoredBatch[] = [];
  let corrupt = 0;
  for (const [i, { offset, end }] of lines.entries()) {
    const line = bytes.subarray(offset, end);
    try {
      const stored = JSON.parse(line.toString('utf8')) as StoredLine;
      const { batchId, model, version, csvNext } = stored;
      const summary = stored.mode === 'summary';
      const key = summary ? CELLS_KEY : RESULTS_KEY;
      batches.push({
        seq: file + i,
        batchId,
        model,
        version,
        ...(summary ? { mode: 'summary' as const } : {}),
        count: summary ? summaryCount(stored.cells as { n: number }[]) : stored.results.length,
        ...(csvNext !== undefined ? { csvNext } : {}),
        file,
        batchesInFile: lines.length,
        offset,
        bytes: line.length,
        // The array comes last in a line: `..."results":[...]}` (or `"cells":[...]}`).
        resultsOffset: line.indexOf(key) + key.length,
      });
    } catch {
      corrupt++;
    }
  }
  return { batches, corrupt };
}
