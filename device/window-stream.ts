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
import { SeriesWindower, type Window, windowsOf } from '../shared/timeseries/windower.ts';
import { type Engine, NoModelError } from './engine.ts';
import type { LoadedModel } from './model.ts';
import { toResult } from './result-encoding.ts';
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

/** Most windows one predict takes. */
const MAX_BATCH = 1024;

export class WindowStream {
  private readonly windowers = new Map<string, SeriesWindower>();
  private ready: Ready[] = [];
  private owner: LoadedModel | undefined;
  private arrivedAt = 0;
  private reading: Reading = { series: '', time: 0, values: new Float32Array(0), label: undefined };
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
      this.windowers.clear();
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
    let windower = this.windowers.get(reading.series);
    if (!windower) {
      windower = new SeriesWindower(reading.series, spec, (w) =>
        this.ready.push({ window: w, arrivedAt: this.arrivedAt }),
      );
      this.windowers.set(reading.series, windower);
    }
    this.arrivedAt = arrivedAt;
    const outcome = windower.push(reading.time, reading.values, reading.label);
    if (outcome === 'ok') return undefined;
    this.refused++;
    return `${outcome === 'duplicate' ? 'repeats' : 'is before'} the latest reading of series '${reading.series}' (${windower.latest}): readings of a series must come in time order`;
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
    this.windowers.clear();
  }

  private classify(batch: readonly Ready[]): WindowResult[] {
    const windows = batch.map((item) => item.window);
    const earliest = Math.min(...batch.map((item) => item.arrivedAt));
    const classified = this.engine.classifyPrepared(
      windows.length,
      (model) => windowBatch(model, windows),
      earliest,
    );
    const done = performance.now();
    const ts = Date.now();
    return batch.map(({ window, arrivedAt }, i) => {
      const best = classified.best[i] ?? 0;
      const result = toResult(
        this.idOf(window),
        {
          label: classified.labels[best] ?? String(best),
          confidence: classified.confidence[i] ?? Number.NaN,
          version: classified.version,
          latencyMs: done - arrivedAt,
        },
        window.label,
        ts,
      );
      result.window = { series: window.series, start: Math.round(window.start), end: Math.round(window.end) };
      return { result, window, version: classified.version };
    });
  }
}

interface Reading {
  series: string;
  time: number;
  values: Float32Array;
  label: string | undefined;
}

/** Reads a reading's time, series, channel values and label into `into`; returns why it cannot, or undefined. */
function readInto(
  into: Reading,
  row: RawRow,
  spec: WindowManifest['spec'],
  labelColumn: string,
): string | undefined {
  const rawTime = row[spec.time];
  const time = rawTime === undefined || rawTime === null ? Number.NaN : parseTime(rawTime, spec.timeUnit);
  if (!Number.isFinite(time))
    return `'${spec.time}' must be a time (epoch ${spec.timeUnit} or ISO 8601), got ${JSON.stringify(rawTime ?? null)}`;
  const { channels } = spec;
  for (let c = 0; c < channels.length; c++) {
    const raw = row[channels[c] as string];
    const value =
      typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
    if (!Number.isFinite(value))
      return `channel '${channels[c]}' must be a number, got ${JSON.stringify(raw ?? null)}`;
    into.values[c] = value;
  }
  const series = spec.series ? row[spec.series] : '';
  into.series = typeof series === 'string' ? series : String(series ?? '');
  into.time = time;
  const label = row[labelColumn];
  into.label =
    typeof label === 'string'
      ? label || undefined
      : label === undefined || label === null
        ? undefined
        : String(label);
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
