/**
 * Readings the gateway would not answer: counted per reason for the status and `edgeloop
 * fleet`, and sampled with their reason into `<stateDir>/errors.jsonl` so an operator can
 * see what arrived. The first refusal of each reason is written, then at most one per reason
 * every 10 s (a broken feed refuses thousands a second), and the log is rotated once it
 * passes 1 MiB: the samples explain the counts, they do not keep every reading.
 */
import { appendFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Refusal } from '../../shared/dataset/readings.ts';
import { errorMessage } from '../../shared/errors.ts';
import type { RefusalReason } from '../../shared/schemas.ts';

export const ERRORS_LOG = 'errors.jsonl';
const SAMPLE_EVERY_MS = 10_000;
const LOG_MAX_BYTES = 2 ** 20;
const READING_MAX_CHARS = 512;

export class Refusals {
  private readonly counts: Partial<Record<RefusalReason, number>> = {};
  private readonly sampledAt = new Map<RefusalReason, number>();
  private writing: Promise<void> = Promise.resolve();
  total = 0;

  constructor(
    private readonly stateDir: string | undefined,
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a refused reading from `source` and samples it into the errors log. */
  refuse(refusal: Refusal, source: string, reading: unknown): void {
    this.counts[refusal.reason] = (this.counts[refusal.reason] ?? 0) + 1;
    this.total++;
    const at = this.now();
    const last = this.sampledAt.get(refusal.reason);
    if (last !== undefined && at - last < SAMPLE_EVERY_MS) return;
    if (last === undefined) this.log(`refused a reading from ${source}: ${refusal.message}`);
    this.sampledAt.set(refusal.reason, at);
    if (this.stateDir === undefined) return;
    const text = typeof reading === 'string' ? reading : JSON.stringify(reading);
    const line = `${JSON.stringify({
      at: new Date(at).toISOString(),
      source,
      reason: refusal.reason,
      message: refusal.message,
      reading: text.length > READING_MAX_CHARS ? `${text.slice(0, READING_MAX_CHARS)}…` : text,
      refusedSoFar: this.counts[refusal.reason],
    })}\n`;
    this.writing = this.writing.then(() => this.append(line));
  }

  /** Refused readings per reason, for the status. */
  report(): Partial<Record<RefusalReason, number>> {
    return { ...this.counts };
  }

  /** Resolves once the samples taken so far are written (or given up on). */
  flushed(): Promise<void> {
    return this.writing;
  }

  private async append(line: string): Promise<void> {
    const file = join(this.stateDir as string, ERRORS_LOG);
    try {
      const size = await stat(file).then(
        (s) => s.size,
        () => 0,
      );
      if (size > LOG_MAX_BYTES) await rename(file, `${file}.1`);
      await appendFile(file, line);
    } catch (error) {
      // A full or read-only disk must not stop the readings: the counts still tell.
      this.log(`a refusal sample was not written to ${file}: ${errorMessage(error)}`);
    }
  }
}
