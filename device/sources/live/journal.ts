/**
 * What a live source acknowledged and the pipeline has not made durable yet, on disk. An
 * MQTT message is acknowledged (PUBACK) once it is appended here: the broker then forgets
 * it, so a crash between the PUBACK and its results reaching the outbox must not lose it.
 * After a restart the source reads back every message from the outbox's resume position
 * (the position after the last reading whose result is durable) and answers them again.
 *
 * One line per message in segment files named by their first position. Lines are gathered
 * and written by `flush` in one `write(2)`, which a killed process does not tear (the source
 * acknowledges them only after); a torn last line (power loss) is ignored on read. Segments
 * wholly before the resume position are deleted as new ones open.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** A journalled message: its positions, arrival time and what the source needs to read it again. */
export interface JournalRecord<T> {
  position: number;
  span: number;
  arrivedAt: number;
  message: T;
}

const SEGMENT_BYTES = 4 * 2 ** 20;
const NAME = /^(\d{15})\.jsonl$/;

export class Journal<T> {
  private fd: number | undefined;
  private written = 0;
  private next: number;
  /** Lines appended and not written yet. */
  private pending: string[] = [];

  private constructor(
    private readonly dir: string,
    start: number,
    /** The resume position: segments wholly before it may go. */
    private readonly durable: () => number,
  ) {
    this.next = start;
  }

  /**
   * Opens the journal in `dir`; `durable()` is the outbox's resume position. Returns it with
   * the records at or after that position, to be answered before anything new.
   */
  static open<T>(dir: string, durable: () => number): { journal: Journal<T>; pending: JournalRecord<T>[] } {
    mkdirSync(dir, { recursive: true });
    const from = durable();
    const pending: JournalRecord<T>[] = [];
    let end = from;
    for (const file of segments(dir)) {
      for (const line of readFileSync(join(dir, file.name), 'utf8').split('\n')) {
        if (!line) continue;
        let record: { p: number; n: number; a: number; m: T };
        try {
          record = JSON.parse(line);
        } catch {
          continue; // a torn last line: its message was never acknowledged
        }
        end = Math.max(end, record.p + record.n);
        if (record.p >= from)
          pending.push({ position: record.p, span: record.n, arrivedAt: record.a, message: record.m });
      }
    }
    const journal = new Journal<T>(dir, end, durable);
    journal.prune();
    return { journal, pending };
  }

  /** The position the next message takes. */
  get position(): number {
    return this.next;
  }

  /** Adds a message of `span` positions (written by the next `flush`); returns its record. */
  append(message: T, span: number, arrivedAt: number): JournalRecord<T> {
    const record = { position: this.next, span, arrivedAt, message };
    this.pending.push(JSON.stringify({ p: record.position, n: span, a: arrivedAt, m: message }));
    this.next += span;
    return record;
  }

  /** Writes what was appended, in one write; throws when the disk refuses (nothing is then acknowledged). */
  flush(): void {
    if (this.pending.length === 0) return;
    if (this.fd === undefined || this.written >= SEGMENT_BYTES) this.roll();
    const bytes = Buffer.from(`${this.pending.join('\n')}\n`);
    writeSync(this.fd as number, bytes);
    this.written += bytes.length;
    this.pending = [];
  }

  close(): void {
    this.flush();
    this.closeSegment();
  }

  private closeSegment() {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private roll() {
    this.closeSegment();
    this.prune();
    this.fd = openSync(join(this.dir, `${String(this.next).padStart(15, '0')}.jsonl`), 'a');
    this.written = 0;
  }

  /** Deletes the segments whose every message is before the resume position. */
  private prune() {
    const durable = this.durable();
    const files = segments(this.dir);
    for (let i = 0; i + 1 < files.length; i++)
      if ((files[i + 1] as { first: number }).first <= durable)
        rmSync(join(this.dir, (files[i] as { name: string }).name), { force: true });
  }
}

function segments(dir: string): { name: string; first: number }[] {
  return readdirSync(dir)
    .map((name) => ({ name, match: NAME.exec(name) }))
    .filter((f) => f.match)
    .map((f) => ({ name: f.name, first: Number(f.match?.[1]) }))
    .sort((a, b) => a.first - b.first);
}
