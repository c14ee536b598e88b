/**
 * Readings received from a live source and not answered yet, in arrival order. Each
 * message takes positions: one per reading (at least one, so a message that held none still
 * moves the resume position past it). Bounded: a source that can pause (MQTT) waits for
 * room before it takes more; one that cannot (OPC UA, Modbus) pushes on, and the oldest
 * readings go, counted.
 */
import type { LiveReading } from './live-source.ts';

export interface Received {
  /** The position of its first reading; the next message's is position + span. */
  position: number;
  span: number;
  /** When it arrived: epoch ms (a reading without its own time takes it) and performance.now(). */
  arrivedAt: number;
  arrivedPerf: number;
  readings: readonly LiveReading[];
}

export class ReceivedQueue {
  private entries: Received[] = [];
  private held = 0;
  private waiters: (() => void)[] = [];
  private roomWaiters: (() => void)[] = [];
  private closed = false;
  /** Readings dropped, oldest first, by a source that cannot pause. */
  dropped = 0;

  constructor(
    /** Readings kept at most. */
    private readonly capacity: number,
    private readonly onFull: 'hold' | 'drop-oldest',
  ) {}

  get size(): number {
    return this.held;
  }

  /** A pausable source waits while this holds. */
  get full(): boolean {
    return this.held >= this.capacity;
  }

  /** Resolves when a pausable source may hand over more (or the queue closed). */
  room(): Promise<void> {
    if (!this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  add(entry: Received): void {
    if (this.closed) return;
    this.entries.push(entry);
    this.held += entry.readings.length;
    if (this.onFull === 'drop-oldest')
      while (this.held > this.capacity && this.entries.length > 1) {
        const oldest = this.entries.shift() as Received;
        this.held -= oldest.readings.length;
        this.dropped += oldest.readings.length;
      }
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves when there is something to take, or the queue closed. */
  ready(): Promise<void> {
    if (this.entries.length > 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The oldest messages, whole, up to about `maxReadings` readings (at least one message). */
  take(maxReadings: number): Received[] {
    let n = 0;
    let readings = 0;
    while (
      n < this.entries.length &&
      (n === 0 || readings + (this.entries[n]?.readings.length ?? 0) <= maxReadings)
    )
      readings += (this.entries[n++] as Received).readings.length;
    const taken = this.entries.splice(0, n);
    this.held -= readings;
    if (!this.full) for (const wake of this.roomWaiters.splice(0)) wake();
    return taken;
  }

  close(): void {
    this.closed = true;
    for (const wake of [...this.waiters.splice(0), ...this.roomWaiters.splice(0)]) wake();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
