/**
 * MQTT payloads into readings. Three formats, as sensors and bridges send them:
 * - `json`: one reading `{"time": ..., "temp": 21.5}` or an array of them;
 * - `csv`: one or more CSV lines under a header declared in the settings;
 * - `value`: a bare number, its channel (and series) named by topic levels, e.g. the
 *   template `plant/{series}/pump/{channel}`. Such messages carry one channel each; they are
 *   merged per series into readings (see ChannelMerger).
 * Every reading is read by the dataset rules (shared/dataset/readings.ts).
 */
import { parseCsvReadings, parseReading } from '../../../shared/dataset/readings.ts';
import { InputError } from '../../../shared/errors.ts';
import type { LiveReading } from '../live/live-source.ts';

export interface DecodeOptions {
  format: 'json' | 'csv' | 'value';
  /** `csv`: the column names of the lines, in order. */
  csvHeader?: readonly string[];
  csvDelimiter?: string;
  /** Levels named `{series}` and `{channel}` take those from the topic; `+` matches any level. */
  topicTemplate?: string;
  /** The payload field that names the series (taken out of the channels). */
  seriesField?: string;
  /** The payload field that holds the reading's time (taken out of the channels). */
  timeField: string;
  /** A numeric time in milliseconds (default) or seconds since the epoch. */
  timeUnit: 'ms' | 's';
}

/** A topic template's levels: literal text, `+`, `{series}` or `{channel}`. */
export function templateLevels(template: string): string[] {
  const levels = template.split('/');
  for (const level of levels)
    if (level.includes('{') && level !== '{series}' && level !== '{channel}')
      throw new InputError(
        `topic template '${template}': a level is either text, '+', '{series}' or '{channel}' (e.g. plant/{series}/pump/{channel})`,
      );
  return levels;
}

/** The subscription filter a template stands for: its placeholders become '+'. */
export function templateFilter(template: string): string {
  return templateLevels(template)
    .map((level) => (level.startsWith('{') ? '+' : level))
    .join('/');
}

/** The series and channel a topic names under `template` (undefined where it names none). */
export function topicNames(levels: readonly string[], topic: string): { series?: string; channel?: string } {
  const parts = topic.split('/');
  const out: { series?: string; channel?: string } = {};
  levels.forEach((level, i) => {
    if (level === '{series}') out.series = parts[i];
    else if (level === '{channel}') out.channel = parts[i];
  });
  return out;
}

/** A time field's value as epoch ms. */
export function parseTimeValue(value: unknown, field: string, unit: 'ms' | 's'): number {
  const number =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && value.trim() !== ''
        ? Number(value)
        : Number.NaN;
  if (Number.isFinite(number)) return unit === 's' ? number * 1000 : number;
  const parsed = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(parsed))
    throw new InputError(
      `field '${field}' must be a time: epoch ${unit === 's' ? 'seconds' : 'milliseconds'} or ISO 8601 text (e.g. "2026-12-07T14:00:00Z"), got ${JSON.stringify(value)}`,
    );
  return parsed;
}

export class PayloadDecoder {
  private readonly levels: string[] | undefined;

  constructor(private readonly o: DecodeOptions) {
    this.levels = o.topicTemplate ? templateLevels(o.topicTemplate) : undefined;
    if (o.format === 'csv' && !o.csvHeader?.length)
      throw new InputError(
        'format csv needs csvHeader: the column names of the lines, e.g. ["time","temp","rpm"]',
      );
    if (o.format === 'value' && !this.levels?.includes('{channel}'))
      throw new InputError(
        'format value needs a topicTemplate with a {channel} level, e.g. plant/{series}/pump/{channel}: a bare number is one channel',
      );
  }

  /** The readings of one message; throws InputError with the reason when it cannot be read. */
  decode(topic: string, payload: Buffer): LiveReading[] {
    const names = this.levels ? topicNames(this.levels, topic) : {};
    const text = payload.toString('utf8');
    if (this.o.format === 'value') {
      const value = text.trim();
      if (value === '' || !Number.isFinite(Number(value)))
        throw new InputError(
          `the payload on ${topic} must be a number (format value), got ${JSON.stringify(text.slice(0, 40))}`,
        );
      return [
        {
          ...(names.series !== undefined ? { series: names.series } : {}),
          values: { [names.channel as string]: Number(value) },
        },
      ];
    }
    let objects: unknown[];
    if (this.o.format === 'csv') {
      const d = this.o.csvDelimiter ?? ',';
      objects = parseCsvReadings(
        `${(this.o.csvHeader as string[]).join(d)}\n${text}`,
        `the payload on ${topic}: `,
      ).rows;
      if (objects.length === 0) throw new InputError(`the payload on ${topic} holds no CSV line`);
    } else {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new InputError(
          `the payload on ${topic} is not JSON (${(error as Error).message}): send a reading such as {"temp": 21.5}`,
        );
      }
      objects = Array.isArray(json) ? json : [json];
      if (objects.length === 0) throw new InputError(`the payload on ${topic} is an empty array`);
    }
    return objects.map((object, i) => {
      try {
        return this.reading(object, names.series);
      } catch (error) {
        throw new InputError(
          `${objects.length > 1 ? `reading ${i + 1} ` : ''}on ${topic}: ${(error as Error).message}`,
        );
      }
    });
  }

  private reading(object: unknown, topicSeries: string | undefined): LiveReading {
    const values = { ...parseReading(object) } as Record<string, string | number | null>;
    const reading: LiveReading = { values };
    const { timeField, seriesField } = this.o;
    if (values[timeField] !== undefined && values[timeField] !== null) {
      reading.time = parseTimeValue(values[timeField], timeField, this.o.timeUnit);
      delete values[timeField];
    }
    const series = seriesField !== undefined ? values[seriesField] : undefined;
    if (seriesField !== undefined) delete values[seriesField];
    if (series !== undefined && series !== null) reading.series = String(series);
    else if (topicSeries !== undefined) reading.series = topicSeries;
    if (Object.keys(values).length === 0)
      throw new InputError('the reading has no channels besides its time and series');
    return reading;
  }
}

/**
 * One channel per message (format `value`) into whole readings, per series: a reading is
 * complete once every channel in `channels` arrived, or, without that list, when a channel
 * arrives again (the machine's next sample began). It has no time of its own: it takes the
 * arrival of the message that completed it.
 */
export class ChannelMerger {
  private readonly open = new Map<string, Record<string, number>>();

  constructor(private readonly channels?: readonly string[]) {}

  /** Adds one channel's value; returns the readings it completed. */
  add(reading: LiveReading): LiveReading[] {
    const series = reading.series ?? '';
    const [channel, value] = Object.entries(reading.values)[0] as [string, number];
    const out: LiveReading[] = [];
    let values = this.open.get(series);
    if (values && channel in values) {
      out.push(merged(series, values));
      values = undefined;
    }
    if (!values) {
      values = {};
      this.open.set(series, values);
    }
    values[channel] = value;
    const complete = values;
    if (this.channels?.every((name) => name in complete)) {
      out.push(merged(series, complete));
      this.open.delete(series);
    }
    return out;
  }
}

function merged(series: string, values: Record<string, number>): LiveReading {
  return { ...(series !== '' ? { series } : {}), values };
}
