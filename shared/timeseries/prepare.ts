/**
 * Collected series -> the windows a run trains, validates and scores on. The split is made
 * before windowing, so no window leaks neighbours of a test window into training: whole
 * series go to one role (three or more series), or, with fewer, each series is cut into
 * contiguous time blocks (70% train, 15% validation, 15% test) and each block is windowed
 * on its own.
 */
import { InputError } from '../errors.ts';
import type { Task } from '../schemas.ts';
import { targetNumber } from '../target.ts';
import { seededRandom, shuffleInPlace } from '../training/random.ts';
import {
  type CollectedReadings,
  frequencyFromInterval,
  medianInterval,
  type SeriesReadings,
} from './long-format.ts';
import { type ResolvedWindow, type WindowSpec, windowSamples } from './spec.ts';
import { type Window, windowsOf } from './windower.ts';

export type Role = 'train' | 'validation' | 'test';
export const ROLES: readonly Role[] = ['train', 'validation', 'test'];

export interface PreparedWindows {
  spec: ResolvedWindow;
  labels: string[];
  windows: Record<Role, Window[]>;
  split: 'series' | 'time-blocks';
  /** Series per role (by-series split). */
  seriesOf: Record<Role, string[]>;
  /** The readings the test windows were cut from: the gate re-cuts them for the current release. */
  testSeries: SeriesReadings[];
  notices: string[];
}

const SHARES: Record<Role, number> = { train: 0.7, validation: 0.15, test: 0.15 };

/** The window the trainer will cut: the frequency (given or inferred), samples, the gap limit. */
export function resolveWindow(
  spec: WindowSpec,
  collected: CollectedReadings,
  where = '',
): { resolved: ResolvedWindow; notices: string[] } {
  const notices: string[] = [];
  const intervals = collected.series.map((s) => medianInterval(s.times)).filter(Number.isFinite);
  if (intervals.length === 0)
    throw new InputError(`${where}no series has two readings: a window needs a stream of readings`);
  const sorted = [...intervals].sort((a, b) => a - b);
  const typical = sorted[Math.floor(sorted.length / 2)] as number;
  let frequencyHz = spec.frequencyHz;
  if (frequencyHz === undefined) {
    frequencyHz = frequencyFromInterval(typical);
    notices.push(
      `frequencyHz not given: readings are resampled to ${frequencyHz} Hz, inferred from the median interval between readings (${typical} ms); set "frequencyHz" to choose`,
    );
  }
  const slowest = sorted[sorted.length - 1] as number;
  if (slowest > typical * 1.5)
    notices.push(
      `series are sampled at different rates (median intervals ${sorted[0]} to ${slowest} ms): every series is resampled to ${frequencyHz} Hz`,
    );
  const { samples, stride } = windowSamples(spec, frequencyHz);
  const period = 1000 / frequencyHz;
  const resolved: ResolvedWindow = {
    time: spec.time,
    ...(spec.series ? { series: spec.series } : {}),
    timeUnit: spec.timeUnit,
    channels: collected.channels,
    frequencyHz,
    samples,
    stride,
    maxGapMs: spec.maxGapPeriods * Math.max(period, slowest),
    short: spec.short,
  };
  return { resolved, notices };
}

/** Readings of a series between two times ([from, to)), as their own series. */
function sliceSeries(series: SeriesReadings, from: number, to: number, width: number): SeriesReadings {
  let first = 0;
  while (first < series.times.length && (series.times[first] as number) < from) first++;
  let last = first;
  while (last < series.times.length && (series.times[last] as number) < to) last++;
  return {
    name: series.name,
    times: series.times.subarray(first, last),
    values: series.values.subarray(first * width, last * width),
    labels: series.labels.slice(first, last),
  };
}

/** The longest stretch (ms) of a series without a gap over the limit. */
function longestSegment(series: SeriesReadings, maxGapMs: number): number {
  let longest = 0;
  let start = series.times[0] ?? 0;
  for (let i = 1; i < series.times.length; i++) {
    const t = series.times[i] as number;
    if (t - (series.times[i - 1] as number) > maxGapMs) start = t;
    longest = Math.max(longest, t - start);
  }
  return longest;
}

/** Seeded shuffles of the series tried for a split where every class has training windows. */
const SPLIT_TRIES = 64;

/**
 * Whole series to roles (15% test, 15% validation, at least one each). The first of a few
 * seeded shuffles where every class has training windows wins, preferring one where the test
 * and validation series hold every class too: with few series, each covering a few states,
 * one shuffle can leave a class out of training.
 */
function seriesRoles(
  series: readonly SeriesReadings[],
  spec: ResolvedWindow,
  seed: number,
): Map<string, Role> {
  const classesOf = new Map(
    series.map((s) => [
      s.name,
      new Set(
        windowsOf(s.name, spec, s.times, s.values, s.labels)
          .map((w) => w.label)
          .filter((label): label is string => label !== undefined),
      ),
    ]),
  );
  const all = new Set([...classesOf.values()].flatMap((set) => [...set]));
  const n = series.length;
  const test = Math.max(1, Math.round(n * SHARES.test));
  const validation = Math.max(1, Math.round(n * SHARES.validation));
  const random = seededRandom(seed);
  let best: { role: Map<string, Role>; missing: number } | undefined;
  for (let attempt = 0; attempt < SPLIT_TRIES && best?.missing !== 0; attempt++) {
    const names = shuffleInPlace(
      series.map((s) => s.name),
      random,
    );
    const role = new Map<string, Role>();
    names.forEach((name, i) => {
      role.set(name, i < test ? 'test' : i < test + validation ? 'validation' : 'train');
    });
    const covered = (r: Role) => {
      const seen = new Set(
        names.filter((name) => role.get(name) === r).flatMap((name) => [...(classesOf.get(name) ?? [])]),
      );
      return [...all].filter((label) => !seen.has(label)).length;
    };
    // A class missing from training weighs more than every class missing elsewhere.
    const missing = covered('train') * 1000 + covered('validation') + covered('test');
    if (!best || missing < best.missing) best = { role, missing };
  }
  return (best as { role: Map<string, Role> }).role;
}

export function prepareWindows(
  collected: CollectedReadings,
  spec: WindowSpec,
  seed: number,
  where = '',
  task: Task = 'classification',
): PreparedWindows {
  const { resolved, notices } = resolveWindow(spec, collected, where);
  const width = resolved.channels.length;
  const windowMs = ((resolved.samples - 1) * 1000) / resolved.frequencyHz;
  const spans = collected.series.map((s) => ({ name: s.name, ms: longestSegment(s, resolved.maxGapMs) }));
  const longest = spans.reduce((a, b) => (b.ms > a.ms ? b : a), { name: '', ms: 0 });
  if (longest.ms < windowMs && resolved.short === 'drop')
    throw new InputError(
      `${where}a window of ${spec.sizeMs} ms (${resolved.samples} samples at ${resolved.frequencyHz} Hz) is longer than any series: the longest stretch without a gap over ${resolved.maxGapMs} ms is ${longest.ms} ms${longest.name ? ` (series '${longest.name}')` : ''}; use a shorter "sizeMs", or "short": "pad"`,
    );

  const windows: Record<Role, Window[]> = { train: [], validation: [], test: [] };
  let nonNumeric = 0;
  const seriesOf: Record<Role, string[]> = { train: [], validation: [], test: [] };
  const testSeries: SeriesReadings[] = [];
  const cut = (role: Role, series: SeriesReadings) => {
    if (role === 'test') testSeries.push(series);
    for (const window of windowsOf(series.name, resolved, series.times, series.values, series.labels)) {
      // An anomaly model's windows carry no label: every one is normal operation to learn.
      if (task === 'anomaly') {
        windows[role].push(window);
        continue;
      }
      // A regression window's target is its last reading's value: a window without a number is not trained on.
      if (window.label === undefined) continue;
      if (task === 'regression' && Number.isNaN(targetNumber(window.label))) {
        nonNumeric++;
        continue;
      }
      windows[role].push(window);
    }
  };
  let split: PreparedWindows['split'];
  if (collected.series.length >= 3) {
    split = 'series';
    const role = seriesRoles(collected.series, resolved, seed);
    for (const series of collected.series) {
      const r = role.get(series.name) as Role;
      seriesOf[r].push(series.name);
      cut(r, series);
    }
    notices.push(
      `split by series: ${seriesOf.train.length} series train, ${seriesOf.validation.length} validate, ${seriesOf.test.length} test (${seriesOf.test.join(', ')})`,
    );
  } else {
    split = 'time-blocks';
    for (const series of collected.series) {
      const t0 = series.times[0] ?? 0;
      const span = (series.times[series.times.length - 1] ?? t0) - t0;
      const trainEnd = t0 + span * SHARES.train;
      const validationEnd = trainEnd + span * SHARES.validation;
      cut('train', sliceSeries(series, t0, trainEnd, width));
      cut('validation', sliceSeries(series, trainEnd, validationEnd, width));
      cut('test', sliceSeries(series, validationEnd, Number.POSITIVE_INFINITY, width));
      for (const r of ROLES) seriesOf[r].push(series.name);
    }
    notices.push(
      `${collected.series.length === 1 ? 'one series' : `${collected.series.length} series`}: split into contiguous time blocks per series (first 70% train, next 15% validation, last 15% test)`,
    );
  }
  if (resolved.short === 'pad') {
    const padded = ROLES.reduce(
      (sum, r) => sum + windows[r].filter((w) => w.valid < resolved.samples).length,
      0,
    );
    if (padded > 0)
      notices.push(
        `${padded} segments shorter than a window were zero-padded to one window each ("short": "pad")`,
      );
  } else {
    notices.push(
      'segments shorter than a window and the tail after the last full stride are dropped ("short": "drop")',
    );
  }

  /** Every role in `roles` needs windows: without, its series (or time blocks) are too short. */
  const requireWindows = (roles: readonly Role[]) => {
    const empty = roles.find((r) => windows[r].length === 0);
    if (empty)
      throw new InputError(
        `${where}no ${empty} windows: the ${split === 'series' ? `${empty} series are` : 'last time block of each series is'} shorter than a window; add readings or use a shorter window`,
      );
  };
  if (task === 'anomaly') {
    requireWindows(ROLES);
    return { spec: resolved, labels: [], windows, split, seriesOf, testSeries, notices };
  }
  if (task === 'regression') {
    if (nonNumeric > 0)
      notices.push(
        `${nonNumeric} windows end on a reading whose label is not a number: they are not trained or scored on`,
      );
    for (const r of ROLES)
      if (windows[r].length === 0)
        throw new InputError(
          `${where}no ${r} windows with a numeric target: check the label column, or add readings`,
        );
    return { spec: resolved, labels: [], windows, split, seriesOf, testSeries, notices };
  }
  const labels = [...new Set(ROLES.flatMap((r) => windows[r].map((w) => w.label as string)))].sort();
  if (labels.length < 2)
    throw new InputError(
      `${where}the windows have ${labels.length} class${labels.length === 1 ? ` ('${labels[0]}')` : 'es'}: a classifier needs at least two`,
    );
  const counts = new Map<string, number>();
  for (const w of windows.train) counts.set(w.label as string, (counts.get(w.label as string) ?? 0) + 1);
  const few = labels.filter((label) => (counts.get(label) ?? 0) < spec.minWindowsPerClass);
  if (few.length > 0)
    throw new InputError(
      `${where}too few training windows for ${few.map((label) => `'${label}' (${counts.get(label) ?? 0})`).join(', ')}: each class needs at least ${spec.minWindowsPerClass} (minWindowsPerClass); add readings of those classes, use a smaller "strideMs", or lower "minWindowsPerClass"`,
    );
  requireWindows(['validation', 'test']);
  return { spec: resolved, labels, windows, split, seriesOf, testSeries, notices };
}
