/**
 * Labelled event ranges for anomaly models (`events.csv`: series, start, end, optional kind):
 * stretches of the dataset its owner knows were not normal operation. They are never trained
 * on (rows inside them, and windows overlapping them, are left out of the fit and of the
 * threshold's calibration), and they score a candidate: the event rule run over the labelled
 * series in time order, its events matched against the ranges, gives event recall, precision,
 * F1 and detection delay (Lookout for Equipment used labelled failure ranges the same way).
 */
import { type EventRuleSpec, EventTracker } from '../anomaly.ts';
import { parseCsv, sniffDelimiter } from '../dataset/csv.ts';
import { InputError } from '../errors.ts';
import type { LabelledMetrics } from '../schemas.ts';
import { parseTime } from '../timeseries/long-format.ts';

/** The columns of events.csv: the first three are required. */
export const EVENTS_COLUMNS = ['series', 'start', 'end', 'kind'] as const;

export interface LabelledRange {
  series: string;
  /** Epoch ms of the range's first and last abnormal moments (inclusive). */
  start: number;
  end: number;
  kind?: string;
}

/** Ranges from an events.csv text; InputError naming the line and the fix for what is wrong. */
export function parseEventsCsv(
  text: string,
  where = 'events.csv: ',
  timeUnit: 'ms' | 's' = 'ms',
): LabelledRange[] {
  const body = text.replace(/^\uFEFF/, '');
  let table: string[][];
  try {
    table = parseCsv(body, sniffDelimiter(body));
  } catch (error) {
    throw new InputError(`${where}the CSV cannot be parsed (${(error as Error).message}): check the quoting`);
  }
  const [first, ...records] = table;
  const header = (first ?? []).map((name) => name.trim().toLowerCase());
  const expected = `columns series,start,end and optionally kind`;
  const unknown = header.find((name) => !(EVENTS_COLUMNS as readonly string[]).includes(name));
  if (unknown !== undefined)
    throw new InputError(`${where}unknown column '${unknown}': an events file has ${expected}`);
  const at = Object.fromEntries(EVENTS_COLUMNS.map((name) => [name, header.indexOf(name)]));
  const missing = EVENTS_COLUMNS.slice(0, 3).filter((name) => at[name] === -1);
  if (missing.length > 0)
    throw new InputError(
      `${where}no ${missing.map((m) => `'${m}'`).join(', ')} column: an events file has ${expected} (header line first)`,
    );
  return records.flatMap((cells, i) => {
    if (cells.every((cell) => cell.trim() === '')) return [];
    const line = `${where}line ${i + 2}: `;
    const cell = (name: (typeof EVENTS_COLUMNS)[number]) => (cells[at[name] as number] ?? '').trim();
    const time = (name: 'start' | 'end') => {
      const value = parseTime(cell(name), timeUnit);
      if (!Number.isFinite(value))
        throw new InputError(
          `${line}${name} '${cell(name)}' is not a time: write ISO 8601 (2026-11-03T10:00:00Z) or epoch ${timeUnit === 's' ? 'seconds' : 'milliseconds'}, as the dataset's time column`,
        );
      return value;
    };
    const [start, end] = [time('start'), time('end')];
    if (end < start)
      throw new InputError(`${line}end ${cell('end')} is before start ${cell('start')}: swap them`);
    const kind = at.kind === -1 ? '' : cell('kind');
    return [{ series: cell('series'), start, end, ...(kind ? { kind } : {}) }];
  });
}

/** Ranges by series, for asking whether a reading or a window falls in one. */
export class EventRanges {
  private readonly bySeries = new Map<string, LabelledRange[]>();

  constructor(readonly ranges: readonly LabelledRange[]) {
    for (const range of ranges) {
      const list = this.bySeries.get(range.series) ?? [];
      list.push(range);
      this.bySeries.set(range.series, list);
    }
  }

  /** The series that have ranges. */
  get series(): string[] {
    return [...this.bySeries.keys()];
  }

  has(series: string): boolean {
    return this.bySeries.has(series);
  }

  /** Whether [start, end] (a reading: start = end) touches a range of `series`. */
  overlaps(series: string, start: number, end = start): boolean {
    return this.bySeries.get(series)?.some((r) => start <= r.end && end >= r.start) ?? false;
  }

  /** Only the ranges of these series. */
  of(series: Iterable<string>): EventRanges {
    const kept = new Set(series);
    return new EventRanges(this.ranges.filter((r) => kept.has(r.series)));
  }

  /** A warning for ranges whose series the dataset does not have (they are not scored). */
  unknownSeriesNotice(known: Iterable<string>): string | undefined {
    const names = new Set(known);
    const unknown = this.series.filter((s) => !names.has(s));
    if (unknown.length === 0) return undefined;
    const count = this.ranges.filter((r) => !names.has(r.series)).length;
    return `events.csv: ${count} labelled range(s) name series the dataset does not have (${unknown
      .slice(0, 5)
      .map((s) => `'${s}'`)
      .join(
        ', ',
      )}${unknown.length > 5 ? ', ...' : ''}): they are not scored; check the series column's values`;
  }
}

/** Results of the labelled series in time order per series (a row's time, or a window's end). */
export interface LabelledResults {
  scores: ArrayLike<number>;
  series: readonly string[];
  times: readonly number[];
}

/**
 * The event rule over scored results (anomalous: score over the threshold, as a gateway
 * judges them), and its events matched against the ranges (`matchEvents`).
 */
export function evaluateLabelled(
  results: LabelledResults,
  threshold: number,
  rule: EventRuleSpec,
  ranges: readonly LabelledRange[],
  slackMs: number,
): LabelledMetrics {
  const tracker = new EventTracker(rule);
  const events: { series: string; start: number; end: number }[] = [];
  for (let i = 0; i < results.scores.length; i++) {
    const score = results.scores[i] as number;
    const pushed = tracker.push(results.series[i] ?? '', results.times[i] ?? i, {
      anomaly: score > threshold,
      score,
      channels: [],
    });
    if (pushed.closed) events.push(pushed.closed);
  }
  events.push(...tracker.flush());
  return matchEvents(ranges, events, slackMs);
}

/**
 * How far apart a model puts labelled faults and normal operation, whatever its score's scale:
 * the median score of results in a range (or up to `spanMs` after its end, which a result that
 * spans time still covers) over the median of the others; undefined without both.
 */
export function scoreRatio(
  results: LabelledResults,
  ranges: readonly LabelledRange[],
  spanMs: number,
): number | undefined {
  const inside: number[] = [];
  const outside: number[] = [];
  for (let i = 0; i < results.scores.length; i++) {
    const series = results.series[i];
    const time = results.times[i] ?? Number.NaN;
    const hit = ranges.some((r) => r.series === series && time >= r.start && time <= r.end + spanMs);
    (hit ? inside : outside).push(results.scores[i] as number);
  }
  const normal = medianOf(outside);
  const faulty = medianOf(inside);
  return normal !== undefined && faulty !== undefined && normal > 0 ? faulty / normal : undefined;
}

/** The median of `values` (sorted in place), undefined when there are none. */
function medianOf(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2
    ? (values[mid] as number)
    : ((values[mid - 1] as number) + (values[mid] as number)) / 2;
}

/**
 * Event recall, precision, F1 and median detection delay. A range is found when an event of
 * its series overlaps it, extended by `slackMs` past its end (a window or the rule's k of n
 * results report a fault a little after it); an event is right when it overlaps a range so;
 * the delay is from the range's start to the first such event's start (0 when the event was
 * already open). Only events of series with ranges count.
 */
export function matchEvents(
  ranges: readonly LabelledRange[],
  events: readonly { series: string; start: number; end: number }[],
  slackMs: number,
): LabelledMetrics {
  const labelled = new Set(ranges.map((r) => r.series));
  const scored = events.filter((e) => labelled.has(e.series));
  const hits = (e: { series: string; start: number; end: number }, r: LabelledRange) =>
    e.series === r.series && e.start <= r.end + slackMs && e.end >= r.start;
  const delays: number[] = [];
  for (const range of ranges) {
    const first = scored.filter((e) => hits(e, range)).sort((a, b) => a.start - b.start)[0];
    if (first) delays.push(Math.max(0, first.start - range.start));
  }
  const right = scored.filter((e) => ranges.some((r) => hits(e, r))).length;
  const recall = ranges.length ? delays.length / ranges.length : 0;
  const precision = scored.length ? right / scored.length : 0;
  const f1 = recall + precision > 0 ? (2 * recall * precision) / (recall + precision) : 0;
  const round4 = (v: number) => Math.round(v * 1e4) / 1e4;
  const median = medianOf(delays);
  return {
    ranges: ranges.length,
    found: delays.length,
    events: scored.length,
    recall: round4(recall),
    precision: round4(precision),
    f1: round4(f1),
    ...(median !== undefined ? { medianDelayMs: Math.round(median) } : {}),
  };
}

/** One line for notices and the CLI: "event recall 0.95 (19 of 20 ranges), precision ...". */
export function labelledText(m: LabelledMetrics): string {
  const delay =
    m.medianDelayMs === undefined ? 'none found' : `${Number((m.medianDelayMs / 60_000).toFixed(1))} min`;
  return `event recall ${m.recall.toFixed(2)} (${m.found} of ${m.ranges} labelled ranges), precision ${m.precision.toFixed(2)} (${m.events} events), F1 ${m.f1.toFixed(2)}, median detection delay ${delay}`;
}

/**
 * Rows of a row model's dataset as they stream by, for the labelled ranges: whether a row is
 * inside one (then it is not trained on), and the rows of the labelled series kept, up to
 * `maxRows`, for the evaluation. A series whose rows did not all fit is left out of it.
 */
export class LabelledRows {
  excluded = 0;
  readonly seen = new Set<string>();
  private readonly kept = new Map<string, { time: number; row: Record<string, string> }[]>();
  private readonly truncated = new Set<string>();
  private count = 0;

  constructor(
    private readonly ranges: EventRanges,
    private readonly header: readonly string[],
    private readonly timeAt: number,
    private readonly seriesAt: number,
    private readonly maxRows = 500_000,
  ) {}

  /** True when the row lies in a labelled range: it must not be trained on. */
  take(cells: readonly string[]): boolean {
    const series = this.seriesAt >= 0 ? (cells[this.seriesAt] ?? '').trim() : '';
    this.seen.add(series);
    if (!this.ranges.has(series)) return false;
    const time = parseTime(cells[this.timeAt] ?? '', 'ms');
    if (this.count < this.maxRows) {
      const list = this.kept.get(series) ?? [];
      list.push({ time, row: Object.fromEntries(this.header.map((c, j) => [c, cells[j] ?? ''])) });
      this.kept.set(series, list);
      this.count++;
    } else this.truncated.add(series);
    const inside = Number.isFinite(time) && this.ranges.overlaps(series, time);
    if (inside) this.excluded++;
    return inside;
  }

  /** The kept series' rows in time order, with each row's series and time; and notices. */
  finish(): {
    rows: Record<string, string>[];
    series: string[];
    times: number[];
    ranges: EventRanges;
    notices: string[];
  } {
    const notices: string[] = [];
    const unknown = this.ranges.unknownSeriesNotice(this.seen);
    if (unknown) notices.push(unknown);
    if (this.truncated.size > 0)
      notices.push(
        `labelled series beyond ${this.maxRows} rows are not evaluated: ${[...this.truncated].join(', ')}`,
      );
    const names = [...this.kept.keys()].filter((s) => !this.truncated.has(s));
    const ordered = names.flatMap((name) =>
      (this.kept.get(name) ?? []).sort((a, b) => a.time - b.time).map((r) => ({ name, ...r })),
    );
    return {
      rows: ordered.map((r) => r.row),
      series: ordered.map((r) => r.name),
      times: ordered.map((r) => r.time),
      ranges: this.ranges.of(names),
      notices,
    };
  }
}
