/**
 * Continuous inference for a windowed model: one SeriesWindower (a ring buffer of the latest
 * window, shared/timeseries/windower.ts) per series; readings go in as they come, and
 * `flush` runs the model once over every window that became ready, batched across series.
 * Each result covers one window (its series, start and end) and carries the window's truth
 * (its last reading's label) when readings carry labels. A model swap starts every buffer
 * afresh, since the new model's window may differ.
 */
import type { ReadingList } from '../../shared/dataset/reading-table.ts';
import type { Refusal } from '../../shared/dataset/readings.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import type { InferenceResult, WindowManifest } from '../../shared/schemas.ts';
import { parseTime } from '../../shared/timeseries/long-format.ts';
import { PREDICT_BATCH } from '../../shared/timeseries/model.ts';
import { SeriesWindower, type Window, windowsOf, windowValues } from '../../shared/timeseries/windower.ts';
import { type Engine, NoModelError } from '../model/engine.ts';
import { type LoadedModel, predictionAt } from '../model/model.ts';
import { windowBatch, windowInputOf } from '../model/window-model.ts';
import { windowResult } from '../results/result-encoding.ts';

export interface WindowResult {
  result: InferenceResult;
  window: Window;
  version: number;
  /** The tag of the push whose reading completed the window (a live request), if any. */
  tag?: number;
}

/**
 * Bounds on the series a live stream keeps a buffer for: a gateway fed by stdin or HTTP
 * sees whatever series names its senders make up. A series with no reading for `idleMs` is
 * evicted (its buffer dropped; a reading after that starts it afresh); a new series beyond
 * `maxSeries` open ones is refused.
 */
export interface SeriesLimits {
  maxSeries: number;
  idleMs: number;
}

export const DEFAULT_SERIES_LIMITS: SeriesLimits = { maxSeries: 10_000, idleMs: 600_000 };

/** The live series, as the status reports them. */
export interface SeriesStats {
  open: number;
  evicted: number;
  /** Readings refused because `maxSeries` series were open. */
  refusedAtLimit: number;
}

interface Ready {
  window: Window;
  arrivedAt: number;
  tag?: number;
  /** The model input, made with the window. */
  input: Float32Array;
}

/** Most windows one predict takes (tfjs runs them as one batch). */
const MAX_BATCH = PREDICT_BATCH;

/** Bound on a source's readings kept as columns: 8 Mi values (about 32 MiB). */
const COLUMNS_MAX_VALUES = 8 * 2 ** 20;

/** Readings read into columns at a time (ReadingColumns.read reads whole blocks). */
const COLUMN_BLOCK = 4096;

/**
 * A source's readings as typed columns for one window spec: each reading's time, channel
 * values (float32, as a reading pushed on its own is kept), series and label, read from its
 * row once. A looping CSV replay then windows from typed arrays on every pass, as the row
 * replay predicts from rows it transformed once (PreparedRows), with no property lookup or
 * number parsing per reading. Rows are read in blocks when first replayed (`read`), so a
 * replay's first windows do not wait for the whole file to be read.
 */
export class ReadingColumns {
  readonly times: Float64Array;
  readonly values: Float32Array;
  /** Index into `seriesNames` (in the order series are first read). */
  readonly series: Int32Array;
  readonly seriesNames: string[] = [];
  /** Each reading's label (the strings are shared: one per distinct label). */
  readonly labels: (string | undefined)[];
  /** Why a reading cannot be used (its time, a channel), by reading index. */
  readonly refusals = new Map<number, Refusal>();
  /** 1 where `refusals` has an entry (a typed flag is cheaper to test per reading than a Map). */
  readonly refused: Uint8Array;
  private readonly seriesAt = new Map<string, number>();
  /** 1 for each block of COLUMN_BLOCK rows read. */
  private readonly blocksRead: Uint8Array;
  /** Channels per reading. */
  private readonly width: number;

  constructor(
    private readonly rows: ReadingList,
    readonly spec: WindowManifest['spec'],
    readonly labelColumn: string,
  ) {
    const width = spec.channels.length;
    const n = rows.length;
    this.times = new Float64Array(n);
    this.values = new Float32Array(n * width);
    this.series = new Int32Array(n);
    this.labels = new Array(n).fill(undefined);
    this.refused = new Uint8Array(n);
    this.blocksRead = new Uint8Array(Math.ceil(n / COLUMN_BLOCK));
    this.width = width;
  }

  /** Makes sure readings `from` .. `to - 1` are read (their whole blocks). */
  read(from: number, to: number): void {
    const blocks = this.blocksRead;
    for (let b = Math.floor(from / COLUMN_BLOCK); b * COLUMN_BLOCK < to; b++) {
      if (blocks[b] === 1) continue;
      blocks[b] = 1;
      this.readRows(b * COLUMN_BLOCK, Math.min(this.rows.length, (b + 1) * COLUMN_BLOCK));
    }
  }

  /**
   * One pass over the rows, each row's fields in turn (a row's fields sit together in memory:
   * a pass per column cost three times as much); a reading's refusal is its first bad field,
   * as readInto finds it.
   */
  private readRows(from: number, to: number) {
    const { rows, spec, labelColumn, width } = this;
    const { channels, time: timeColumn, series: seriesColumn, timeUnit } = spec;
    const [k0 = '', k1 = '', k2 = '', k3 = ''] = channels;
    let lastSeries: string | undefined;
    let lastSeriesIndex = 0;
    for (let i = from; i < to; i++) {
      const row = rows.at(i) as RawRow;
      let why: Refusal | undefined;
      const rawTime = row[timeColumn];
      const time = timeValue(rawTime, timeUnit);
      if (Number.isFinite(time)) this.times[i] = time;
      else why = timeRefusal(spec, rawTime);
      // A lookup site of its own per channel (up to 4): a site that sees one key stays fast,
      // one site looking up every channel's key in turn cost twice as much.
      if (width > 0) why = this.channel(i, 0, row[k0], why);
      if (width > 1) why = this.channel(i, 1, row[k1], why);
      if (width > 2) why = this.channel(i, 2, row[k2], why);
      if (width > 3) why = this.channel(i, 3, row[k3], why);
      for (let c = 4; c < width; c++) why = this.channel(i, c, row[channels[c] as string], why);
      if (why !== undefined) {
        this.refused[i] = 1;
        this.refusals.set(i, why);
      }
      const name = seriesName(seriesColumn ? row[seriesColumn] : '');
      // Neighbouring readings mostly share their series: look it up only on a change.
      if (name !== lastSeries) {
        lastSeries = name;
        lastSeriesIndex = this.seriesAt.get(name) ?? this.seriesNames.push(name) - 1;
        this.seriesAt.set(name, lastSeriesIndex);
      }
      this.series[i] = lastSeriesIndex;
      this.labels[i] = labelValue(row[labelColumn]);
    }
  }

  /** Stores reading i's value of channel c; returns the reading's refusal (its first bad field). */
  private channel(i: number, c: number, raw: RawRow[string], why: Refusal | undefined): Refusal | undefined {
    const value = channelValue(raw);
    if (Number.isFinite(value)) {
      this.values[i * this.width + c] = value;
      return why;
    }
    return why ?? channelRefusal(this.spec.channels[c] as string, raw);
  }

  /** Whether these columns were read for `spec` and `labelColumn`. */
  fits(spec: WindowManifest['spec'], labelColumn: string): boolean {
    if (spec === this.spec) return labelColumn === this.labelColumn;
    return (
      labelColumn === this.labelColumn &&
      spec.time === this.spec.time &&
      spec.series === this.spec.series &&
      spec.timeUnit === this.spec.timeUnit &&
      spec.channels.join('\u0000') === this.spec.channels.join('\u0000')
    );
  }
}

/**
 * A replay's readings as columns for the serving model's spec: read on first use and again
 * only when a model with another time, series, channels or label column serves; undefined
 * when the source is too large to keep twice. One per replay run, as PreparedRows is for rows.
 */
export class ReplayReadings {
  private columns: ReadingColumns | undefined;

  constructor(readonly rows: ReadingList) {}

  columnsFor(spec: WindowManifest['spec'], labelColumn: string): ReadingColumns | undefined {
    if (this.rows.length * (spec.channels.length + 4) > COLUMNS_MAX_VALUES) return undefined;
    if (!this.columns?.fits(spec, labelColumn))
      this.columns = new ReadingColumns(this.rows, spec, labelColumn);
    return this.columns;
  }
}

export class WindowStream {
  private readonly windowers = new Map<string, SeriesWindower>();
  /** Windows made and not yet classified, oldest first. */
  private ready: Ready[] = [];
  /** Every predict's input batch, reused (see windowBatch). */
  private readonly batchInput = { x: new Float32Array(0) };
  private owner: LoadedModel | undefined;
  private arrivedAt = 0;
  private reading: Reading = { series: '', time: 0, values: new Float32Array(0), label: undefined };
  /** Bumped whenever the windowers are dropped. */
  private generation = 0;
  /** pushRows' windowers by the columns' series index, while the windowers last. */
  private indexed: {
    columns: ReadingColumns | undefined;
    generation: number;
    windowers: (SeriesWindower | undefined)[];
  } = { columns: undefined, generation: -1, windowers: [] };
  /** Readings refused (out of time order, repeated, not numeric). */
  refused = 0;
  /** Windows completed so far (a submitter sees whether its reading completed one). */
  completed = 0;
  /** The tag of the reading being pushed (live requests), carried by the windows it completes. */
  private tag: number | undefined;
  /** Under `limits`: when each series last had a reading (ms, `now`). */
  private readonly seenAt = new Map<string, number>();
  private lastSweep = 0;
  private readonly seriesStats: SeriesStats = { open: 0, evicted: 0, refusedAtLimit: 0 };

  constructor(
    private readonly engine: Engine,
    /** A result's id from its window (stable for the same readings). */
    private readonly idOf: (window: Window) => string,
    /** Bounds for a live stream (the replay's series are bounded by its file). */
    private readonly limits?: SeriesLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** The open series, and how many were evicted or refused at the limit. */
  get series(): SeriesStats {
    return { ...this.seriesStats, open: this.windowers.size };
  }

  /**
   * Under `limits`: evicts series idle for `idleMs` (looked at every tenth of it, or when a
   * new series finds the limit reached); false when `series` is new and may not open.
   */
  private admit(series: string): boolean {
    const limits = this.limits;
    if (!limits) return true;
    const now = this.now();
    const isNew = !this.windowers.has(series);
    if (now - this.lastSweep >= limits.idleMs / 10 || (isNew && this.windowers.size >= limits.maxSeries)) {
      this.lastSweep = now;
      for (const [name, seen] of this.seenAt) {
        if (now - seen < limits.idleMs) continue;
        this.seenAt.delete(name);
        this.windowers.delete(name);
        this.seriesStats.evicted++;
        this.generation++;
      }
    }
    if (isNew && this.windowers.size >= limits.maxSeries) {
      this.seriesStats.refusedAtLimit++;
      return false;
    }
    this.seenAt.set(series, now);
    return true;
  }

  /** The serving model's window block; a swap to another model empties the buffers. */
  private current: { model: LoadedModel; window: WindowManifest } | undefined;

  private window(): { model: LoadedModel; window: WindowManifest } {
    const model = this.engine.serving;
    if (model && model === this.current?.model) return this.current;
    if (!model) throw new NoModelError();
    const window = model.manifest.window;
    if (!window) throw new Error(`model v${model.version} classifies single readings, not windows`);
    if (model !== this.owner) {
      this.clearWindowers();
      this.ready = [];
      this.owner = model;
    }
    this.current = { model, window };
    return this.current;
  }

  /**
   * Feeds one reading; returns why it was refused, or undefined. The windows it completes
   * carry `tag` into their results.
   */
  push(row: RawRow, arrivedAt = performance.now(), tag?: number): Refusal | undefined {
    const { model, window } = this.window();
    const { spec } = window;
    // One reading object reused (the windower copies the values at once): no garbage per reading.
    if (this.reading.values.length !== spec.channels.length)
      this.reading.values = new Float32Array(spec.channels.length);
    const reading = this.reading;
    const refused = readInto(reading, row, spec, model.manifest.preprocessing.label);
    if (refused) {
      this.refused++;
      return refused;
    }
    if (!this.admit(reading.series)) {
      this.refused++;
      return {
        reason: 'series-limit',
        message: `series '${reading.series}' would be one more than the ${this.limits?.maxSeries} open series this gateway keeps (maxSeries): older series close after ${Math.round((this.limits?.idleMs ?? 0) / 1000)} s without readings (seriesIdleSeconds)`,
      };
    }
    const windower = this.windowerOf(reading.series);
    this.arrivedAt = arrivedAt;
    this.tag = tag;
    const outcome = windower.push(reading.time, reading.values, reading.label);
    this.tag = undefined;
    if (outcome === 'ok') return undefined;
    this.refused++;
    return refusal(outcome, windower);
  }

  /** The series' windower, made on its first reading. */
  private windowerOf(series: string): SeriesWindower {
    let windower = this.windowers.get(series);
    if (!windower) {
      const spec = (this.current as { window: WindowManifest }).window.spec;
      const input = windowInputOf((this.current as { model: LoadedModel }).model);
      // The model input is made with the window, while its values are at hand.
      windower = new SeriesWindower(series, spec, (w) => {
        const x = windowValues(input.width);
        input.into(w, x, 0);
        this.completed++;
        this.ready.push({
          window: w,
          arrivedAt: this.arrivedAt,
          input: x,
          ...(this.tag !== undefined ? { tag: this.tag } : {}),
        });
      });
      this.windowers.set(series, windower);
    }
    return windower;
  }

  /** Every windower is gone (a swap, the end of a pass): the per-index cache of pushRows with them. */
  private clearWindowers() {
    this.windowers.clear();
    this.seenAt.clear();
    this.generation++;
  }

  /**
   * Feeds readings `from` .. `to - 1` of a source that keeps its readings (the CSV replay),
   * in order, exactly as `push` would one by one, but from their typed columns;
   * `onRefused` hears of each reading refused and why.
   */
  pushRows(
    readings: ReplayReadings,
    from: number,
    to: number,
    arrivedAt = performance.now(),
    onRefused?: (index: number, why: Refusal) => void,
  ): void {
    const { model, window } = this.window();
    const columns = readings.columnsFor(window.spec, model.manifest.preprocessing.label);
    if (!columns) {
      for (let i = from; i < to; i++) {
        const why = this.push(readings.rows.at(i) as RawRow, arrivedAt);
        if (why) onRefused?.(i, why);
      }
      return;
    }
    if (this.indexed.columns !== columns || this.indexed.generation !== this.generation)
      this.indexed = { columns, generation: this.generation, windowers: [] };
    const windowers = this.indexed.windowers;
    columns.read(from, to);
    const { times, values, series, labels, refused, seriesNames } = columns;
    this.arrivedAt = arrivedAt;
    for (let i = from; i < to; ) {
      if (refused[i] === 1) {
        this.refused++;
        onRefused?.(i, columns.refusals.get(i) as Refusal);
        i++;
        continue;
      }
      // The run of readings of this series (a file holds a series' readings together, or a few interleaved).
      const s = series[i] as number;
      let end = i + 1;
      while (end < to && series[end] === s && refused[end] === 0) end++;
      let windower = windowers[s];
      if (!windower) {
        windower = this.windowerOf(seriesNames[s] as string);
        windowers[s] = windower;
      }
      while (i < end) {
        i = windower.pushRun(times, values, labels, i, end);
        if (i < end) {
          this.refused++;
          onRefused?.(i, refusal(windower.refusal, windower));
          i++;
        }
      }
    }
  }

  /** The window `rows` make on their own (the last full one, if they span more); one result. */
  classifyWhole(rows: readonly RawRow[], arrivedAt = performance.now()): WindowResult {
    const { model, window } = this.window();
    const { spec } = window;
    const readings = rows.map((row, i) => {
      const reading = readingOf(row, spec, model.manifest.preprocessing.label);
      if ('reason' in reading)
        throw new RefusedReading({ reason: reading.reason, message: `reading ${i + 1}: ${reading.message}` });
      return reading;
    });
    const series = readings[0]?.series ?? '';
    const times = Float64Array.from(readings, (r) => r.time);
    for (let i = 1; i < times.length; i++)
      if ((times[i] as number) <= (times[i - 1] as number))
        throw new Error(`reading ${i + 1}: time ${times[i]} is not after the reading before it`);
    const values = Float32Array.from(readings.flatMap((r) => Array.from(r.values)));
    const cut = windowsOf(
      series,
      spec,
      times,
      values,
      readings.map((r) => r.label),
    );
    const last = cut[cut.length - 1];
    if (!last)
      throw new Error(
        `${rows.length} readings over ${times.length ? (times[times.length - 1] as number) - (times[0] as number) : 0} ms make no window: a window is ${spec.samples} samples at ${spec.frequencyHz} Hz, with no gap over ${spec.maxGapMs} ms`,
      );
    const input = windowInputOf(model);
    const x = windowValues(input.width);
    input.into(last, x, 0);
    const [result] = this.classify([{ window: last, arrivedAt, input: x }]);
    return result as WindowResult;
  }

  /** Windows a flush would classify now. */
  get pending(): number {
    return this.ready.length;
  }

  /** Runs the model on every ready window (one predict per up to 1,024), oldest first. */
  flush(): WindowResult[] {
    if (this.ready.length === 0) return [];
    this.window();
    const taken = this.ready;
    this.ready = [];
    return this.classifyAll(taken);
  }

  private classifyAll(taken: readonly Ready[]): WindowResult[] {
    if (taken.length <= MAX_BATCH) return taken.length ? this.classify(taken) : [];
    const out: WindowResult[] = [];
    for (let at = 0; at < taken.length; at += MAX_BATCH)
      for (const result of this.classify(taken.slice(at, at + MAX_BATCH))) out.push(result);
    return out;
  }

  /** Ends every series' segment (a short one is padded under `pad`), e.g. when a replay loops. */
  endAll(): void {
    for (const windower of this.windowers.values()) windower.end();
    this.clearWindowers();
  }

  private classify(batch: readonly Ready[]): WindowResult[] {
    const windows = batch.map((item) => item.window);
    let earliest = Number.POSITIVE_INFINITY;
    for (const item of batch) if (item.arrivedAt < earliest) earliest = item.arrivedAt;
    const inputs = batch.map((item) => item.input);
    const classified = this.engine.classifyPrepared(
      windows.length,
      (model) => windowBatch(model, windows, inputs, this.batchInput),
      earliest,
    );
    const done = performance.now();
    const ts = Date.now();
    const { version } = classified;
    const out: WindowResult[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { window, arrivedAt, tag } = batch[i] as Ready;
      const inferred = { ...predictionAt(classified, i), version, latencyMs: done - arrivedAt };
      out[i] = {
        result: windowResult(this.idOf(window), inferred, window.label, window, ts),
        window,
        version,
        ...(tag !== undefined ? { tag } : {}),
      };
    }
    return out;
  }
}

function refusal(outcome: 'duplicate' | 'out-of-order', windower: SeriesWindower): Refusal {
  return { reason: 'out-of-order', message: refusalText(outcome, windower.series, windower.latest) };
}

/** A reading the window stream refused, with its reason (a live request answers it). */
export class RefusedReading extends Error {
  readonly reason: Refusal['reason'];

  constructor(refusal: Refusal) {
    super(refusal.message);
    this.name = 'RefusedReading';
    this.reason = refusal.reason;
  }
}

function refusalText(outcome: 'duplicate' | 'out-of-order', series: string, latest: number): string {
  return `${outcome === 'duplicate' ? 'repeats' : 'is before'} the latest reading of series '${series}' (${latest}): readings of a series must come in time order`;
}

interface Reading {
  series: string;
  time: number;
  values: Float32Array;
  label: string | undefined;
}

/** A reading's time (ms), NaN when it is none. */
function timeValue(raw: RawRow[string], unit: 'ms' | 's'): number {
  return raw === undefined || raw === null ? Number.NaN : parseTime(raw, unit);
}

function timeRefusal(spec: WindowManifest['spec'], raw: RawRow[string]): Refusal {
  return {
    reason: 'unreadable',
    message: `'${spec.time}' must be a time (epoch ${spec.timeUnit} or ISO 8601), got ${JSON.stringify(raw ?? null)}`,
  };
}

/** A channel's value, NaN when it is not a number. */
function channelValue(raw: RawRow[string]): number {
  return typeof raw === 'number'
    ? raw
    : typeof raw === 'string' && raw.trim() !== ''
      ? Number(raw)
      : Number.NaN;
}

function channelRefusal(channel: string, raw: RawRow[string]): Refusal {
  return {
    reason: 'missing-features',
    message: `channel '${channel}' must be a number, got ${JSON.stringify(raw ?? null)}`,
  };
}

function seriesName(raw: RawRow[string]): string {
  return typeof raw === 'string' ? raw : String(raw ?? '');
}

function labelValue(raw: RawRow[string]): string | undefined {
  return typeof raw === 'string'
    ? raw || undefined
    : raw === undefined || raw === null
      ? undefined
      : String(raw);
}

/** Reads a reading's time, series, channel values and label into `into`; returns why it cannot, or undefined. */
function readInto(
  into: Reading,
  row: RawRow,
  spec: WindowManifest['spec'],
  labelColumn: string,
): Refusal | undefined {
  const rawTime = row[spec.time];
  const time = timeValue(rawTime, spec.timeUnit);
  if (!Number.isFinite(time)) return timeRefusal(spec, rawTime);
  const { channels } = spec;
  for (let c = 0; c < channels.length; c++) {
    const raw = row[channels[c] as string];
    const value = channelValue(raw);
    if (!Number.isFinite(value)) return channelRefusal(channels[c] as string, raw);
    into.values[c] = value;
  }
  into.series = seriesName(spec.series ? row[spec.series] : '');
  into.time = time;
  into.label = labelValue(row[labelColumn]);
  return undefined;
}

/** A reading on its own (a whole window's readings are kept together). */
function readingOf(row: RawRow, spec: WindowManifest['spec'], labelColumn: string): Reading | Refusal {
  const reading: Reading = {
    series: '',
    time: 0,
    values: new Float32Array(spec.channels.length),
    label: undefined,
  };
  return readInto(reading, row, spec, labelColumn) ?? reading;
}
