/**
 * The pipeline behind every live source: received readings are taken in arrival order, a
 * chunk at a time, shaped for the serving model, answered (one predict per chunk, rows or
 * windows) and handed to the device's ResultStream with their resume position. The same
 * checks as every other source apply: a reading the model may not answer is refused with
 * its reason, never answered.
 */

import type { Refusal } from '../../../shared/dataset/readings.ts';
import type { RawRow } from '../../../shared/preprocess.ts';
import type { InferenceResult, SourceStatus, WindowManifest } from '../../../shared/schemas.ts';
import type { Engine } from '../../model/engine.ts';
import { predictionAt } from '../../model/model.ts';
import { readingPlace, toResult } from '../../results/result-encoding.ts';
import type { ResultStream } from '../../results/result-writer.ts';
import { modelRefusal } from '../sources.ts';
import { addResults } from '../window-sources.ts';
import { type SeriesLimits, type WindowResult, WindowStream } from '../window-stream.ts';
import type { LiveReading, SourceSink, SourceState } from './live-source.ts';
import type { Received, ReceivedQueue } from './received.ts';

/** Readings one chunk takes at most: one predict, one batcher hand-over. */
const CHUNK_READINGS = 512;

/** Where a result's time came from: the reading's own, or its arrival at the gateway. */
export type TimeFrom = 'reading' | 'arrival';

export interface LiveContext {
  /** The source's name: in result ids and refusals. */
  name: string;
  thing: string;
  engine: Engine;
  batcher: ResultStream;
  labelColumn: () => string;
  stopped: () => boolean;
  /** Resolves when the next chunk may be read (the disk gate). */
  gate: () => Promise<void>;
  refuse: (refusal: Refusal, reading: unknown) => void;
  onProduced: (count: number) => void;
  series?: SeriesLimits;
  onWindowResults?: (results: readonly WindowResult[]) => void;
  /** Sees the window stream, whose open series the status reports. */
  onWindowStream?: (stream: WindowStream) => void;
}

/** Answers what `queue` receives until the device stops or the queue closes. */
export async function runLive(queue: ReceivedQueue, ctx: LiveContext): Promise<void> {
  let stream: WindowStream | undefined;
  const windowStream = () => {
    if (!stream) {
      stream = new WindowStream(
        ctx.engine,
        (w) => `${ctx.thing}:${ctx.name}:${w.series}:${Math.round(w.end)}`,
        ctx.series,
      );
      ctx.onWindowStream?.(stream);
    }
    return stream;
  };
  for (;;) {
    await ctx.gate();
    if (ctx.stopped()) break;
    await queue.ready();
    if (ctx.stopped() || (queue.isClosed && queue.size === 0)) break;
    const entries = queue.take(CHUNK_READINGS);
    const window = ctx.engine.serving?.manifest.window;
    if (window) answerWindows(entries, window, windowStream(), ctx);
    else answerRows(entries, ctx);
    await ctx.batcher.drain();
  }
  if (stream) emitWindows(stream.flush(), undefined, ctx);
}

/** A reading's row for a row model: its channels, and its time and series where it has them. */
function answerRows(entries: readonly Received[], ctx: LiveContext) {
  const model = ctx.engine.serving;
  if (!model) return;
  const labelColumn = ctx.labelColumn();
  // Runs of answered readings with contiguous positions: the batcher's resume position is
  // exact only when each result in a hand-over is the next position (refusals split runs).
  let run: { rows: RawRow[]; readings: LiveReading[]; arrivals: Received[]; first: number } | undefined;
  const answer = () => {
    if (!run || run.rows.length === 0) return;
    const { rows, readings, arrivals, first } = run;
    run = undefined;
    const classified = ctx.engine.classifyRows(rows, arrivals[0]?.arrivedPerf);
    const now = performance.now();
    const ts = Date.now();
    const results: InferenceResult[] = rows.map((row, i) => {
      const reading = readings[i] as LiveReading;
      const arrival = arrivals[i] as Received;
      const inferred = {
        ...predictionAt(classified, i),
        version: classified.version,
        latencyMs: now - arrival.arrivedPerf,
      };
      const place = classified.anomaly ? readingPlace(model.manifest, row) : {};
      const series = reading.series ?? place.series;
      return {
        ...toResult(`${ctx.thing}:${ctx.name}:${first + i}`, inferred, row[labelColumn], ts),
        // An anomaly model's events are per series: the reading's own, else its series column.
        ...(classified.anomaly && series !== undefined ? { series } : {}),
        time: reading.time ?? place.time ?? arrival.arrivedAt,
        timeFrom: reading.time !== undefined || place.time !== undefined ? 'reading' : 'arrival',
      };
    });
    ctx.batcher.add(classified.version, results, first + rows.length);
    ctx.onProduced(results.length);
  };
  for (const entry of entries) {
    if (entry.readings.length === 0) {
      answer(); // a message with no reading still takes its position
      continue;
    }
    entry.readings.forEach((reading, i) => {
      const position = entry.position + i;
      const row = reading.values as RawRow;
      const refusal = modelRefusal(model, row);
      if (refusal) {
        answer();
        ctx.refuse(refusal, reading.values);
        return;
      }
      if (run && run.first + run.rows.length !== position) answer();
      run ??= { rows: [], readings: [], arrivals: [], first: position };
      run.rows.push(row);
      run.readings.push(reading);
      run.arrivals.push(entry);
    });
  }
  answer();
}

function answerWindows(
  entries: readonly Received[],
  window: WindowManifest,
  stream: WindowStream,
  ctx: LiveContext,
) {
  const { spec } = window;
  let next: number | undefined;
  let timeFrom: TimeFrom = 'reading';
  for (const entry of entries) {
    for (const reading of entry.readings) {
      if (reading.time === undefined && reading.values[spec.time] === undefined) timeFrom = 'arrival';
      const row = windowRow(reading, entry.arrivedAt, spec);
      const refusal = stream.push(row, entry.arrivedPerf);
      if (refusal) ctx.refuse(refusal, reading.values);
    }
    next = entry.position + entry.span;
  }
  const results = stream.flush();
  for (const { result } of results) result.timeFrom = timeFrom;
  emitWindows(results, next, ctx);
}

function emitWindows(results: WindowResult[], next: number | undefined, ctx: LiveContext) {
  if (results.length === 0) return;
  ctx.onWindowResults?.(results);
  addResults(ctx.batcher, results, next);
  ctx.onProduced(results.length);
}

/**
 * A reading as a windowed model reads it: its time in the spec's time column (the reading's
 * own, else its arrival) and its series in the spec's series column, unless it carries them.
 */
export function windowRow(reading: LiveReading, arrivedAt: number, spec: WindowManifest['spec']): RawRow {
  const row: Record<string, string | number | null> = { ...reading.values };
  if (spec.series && reading.series !== undefined && row[spec.series] === undefined)
    row[spec.series] = reading.series;
  if (row[spec.time] === undefined) {
    const ms = reading.time ?? arrivedAt;
    row[spec.time] = spec.timeUnit === 's' ? ms / 1000 : ms;
  }
  return row;
}

/** One source's counters, turned into its status entry. */
export class SourceCounters {
  state: SourceState = 'connecting';
  readings = 0;
  reconnects = 0;
  malformed = 0;
  duplicates = 0;
  private lastReadingAt: number | undefined;
  private wasConnected = false;
  private rateFrom = { at: Date.now(), readings: 0 };
  private rate = 0;

  constructor(
    readonly name: string,
    readonly kind: SourceStatus['kind'],
    private readonly queue: ReceivedQueue,
  ) {}

  received(count: number, at: number) {
    this.readings += count;
    this.lastReadingAt = at;
  }

  setState(state: SourceState) {
    if (state === 'connected') {
      if (this.wasConnected && this.state !== 'connected') this.reconnects++;
      this.wasConnected = true;
    }
    this.state = state;
  }

  status(now = Date.now()): SourceStatus {
    // The rate over the last second or more (the status is read every few seconds at most).
    if (now - this.rateFrom.at >= 1_000) {
      this.rate = ((this.readings - this.rateFrom.readings) * 1000) / (now - this.rateFrom.at);
      this.rateFrom = { at: now, readings: this.readings };
    }
    return {
      name: this.name,
      kind: this.kind,
      state: this.state,
      readingsPerSec: Math.round(this.rate * 10) / 10,
      lastReadingAgeMs: this.lastReadingAt === undefined ? null : Math.max(0, now - this.lastReadingAt),
      readings: this.readings,
      reconnects: this.reconnects,
      malformed: this.malformed,
      ...(this.duplicates > 0 ? { duplicates: this.duplicates } : {}),
      dropped: this.queue.dropped,
    };
  }
}

/**
 * The sink a source that cannot pause reports to: readings go straight into the queue
 * (oldest dropped when it is full), malformed ones are refused as unreadable.
 */
export function queueSink(
  queue: ReceivedQueue,
  counters: SourceCounters,
  refuse: (refusal: Refusal, reading: unknown) => void,
  log: (line: string) => void,
  /** The first reading's position: the outbox's resume position, so ids never repeat across restarts. */
  start: number,
): SourceSink {
  let position = start;
  return {
    push(readings, arrivedAt) {
      if (readings.length === 0) return;
      counters.received(readings.length, arrivedAt);
      queue.add({ position, span: readings.length, arrivedAt, arrivedPerf: performance.now(), readings });
      position += readings.length;
    },
    malformed(reason, raw) {
      counters.malformed++;
      refuse({ reason: 'unreadable', message: `${counters.name}: ${reason}` }, raw);
    },
    state: (state) => counters.setState(state),
    log,
  };
}
