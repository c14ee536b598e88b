/**
 * Continuous inference for a windowed model: one SeriesWindower (a ring buffer of the latest
 * window, shared/timeseries/windower.ts) per series; readings go in as they come, and
 * `flush` runs the model once over every window that became ready, batched across series.
 * Each result covers one window (its series, start and end) and carries the window's truth
 * (its last reading's label) when readings carry labels. A model swap starts every buffer
 * afresh, since the new model's window may differ.
 */
import type { RawRow } from '../shared/preprocess.ts';
import type { InferenceResult, WindowManifest } from '../shared/schemas.ts';
import { parseTime } from '../shared/timeseries/long-format.ts';
import { PREDICT_BATCH } from '../shared/timeseries/model.ts';
import { SeriesWindower, type Window, windowsOf } from '../shared/timeseries/windower.ts';
import { type Engine, NoModelError } from './engine.ts';
import type { LoadedModel } from './model.ts';
import { windowResult } from './result-encoding.ts';
import { windowBatch } from './window-model.ts';

export interface WindowResult {
  result: InferenceResult;
  window: Window;
  version: number;
}

interface Ready {
  window: Window;
  arrivedAt: number;
}

/** Most windows one predict takes (tfjs runs them as one batch). */
const MAX_BATCH = PREDICT_BATCH;

/** Bound on a source's readings kept as columns: 8 Mi values (about 32 MiB). */
const COLUMNS_MAX_VALUES = 8 * 2 ** 20;

/**
 * A source's readings as typed columns for one window spec: each reading's time, channel
 * values (float32, as a reading pushed on its own is kept), series and label, read from its
 * row once. A looping CSV replay then windows from typed arrays on every pass, as the row
 * replay predicts from rows it transformed once (PreparedRows), with no property lookup or
 * number parsing per reading.
 */
export class ReadingColumns {
  readonly times: Float64Array;
  readonly values: Float32Array;
  /** Index into `seriesNames`. */
  readonly series: Int32Array;
  readonly seriesNames: string[] = [];
  /** Each reading's label (the strings are shared: one per distinct label). */
  readonly labels: (string | undefined)[];
  /** Why a reading cannot be used (its time, a channel), by reading index. */
  readonly refusals = new Map<number, string>();
  /** 1 where `refusals` has an entry (a typed flag is cheaper to test per reading than a Map). */
  readonly refused: Uint8Array;

  constructor(
    rows: readonly RawRow[],
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
    // Column by column, each loop reading one property of every row (one key per lookup site
    // is what keeps them fast); a reading's refusal is its first bad field, as readInto finds it.
    const refuse = (i: number, why: string) => {
      if (this.refused[i] === 1) return;
      this.refused[i] = 1;
      this.refusals.set(i, why);
    };
    const timeColumn = spec.time;
    for (let i = 0; i < n; i++) {
      const raw = (rows[i] as RawRow)[timeColumn];
      const time = timeValue(raw, spec.timeUnit);
      if (Number.isFinite(time)) this.times[i] = time;
      else refuse(i, timeRefusal(spec, raw));
    }
    spec.channels.forEach((channel, c) => {
      for (let i = 0; i < n; i++) {
        const raw = (rows[i] as RawRow)[channel];
        const value = channelValue(raw);
        if (Number.isFinite(value)) this.values[i * width + c] = value;
        else refuse(i, channelRefusal(channel, raw));
      }
    });
    const seriesAt = new Map<string, number>();
    const seriesColumn = spec.series;
    let lastSeries: string | undefined;
    let lastSeriesIndex = 0;
    for (let i = 0; i < n; i++) {
      const name = seriesName(seriesColumn ? (rows[i] as RawRow)[seriesColumn] : '');
      // Neighbouring readings mostly share their series: look it up only on a change.
      if (name !== lastSeries) {
        lastSeries = name;
        lastSeriesIndex = seriesAt.get(name) ?? this.seriesNames.push(name) - 1;
        seriesAt.set(name, lastSeriesIndex);
      }
      this.series[i] = lastSeriesIndex;
    }
    for (let i = 0; i < n; i++) this.labels[i] = labelValue((rows[i] as RawRow)[labelColumn]);
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

  constructor(readonly rows: readonly RawRow[]) {}

  columnsFor(spec: WindowManifest['spec'], labelColumn: string): ReadingColumns | undefined {
    if (this.rows.length * (spec.channels.length + 4) > COLUMNS_MAX_VALUES) return undefined;
    if (!this.columns?.fits(spec, labelColumn))
      this.columns = new ReadingColumns(this.rows, spec, labelColumn);
    return this.columns;
  }
}

export class WindowStream {
  private readonly windowers = new Map<string, SeriesWindower>();
  private ready: Ready[] = [];
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

  constructor(
    private readonly engine: Engine,
    /** A result's id from its window (stable for the same readings). */
    private readonly idOf: (window: Window) => string,
  ) {}

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

  /** Feeds one reading; returns why it was refused, or undefined. */
  push(row: RawRow, arrivedAt = performance.now()): string | undefined {
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
    const windower = this.windowerOf(reading.series);
    this.arrivedAt = arrivedAt;
    const outcome = windower.push(reading.time, reading.values, reading.label);
    if (outcome === 'ok') return undefined;
    this.refused++;
    return refusal(outcome, windower);
  }

  /** The series' windower, made on its first reading. */
  private windowerOf(series: string): SeriesWindower {
    let windower = this.windowers.get(series);
    if (!windower) {
      const spec = (this.current as { window: WindowManifest }).window.spec;
      windower = new SeriesWindower(series, spec, (w) =>
        this.ready.push({ window: w, arrivedAt: this.arrivedAt }),
      );
      this.windowers.set(series, windower);
    }
    return windower;
  }

  /** Every windower is gone (a swap, the end of a pass): the per-index cache of pushRows with them. */
  private clearWindowers() {
    this.windowers.clear();
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
    onRefused?: (index: number, why: string) => void,
  ): void {
    const { model, window } = this.window();
    const columns = readings.columnsFor(window.spec, model.manifest.preprocessing.label);
    if (!columns) {
      for (let i = from; i < to; i++) {
        const why = this.push(readings.rows[i] as RawRow, arrivedAt);
        if (why) onRefused?.(i, why);
      }
      return;
    }
    if (this.indexed.columns !== columns || this.indexed.generation !== this.generation)
      this.indexed = { columns, generation: this.generation, windowers: [] };
    const windowers = this.indexed.windowers;
    const { times, values, series, labels, refused, seriesNames } = columns;
    this.arrivedAt = arrivedAt;
    for (let i = from; i < to; ) {
      if (refused[i] === 1) {
        this.refused++;
        onRefused?.(i, columns.refusals.get(i) as string);
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
      if (typeof reading === 'string') throw new Error(`reading ${i + 1}: ${reading}`);
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
    const [result] = this.classify([{ window: last, arrivedAt }]);
    return result as WindowResult;
  }

  /** Windows waiting for `flush`. */
  get pending(): number {
    return this.ready.length;
  }

  /** Runs the model on every ready window (one predict per up to 1,024), oldest first. */
  flush(): WindowResult[] {
    if (this.ready.length === 0) return [];
    this.window();
    const out: WindowResult[] = [];
    while (this.ready.length > 0) out.push(...this.classify(this.ready.splice(0, MAX_BATCH)));
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
    const classified = this.engine.classifyPrepared(
      windows.length,
      (model) => windowBatch(model, windows),
      earliest,
    );
    const done = performance.now();
    const ts = Date.now();
    const { labels, best, confidence, version } = classified;
    const out: WindowResult[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { window, arrivedAt } = batch[i] as Ready;
      const top = best[i] ?? 0;
      const inferred = {
        label: labels[top] ?? String(top),
        confidence: confidence[i] ?? Number.NaN,
        version,
        latencyMs: done - arrivedAt,
      };
      out[i] = {
        result: windowResult(this.idOf(window), inferred, window.label, window, ts),
        window,
        version,
      };
    }
    return out;
  }
}

function refusal(outcome: 'duplicate' | 'out-of-order', windower: SeriesWindower): string {
  return `${outcome === 'duplicate' ? 'repeats' : 'is before'} the latest reading of series '${windower.series}' (${windower.latest}): readings of a series must come in time order`;
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

function timeRefusal(spec: WindowManifest['spec'], raw: RawRow[string]): string {
  return `'${spec.time}' must be a time (epoch ${spec.timeUnit} or ISO 8601), got ${JSON.stringify(raw ?? null)}`;
}

/** A channel's value, NaN when it is not a number. */
function channelValue(raw: RawRow[string]): number {
  return typeof raw === 'number'
    ? raw
    : typeof raw === 'string' && raw.trim() !== ''
      ? Number(raw)
      : Number.NaN;
}

function channelRefusal(channel: string, raw: RawRow[string]): string {
  return `channel '${channel}' must be a number, got ${JSON.stringify(raw ?? null)}`;
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
): string | undefined {
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
function readingOf(row: RawRow, spec: WindowManifest['spec'], labelColumn: string): Reading | string {
  const reading: Reading = {
    series: '',
    time: 0,
    values: new Float32Array(spec.channels.length),
    label: undefined,
  };
  return readInto(reading, row, spec, labelColumn) ?? reading;
}
