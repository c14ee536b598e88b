/**
 * Results -> batches -> outbox -> MQTT.
 *
 * The ResultBatcher cuts batches by size (under IoT Core's 128 KB message limit, with
 * headroom) and by age, and persists each one in the outbox before it may be sent. The
 * Publisher drains the outbox over the link: a small window of QoS 1 publishes in flight,
 * paced by a token bucket (70/s, burst 10) under IoT Core's 100 publishes/s per connection, each
 * removed on PUBACK and put back (same batch id) when the send fails.
 */
import { EventEmitter } from 'node:events';
import { errorMessage } from '../shared/errors.ts';
import type { InferenceResult } from '../shared/schemas.ts';
import type { MqttLink } from './connection.ts';
import type { Outbox, StoredBatch } from './outbox.ts';
import { encodeResultObjects, type ResultChunk } from './result-encoding.ts';

/** IoT Core rejects messages over 128 KB; the results array stays below this (the envelope is small). */
export const MAX_BATCH_BYTES = 120_000;
/** ResultBatchSchema allows at most 2,000 results per batch. */
export const MAX_BATCH_RESULTS = 2_000;

const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const CLOSE_BRACE = Buffer.from('}');

export interface BatcherOptions {
  maxBytes?: number;
  maxResults?: number;
  /** A partial batch is flushed after this long. */
  maxAgeMs?: number;
}

export class ResultBatcher {
  /** The open batch: the bytes of its JSON array so far (`[` and the results, comma-separated). */
  private open: Buffer;
  /** Bytes of `open` written so far. */
  private used = 1;
  /** Results in the open batch, and the size of its array so far once they are all copied. */
  private count = 0;
  private size = 1;
  private csvNext: number | undefined;
  private version: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<unknown> = Promise.resolve();
  private readonly maxBytes: number;
  private readonly maxResults: number;
  private readonly maxAgeMs: number;

  constructor(
    private readonly outbox: Outbox,
    private readonly model: string,
    private readonly onPersisted: (accepted: boolean, count: number) => void,
    options: BatcherOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? MAX_BATCH_BYTES;
    this.maxResults = Math.min(options.maxResults ?? 1_000, MAX_BATCH_RESULTS);
    this.maxAgeMs = options.maxAgeMs ?? 500;
    this.open = Buffer.allocUnsafe(this.maxBytes);
    this.open[0] = OPEN_BRACKET;
  }

  /**
   * Adds results made by one model version; `csvNext` is the CSV position after the last
   * of them (results must arrive in source order for the checkpoint to be exact).
   */
  add(version: number, results: readonly InferenceResult[], csvNext?: number): void {
    this.addEncoded(version, encodeResultObjects(results), csvNext);
  }

  /** `add` for results already encoded; the chunk's bytes are copied before this returns. */
  addEncoded(version: number, chunk: ResultChunk, csvNext?: number): void {
    if (this.version !== undefined && version !== this.version) this.cut();
    this.version = version;
    const { ends, count } = chunk;
    // Results [runStart, i) are in the open batch's count and size but not copied yet: a run
    // is copied in one piece (with the commas between its results) when the batch is cut.
    let runStart = 0;
    for (let i = 0; i < count; i++) {
      const size = (ends[i] as number) - (i === 0 ? 0 : (ends[i - 1] as number) + 1);
      const needed = (this.count > 0 ? 1 : 0) + size; // its comma, unless it opens the batch
      // + 1: the closing bracket.
      if (this.count > 0 && (this.count >= this.maxResults || this.size + needed + 1 > this.maxBytes)) {
        this.copyRun(chunk, runStart, i);
        runStart = i;
        // Positions are contiguous, so the batch cut here ends right before result i. Giving it
        // the position after its own last result keeps a restart from replaying (under new batch
        // ids) readings whose batch was already acknowledged and deleted.
        if (csvNext !== undefined) this.csvNext = csvNext - (count - i);
        this.cut();
      }
      this.size += this.count > 0 ? 1 + size : size;
      this.count++;
    }
    this.copyRun(chunk, runStart, count);
    if (csvNext !== undefined) this.csvNext = csvNext;
    if (this.count > 0) this.timer ??= setTimeout(() => this.cut(), this.maxAgeMs);
  }

  /** Copies results [from, to) of `chunk` to the end of the open batch's bytes. */
  private copyRun(chunk: ResultChunk, from: number, to: number) {
    if (from >= to) return;
    const start = from === 0 ? 0 : (chunk.ends[from - 1] as number) + 1;
    const end = chunk.ends[to - 1] as number;
    if (this.open.length < this.used + 1 + (end - start) + 1) {
      const grown = Buffer.allocUnsafe(this.used + 1 + (end - start) + 1);
      this.open.copy(grown, 0, 0, this.used);
      this.open = grown;
    }
    if (this.used > 1) this.open[this.used++] = COMMA;
    this.used += Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength).copy(
      this.open,
      this.used,
      start,
      end,
    );
  }

  /** Number of batch writes still queued (callers use it as backpressure). */
  private queued = 0;
  /** Waiting in `drain` for a write to complete. */
  private readonly settled: (() => void)[] = [];
  get backlog(): number {
    return this.queued;
  }

  private cut() {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count === 0 || this.version === undefined) return;
    this.open[this.used++] = CLOSE_BRACKET;
    const count = this.count;
    const input = {
      model: this.model,
      version: this.version,
      // A copy the size of the batch: the outbox keeps it until the PUBACK.
      resultsJson: Buffer.copyBytesFrom(this.open, 0, this.used),
      count,
      ...(this.csvNext !== undefined ? { csvNext: this.csvNext } : {}),
    };
    this.used = 1;
    this.size = 1;
    this.count = 0;
    this.csvNext = undefined;
    this.queued++;
    const written = () => {
      this.queued--;
      for (const resolve of this.settled.splice(0)) resolve();
    };
    this.pending = this.outbox.append(input).then(
      (accepted) => {
        written();
        this.onPersisted(accepted, count);
      },
      (error: unknown) => {
        written();
        throw error;
      },
    );
  }

  /** Cuts the partial batch and waits until every batch is in the outbox. */
  async flush(): Promise<void> {
    this.cut();
    await this.pending;
    await this.outbox.flush();
  }

  /**
   * Resolves once fewer than `max` batch writes are queued: as soon as one completes, so a
   * fast source keeps producing while the outbox commits (a waiter for the newest write
   * would idle through a whole group commit).
   */
  async drain(max = 32): Promise<void> {
    while (this.queued >= max) await new Promise<void>((resolve) => this.settled.push(resolve));
  }
}

export interface PublisherOptions {
  /**
   * Result publishes per second. IoT Core allows 100 per connection; with the burst on top
   * (at most rate + burst in any second) and status messages (at most ~10/s), 70 stays under.
   */
  ratePerSec?: number;
  burst?: number;
  window?: number;
  log?: (line: string) => void;
}

/** Events: 'published' {count, batchId}, 'error' (message). */
export class Publisher extends EventEmitter {
  private running = false;
  private inFlight = 0;
  private tokens: number;
  private lastRefill = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly ratePerSec: number;
  private readonly burst: number;
  private readonly window: number;
  private readonly sends = new Set<Promise<void>>();

  constructor(
    private readonly outbox: Outbox,
    private readonly link: MqttLink,
    private readonly topic: string,
    options: PublisherOptions = {},
  ) {
    super();
    this.ratePerSec = options.ratePerSec ?? 70;
    this.burst = Math.max(1, Math.min(options.burst ?? 10, this.ratePerSec));
    this.window = options.window ?? 8;
    this.tokens = this.burst;
  }

  start(): void {
    this.running = true;
    this.kick();
  }

  /** Called when something changed: a new batch, a PUBACK, a reconnect. */
  kick(): void {
    if (!this.running || !this.link.connected) return;
    this.refill();
    while (this.inFlight < this.window && this.tokens >= 1 && this.link.connected) {
      const batch = this.outbox.take();
      if (!batch) return;
      this.tokens -= 1;
      this.send(batch);
    }
    if (this.tokens < 1 && !this.timer) {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.kick();
        },
        Math.ceil(1000 / this.ratePerSec),
      );
    }
  }

  private refill() {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.ratePerSec);
    this.lastRefill = now;
  }

  private send(batch: StoredBatch) {
    this.inFlight++;
    // The stored results bytes go out as is (ResultBatchSchema shape, sentAt added now).
    const message = Buffer.concat([
      Buffer.from(
        `{"batchId":"${batch.batchId}","model":${JSON.stringify(batch.model)},"version":${batch.version},"sentAt":${Date.now()},"results":`,
      ),
      batch.resultsJson,
      CLOSE_BRACE,
    ]);
    const sending = this.link
      .publish(this.topic, message)
      .then(
        () => {
          this.outbox.ack(batch.seq);
          this.emit('published', { count: batch.count, batchId: batch.batchId });
        },
        (error: unknown) => {
          this.outbox.release(batch.seq);
          this.emit('error', `publishing batch ${batch.batchId}: ${errorMessage(error)}`);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.sends.delete(sending);
        this.kick();
      });
    this.sends.add(sending);
  }

  /** Stops sending; waits (bounded) for the publishes already in flight. */
  async stop(timeoutMs = 3_000): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.sends]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
