/**
 * Outbox -> MQTT.
 *
 * The Publisher drains the outbox over the link: a small window of QoS 1 publishes in flight,
 * paced by a token bucket (70/s, burst 10) under IoT Core's 100 publishes/s per connection, each
 * removed on PUBACK and put back (same batch id) when the send fails.
 */
import { EventEmitter } from 'node:events';
import { errorMessage } from '../../shared/errors.ts';
import type { MqttLink } from '../platform/connection.ts';
import type { Outbox, StoredBatch } from './outbox.ts';

const CLOSE_BRACE = Buffer.from('}');

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

/** Events: 'published' {count, batchId, bytes (the payload's)}, 'error' (message). */
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
    const sending = this.publishBatch(batch).finally(() => {
      this.inFlight--;
      this.sends.delete(sending);
      this.kick();
    });
    this.sends.add(sending);
  }

  private async publishBatch(batch: StoredBatch) {
    let results: Buffer;
    try {
      results = await this.outbox.readResults(batch);
    } catch (error) {
      // Nothing can send it: rather than retry it forever, a batch whose file is gone is
      // dropped (counted), and one whose file fails is set aside into quarantine.
      const gone = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (gone) this.outbox.discard(batch.seq);
      else this.outbox.setAside(batch.seq);
      this.emit(
        'error',
        `batch ${batch.batchId} is unreadable and was ${gone ? 'dropped' : 'set aside in quarantine'}: ${errorMessage(error)}`,
      );
      return;
    }
    // The stored results (or cells) go out as they are (ResultBatchSchema or SummaryBatchSchema
    // shape, sentAt added now).
    const message = Buffer.concat([
      Buffer.from(
        `{${batch.mode === 'summary' ? '"mode":"summary",' : ''}"batchId":"${batch.batchId}","model":${JSON.stringify(batch.model)},"version":${batch.version},"sentAt":${Date.now()},"${batch.mode === 'summary' ? 'cells' : 'results'}":`,
      ),
      results,
      CLOSE_BRACE,
    ]);
    try {
      await this.link.publish(this.topic, message);
    } catch (error) {
      this.outbox.release(batch.seq);
      this.emit('error', `publishing batch ${batch.batchId}: ${errorMessage(error)}`);
      return;
    }
    this.outbox.ack(batch.seq);
    this.emit('published', { count: batch.count, batchId: batch.batchId, bytes: message.length });
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
