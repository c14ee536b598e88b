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

/** IoT Core rejects messages over 128 KB; stay well below it including the envelope. */
export const MAX_BATCH_BYTES = 120_000;
/** ResultBatchSchema allows at most 2,000 results per batch. */
export const MAX_BATCH_RESULTS = 2_000;

/**
 * An upper bound of a result's JSON size, without serialising it: the fixed keys and
 * numbers take at most 96 bytes, ids are ASCII, and a UTF-8 label char takes <= 3 bytes.
 */
export function encodedSizeBound(result: InferenceResult): number {
  return 96 + result.id.length + 3 * (result.label.length + (result.truth?.length ?? 0));
}

export interface BatcherOptions {
  maxBytes?: number;
  maxResults?: number;
  /** A partial batch is flushed after this long. */
  maxAgeMs?: number;
}

export class ResultBatcher {
  /** JSON texts of the results in the open batch. */
  private results: string[] = [];
  private bytes = 0;
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
  }

  /**
   * Adds results made by one model version; `csvNext` is the CSV position after the last
   * of them (results must arrive in source order for the checkpoint to be exact).
   */
  add(version: number, results: readonly InferenceResult[], csvNext?: number): void {
    this.addEncoded(
      version,
      results.map((result) => JSON.stringify(result)),
      results.map(encodedSizeBound),
      csvNext,
    );
  }

  /**
   * `add` for results already serialised: `encoded[i]` is JSON.stringify of result i and
   * `sizes[i]` its encodedSizeBound (so batches are cut exactly where `add` cuts them).
   */
  addEncoded(version: number, encoded: readonly string[], sizes: ArrayLike<number>, csvNext?: number): void {
    if (this.version !== undefined && version !== this.version) this.cut();
    this.version = version;
    for (let i = 0; i < encoded.length; i++) {
      const size = sizes[i] ?? 0;
      if (this.results.length >= this.maxResults || this.bytes + size > this.maxBytes) {
        // Positions are contiguous, so the batch cut here ends right before result i. Giving it
        // the position after its own last result keeps a restart from replaying (under new batch
        // ids) readings whose batch was already acknowledged and deleted.
        if (csvNext !== undefined) this.csvNext = csvNext - (encoded.length - i);
        this.cut();
      }
      this.version = version;
      this.results.push(encoded[i] as string);
      this.bytes += size;
    }
    if (csvNext !== undefined) this.csvNext = csvNext;
    if (this.results.length > 0) this.timer ??= setTimeout(() => this.cut(), this.maxAgeMs);
  }

  /** Number of batch writes still queued (callers use it as backpressure). */
  private queued = 0;
  get backlog(): number {
    return this.queued;
  }

  private cut() {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.results.length === 0 || this.version === undefined) return;
    const results = this.results;
    const input = {
      model: this.model,
      version: this.version,
      encoded: results,
      ...(this.csvNext !== undefined ? { csvNext: this.csvNext } : {}),
    };
    this.results = [];
    this.bytes = 0;
    this.csvNext = undefined;
    this.queued++;
    this.pending = this.outbox.append(input).then(
      (accepted) => {
        this.queued--;
        this.onPersisted(accepted, results.length);
      },
      (error: unknown) => {
        this.queued--;
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

  /** Resolves once fewer than `max` batch writes are queued. */
  async drain(max = 8): Promise<void> {
    while (this.queued >= max) await this.pending.catch(() => undefined);
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
    // The stored results text goes out as is (ResultBatchSchema shape, sentAt added now).
    const message = `{"batchId":"${batch.batchId}","model":${JSON.stringify(batch.model)},"version":${batch.version},"sentAt":${Date.now()},"results":${batch.resultsJson}}`;
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
