/**
 * Long-format readings (one reading a row: a time, an optional series, numeric channels, and
 * a label unless the model is an anomaly model) collected into one time-ordered array per
 * series, with the rejections that make a window a lie: times that go backwards or repeat
 * within a series, a channel that is not a number, a time that is not a time.
 */
import { InputError } from '../errors.ts';
import { isMissing } from '../preprocess.ts';
import type { WindowSpec } from './spec.ts';

export interface SeriesReadings {
  name: string;
  /** Epoch ms, strictly ascending. */
  times: Float64Array;
  /** times.length x channels values, row-major. */
  values: Float32Array;
  labels: (string | undefined)[];
}

export interface CollectedReadings {
  channels: string[];
  series: SeriesReadings[];
  readings: number;
}

interface Growing {
  name: string;
  times: number[];
  values: number[];
  labels: (string | undefined)[];
  lastPlace: string;
}

/** Parses a time cell: a number (ms, or s with timeUnit 's') or ISO 8601 text; NaN when neither. */
export function parseTime(text: string | number, unit: 'ms' | 's'): number {
  const value = typeof text === 'number' ? text : text.trim() === '' ? Number.NaN : Number(text);
  if (Number.isFinite(value)) return unit === 's' ? value * 1000 : value;
  if (typeof text !== 'string') return Number.NaN;
  return Date.parse(text);
}

export class LongFormatCollector {
  private readonly timeAt: number;
  private readonly seriesAt: number;
  private readonly labelAt: number;
  private readonly channelAt: number[];
  readonly channels: string[];
  private readonly bySeries = new Map<string, Growing>();
  private readings = 0;

  constructor(
    header: readonly string[],
    private readonly spec: Pick<WindowSpec, 'time' | 'series' | 'timeUnit'>,
    label: string,
    channels: readonly string[] | undefined,
    private readonly where = '',
  ) {
    const need = (column: string, what: string) => {
      const at = header.indexOf(column);
      if (at < 0)
        throw new InputError(
          `${where}the ${what} column '${column}' is not in the header (${header.join(', ')}): fix "window" in edgeloop.json or the flags`,
        );
      return at;
    };
    this.timeAt = need(spec.time, 'time');
    this.seriesAt = spec.series ? need(spec.series, 'series') : -1;
    // No label (an anomaly model's readings): '' reads none.
    this.labelAt = label ? need(label, 'label') : -1;
    const taken = new Set([spec.time, spec.series, ...(label ? [label] : [])]);
    this.channels = channels ? [...channels] : header.filter((column) => !taken.has(column));
    if (this.channels.length === 0)
      throw new InputError(
        `${where}no channel columns: a long-format dataset needs numeric columns besides time, series and label`,
      );
    this.channelAt = this.channels.map((column) => {
      if (taken.has(column))
        throw new InputError(
          `${where}'${column}' cannot be both a channel and the time, series or label column`,
        );
      return need(column, 'channel');
    });
  }

  /** One reading (cells in header order); `place` names it in rejections ("data row 12"). */
  add(cells: readonly string[], place: string): void {
    const timeText = cells[this.timeAt] ?? '';
    const time = parseTime(timeText, this.spec.timeUnit);
    if (!Number.isFinite(time))
      throw new InputError(
        `${this.where}${place}: time '${timeText}' in column '${this.spec.time}' is neither a number nor an ISO 8601 time`,
      );
    const name = this.seriesAt >= 0 ? (cells[this.seriesAt] ?? '').trim() : '';
    let series = this.bySeries.get(name);
    if (!series) {
      series = { name, times: [], values: [], labels: [], lastPlace: place };
      this.bySeries.set(name, series);
    }
    const previous = series.times[series.times.length - 1];
    if (previous !== undefined && time <= previous) {
      const which = name ? ` in series '${name}'` : '';
      throw new InputError(
        time === previous
          ? `${this.where}${place}: time ${timeText}${which} repeats the reading at ${series.lastPlace}: keep one reading per time and series`
          : `${this.where}${place}: time ${timeText}${which} is before the reading at ${series.lastPlace} (${previous}): sort the readings by series and time`,
      );
    }
    this.channelAt.forEach((at, c) => {
      const text = cells[at] ?? '';
      const value = Number(text);
      if (isMissing(text) || text.trim() === '' || !Number.isFinite(value))
        throw new InputError(
          `${this.where}${place}: channel '${this.channels[c]}' is '${text}', not a number: every channel of every reading must be numeric (drop the column, or list the channels in "features")`,
        );
      series.values.push(value);
    });
    const label = this.labelAt >= 0 ? cells[this.labelAt] : undefined;
    series.times.push(time);
    series.labels.push(label === undefined || isMissing(label) ? undefined : label.trim());
    series.lastPlace = place;
    this.readings++;
  }

  finish(): CollectedReadings {
    const series = [...this.bySeries.values()]
      .map((s) => ({
        name: s.name,
        times: Float64Array.from(s.times),
        values: Float32Array.from(s.values),
        labels: s.labels,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { channels: this.channels, series, readings: this.readings };
  }
}

/** The median interval between readings of one series (ms), from up to 10,000 of them. */
export function medianInterval(times: Float64Array): number {
  const n = times.length - 1;
  if (n < 1) return Number.NaN;
  const step = Math.max(1, Math.floor(n / 10_000));
  const deltas: number[] = [];
  for (let i = 0; i < n; i += step) deltas.push((times[i + 1] as number) - (times[i] as number));
  deltas.sort((a, b) => a - b);
  return deltas[Math.floor(deltas.length / 2)] as number;
}

/** A frequency from a median interval, rounded to a readable value (an integer from 10 Hz up). */
export function frequencyFromInterval(intervalMs: number): number {
  const hz = 1000 / intervalMs;
  return hz >= 10 ? Math.round(hz) : Number(hz.toPrecision(3));
}

/** A long-format CSV text's readings, collected by series (tests, benches and small files). */
export function collectCsv(
  csv: string,
  spec: Pick<WindowSpec, 'time' | 'series' | 'timeUnit'>,
  label: string,
  channels: readonly string[] | undefined,
): CollectedReadings {
  const [head, ...lines] = csv.trim().split('\n');
  const collector = new LongFormatCollector((head ?? '').split(','), spec, label, channels);
  lines.forEach((line, i) => {
    collector.add(line.split(','), `row ${i + 1}`);
  });
  return collector.finish();
}
