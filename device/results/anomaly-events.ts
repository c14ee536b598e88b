/**
 * An anomaly model's events on the gateway. Every result the device makes passes here in the
 * order it was made; for a version with an event rule, the rule (shared/anomaly.ts, the same
 * code `edgeloop score` runs) opens and closes events per series, and each opening and each
 * closing becomes one message on the thing's events topic.
 *
 * Events are rare, so each message is simply one small file (`pending/<seq>.json`, written
 * atomically) until its PUBACK, and the events open right now are kept in `open.json`: a
 * restart continues them rather than leaving an event open forever in the store. A message
 * file that cannot be read is moved to `quarantine/` and counted, never removed unread.
 */
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AnomalyEvent,
  type EventInput,
  type EventRuleSpec,
  EventTracker,
  eventInputOf,
} from '../../shared/anomaly.ts';
import { errorMessage } from '../../shared/errors.ts';
import type { AnomalyEventMessage, DeviceStatus, InferenceResult, Manifest } from '../../shared/schemas.ts';
import { topicFor } from '../../shared/topology.ts';
import type { MqttLink } from '../platform/connection.ts';
import { readJson, replaceFileAtomic } from '../platform/durable.ts';
import { roundValue } from './result-encoding.ts';
import type { ReplayChunk } from './result-writer.ts';

const OPEN_FILE = 'open.json';
/** How long a failed send waits before it is tried again (a reconnect tries at once). */
const RETRY_MS = 5_000;

export type EventCounts = NonNullable<DeviceStatus['events']>;

export interface AnomalyEventLogOptions {
  dir: string;
  thing: string;
  model: string;
  link: MqttLink;
  log: (line: string) => void;
  /** A message was acknowledged. */
  onSent?: () => void;
}

interface Pending {
  seq: number;
  message: AnomalyEventMessage;
}

export class AnomalyEventLog {
  private readonly rules = new Map<number, { rule: EventRuleSpec; threshold: number }>();
  private tracker: EventTracker | undefined;
  private ruleKey = '';
  private readonly pending: Pending[] = [];
  /** Messages made and still being written: unsent too. */
  private writing = 0;
  private nextSeq = 0;
  private sending = false;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  /** Writes in order: each message file, then open.json, one after the other. */
  private writes: Promise<void> = Promise.resolve();
  private resumed: AnomalyEvent[] = [];
  private readonly counts = { opened: 0, closed: 0, quarantined: 0 };

  private constructor(private readonly o: AnomalyEventLogOptions) {}

  /** Opens the log in `dir`: messages not yet acknowledged go out again, open events continue. */
  static async open(o: AnomalyEventLogOptions): Promise<AnomalyEventLog> {
    const log = new AnomalyEventLog(o);
    await log.load();
    return log;
  }

  private get pendingDir() {
    return join(this.o.dir, 'pending');
  }

  private async load(): Promise<void> {
    await mkdir(this.pendingDir, { recursive: true });
    const names = (await readdir(this.pendingDir)).filter((name) => /^\d+\.json$/.test(name));
    for (const name of names.sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10))) {
      const seq = Number.parseInt(name, 10);
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
      try {
        this.pending.push({ seq, message: JSON.parse(await readFile(join(this.pendingDir, name), 'utf8')) });
      } catch (error) {
        await this.quarantine(name, error);
      }
    }
    this.resumed = (await readJson<AnomalyEvent[]>(join(this.o.dir, OPEN_FILE))) ?? [];
  }

  private async quarantine(name: string, error: unknown) {
    this.counts.quarantined++;
    this.o.log(`events: ${name} is unreadable (${errorMessage(error)}); moved to quarantine/`);
    await mkdir(join(this.o.dir, 'quarantine'), { recursive: true });
    await rename(join(this.pendingDir, name), join(this.o.dir, 'quarantine', name)).catch(() => undefined);
  }

  /** A model version the device serves: anomaly models bring their event rule and threshold. */
  setModel(manifest: Pick<Manifest, 'version' | 'anomaly'>): void {
    const anomaly = manifest.anomaly;
    if (!anomaly) return;
    this.rules.set(manifest.version, { rule: anomaly.eventRule, threshold: anomaly.threshold });
    const key = JSON.stringify(anomaly.eventRule);
    if (key === this.ruleKey) return;
    // A new rule starts a new tracker; the events open under the old one carry on under it.
    const open = this.tracker?.openEvents() ?? this.resumed;
    this.tracker = new EventTracker(anomaly.eventRule);
    this.tracker.resume(open);
    this.resumed = [];
    this.ruleKey = key;
  }

  /** Results of one version, in the order they were made (stdin, /infer, live inputs, windows). */
  results(version: number, results: readonly InferenceResult[]): void {
    const rule = this.rules.get(version);
    if (!rule) return;
    for (const result of results)
      if (result.score !== undefined) this.push(version, rule.threshold, eventInputOf(result));
  }

  /** A CSV replay chunk: the same inputs the encoder writes into its results. */
  replay(chunk: ReplayChunk): void {
    const rule = this.rules.get(chunk.version);
    const scored = chunk.anomaly;
    if (!rule || !scored) return;
    for (let i = 0; i < chunk.best.length; i++) {
      const place = chunk.places?.[i];
      const score = roundValue(scored.scores[i] ?? Number.NaN);
      this.push(chunk.version, rule.threshold, {
        series: place?.series ?? '',
        time: place?.time ?? chunk.first + i,
        anomaly: score > scored.threshold,
        score,
        channels: scored.channels[i] ?? [],
      });
    }
  }

  private push(version: number, threshold: number, input: EventInput): void {
    const tracker = this.tracker;
    if (!tracker) return;
    const { opened, closed } = tracker.push(input.series, input.time, input);
    if (opened) {
      this.counts.opened++;
      this.emit(opened, 'open', version, threshold);
    }
    if (closed) {
      this.counts.closed++;
      this.emit(closed, 'closed', version, threshold);
    }
  }

  private emit(event: AnomalyEvent, state: 'open' | 'closed', version: number, threshold: number) {
    const message: AnomalyEventMessage = {
      eventId: event.id,
      model: this.o.model,
      version,
      series: event.series,
      state,
      start: event.start,
      end: event.end,
      peakScore: event.peakScore,
      threshold,
      channels: event.channels,
      results: event.results,
      sentAt: Date.now(),
    };
    const entry = { seq: this.nextSeq++, message };
    this.writing++;
    const open = this.tracker?.openEvents() ?? [];
    this.writes = this.writes
      .then(async () => {
        await replaceFileAtomic(this.pendingDir, `${entry.seq}.json`, JSON.stringify(message));
        await replaceFileAtomic(this.o.dir, OPEN_FILE, JSON.stringify(open));
      })
      .catch((error: unknown) =>
        // Kept in memory and sent all the same: only a crash before the PUBACK could lose it.
        this.o.log(
          `events: could not store event ${event.id} (${errorMessage(error)}); sending it from memory`,
        ),
      )
      .then(() => {
        this.writing--;
        this.pending.push(entry);
        this.kick();
      });
  }

  /** Sends what waits, one message at a time in order (a reconnect calls it too). */
  kick(): void {
    if (this.sending || this.stopped || !this.o.link.connected) return;
    const next = this.pending[0];
    if (!next) return;
    this.sending = true;
    this.o.link
      .publish(
        topicFor('events', { thing: this.o.thing }),
        JSON.stringify({ ...next.message, sentAt: Date.now() }),
      )
      .then(
        async () => {
          this.pending.shift();
          await rm(join(this.pendingDir, `${next.seq}.json`), { force: true });
          this.o.onSent?.();
        },
        (error: unknown) => {
          this.o.log(
            `events: sending event ${next.message.eventId} failed (${errorMessage(error)}); will retry`,
          );
          this.retry ??= setTimeout(() => {
            this.retry = undefined;
            this.kick();
          }, RETRY_MS);
        },
      )
      .finally(() => {
        this.sending = false;
        if (this.retry === undefined) this.kick();
      });
  }

  /** Whether this device has anything to say about events (it served an anomaly model, or some wait). */
  get active(): boolean {
    return (
      this.tracker !== undefined ||
      this.pending.length + this.writing > 0 ||
      this.resumed.length > 0 ||
      this.counts.quarantined > 0
    );
  }

  /** For the status: events open now, opened and closed since start, messages not yet acknowledged. */
  status(): EventCounts {
    return {
      open: this.tracker?.openEvents().length ?? this.resumed.length,
      opened: this.counts.opened,
      closed: this.counts.closed,
      unsent: this.pending.length + this.writing,
      ...(this.counts.quarantined > 0 ? { quarantined: this.counts.quarantined } : {}),
    };
  }

  /**
   * Waits for the writes and keeps the open events as they stand (after a crash, the next
   * run continues them as they stood at their last opening or closing); what is unsent stays
   * on disk for the next start.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    await this.writes;
    const open = this.tracker?.openEvents();
    if (open)
      await replaceFileAtomic(this.o.dir, OPEN_FILE, JSON.stringify(open)).catch((error: unknown) =>
        this.o.log(`events: could not keep the open events (${errorMessage(error)})`),
      );
  }

  /** Resolves once every message written so far was acknowledged (tests, a clean shutdown). */
  async drained(timeoutMs = 10_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    await this.writes;
    while (this.pending.length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return this.pending.length === 0;
  }
}
