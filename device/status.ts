/**
 * The device's status: the snapshot its observers read (`status()`, events, `GET /status`),
 * the message it publishes on its status topic (the snapshot without the local-only fields),
 * published on a timer and, coalesced, on every change; and waiting for a snapshot to hold.
 */
import type { EventEmitter } from 'node:events';
import { errorMessage } from '../shared/errors.ts';
import type { DeviceStatus } from '../shared/schemas.ts';
import { topicFor } from '../shared/topology.ts';
import type { MqttLink } from './platform/connection.ts';

export interface DeviceSnapshot extends DeviceStatus {
  thing: string;
  connected: boolean;
  /** Results produced by this process. */
  produced: number;
  /** Results whose batch was acknowledged (PUBACK) by this process. */
  published: number;
  /** Payload bytes of the batches acknowledged by this process (what IoT Core meters). */
  publishedBytes: number;
  /** Where the CSV source stands (survives restarts). */
  position: number;
  /** Results waiting in the outbox. */
  outboxResults: number;
  /** True once the source hit its limit and every result was acknowledged. */
  finished: boolean;
  httpPort: number | undefined;
}

/**
 * What the device has done, as the status reports it, and whether a limited source (a file
 * with --limit, stdin) is finished: all read, and every result and event acknowledged. A
 * device without such a source is never finished.
 */
export class DeviceProgress {
  produced = 0;
  published = 0;
  publishedBytes = 0;
  finished = false;
  private sourceDone = false;

  constructor(
    /** Where the CSV source stands. */
    public position: number,
    private readonly limited: boolean,
    /** Nothing waits to be stored or sent. */
    private readonly drained: () => boolean,
    private readonly onFinished: () => void,
  ) {}

  /** A batch of `count` results (`bytes` on the wire) was acknowledged. */
  acknowledged(count: number, bytes: number): void {
    this.published += count;
    this.publishedBytes += bytes;
    this.check();
  }

  /** The source read all it will read (and its last results are stored). */
  sourceEnded(): void {
    this.sourceDone = true;
    this.check();
  }

  /** Finished, once the source ended and everything drained. */
  check(): void {
    if (this.finished || !this.limited || !this.sourceDone || !this.drained()) return;
    this.finished = true;
    this.onFinished();
  }
}

/** What goes on the status topic: the snapshot without what only this process knows. */
export function statusMessage(snapshot: DeviceSnapshot): DeviceStatus {
  const {
    thing: _t,
    connected: _c,
    produced: _p,
    published: _u,
    publishedBytes: _b,
    position: _s,
    outboxResults: _o,
    finished: _f,
    httpPort: _h,
    ...status
  } = snapshot;
  return status;
}

/** Changes published within this long of each other go as one message. */
const COALESCE_MS = 100;

export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    private readonly thing: string,
    private readonly snapshot: () => DeviceSnapshot,
    private readonly link: MqttLink,
    private readonly events: EventEmitter,
    private readonly log: (line: string) => void,
  ) {}

  /** Publishes every `intervalMs` from now on. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.report(), intervalMs);
  }

  /** Tells observers, and publishes the status now when connected. */
  report(): void {
    this.events.emit('status', this.snapshot());
    if (!this.link.connected) return;
    this.publish().catch((error: unknown) => this.log(`status not sent: ${errorMessage(error)}`));
  }

  /** Something changed: observers hear at once; the publish is coalesced with what follows. */
  changed(): void {
    this.events.emit('status', this.snapshot());
    this.debounce ??= setTimeout(() => {
      this.debounce = undefined;
      this.report();
    }, COALESCE_MS);
  }

  /** No more timed reports (the device is stopping). */
  stopTimer(): void {
    clearInterval(this.timer);
  }

  /** No more reports; publishes the final status if still connected. */
  async stop(): Promise<void> {
    this.stopTimer();
    clearTimeout(this.debounce);
    if (this.link.connected) await this.publish().catch(() => undefined);
  }

  private publish(): Promise<void> {
    return this.link.publish(
      topicFor('status', { thing: this.thing }),
      JSON.stringify(statusMessage(this.snapshot())),
    );
  }
}

/** The events after which a device's snapshot may have changed. */
const SNAPSHOT_EVENTS = ['status', 'published', 'model', 'error', 'finished'];

/** Resolves with the first snapshot `pred` holds for; rejects with the last one after `timeoutMs`. */
export function waitForSnapshot(
  thing: string,
  events: EventEmitter,
  snapshot: () => DeviceSnapshot,
  pred: (s: DeviceSnapshot) => boolean,
  timeoutMs: number,
): Promise<DeviceSnapshot> {
  const now = snapshot();
  if (pred(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const check = () => {
      const s = snapshot();
      if (pred(s)) {
        cleanup();
        resolve(s);
      }
    };
    const poll = setInterval(check, 50);
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new Error(
          `device ${thing}: condition not met within ${timeoutMs} ms (state ${JSON.stringify(snapshot())})`,
        ),
      );
    }, timeoutMs);
    for (const name of SNAPSHOT_EVENTS) events.on(name, check);
    function cleanup() {
      clearInterval(poll);
      clearTimeout(timer);
      for (const name of SNAPSHOT_EVENTS) events.off(name, check);
    }
  });
}
