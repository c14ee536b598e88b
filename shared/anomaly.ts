/**
 * An anomaly model's score, the same in the trainer, `edgeloop score` and on the gateway: the
 * model reconstructs a reading's input vector (an autoencoder trained on normal operation);
 * the score is the mean squared difference, and each column's share of it says which sensors
 * drove it (Lookout for Equipment called these diagnostics).
 */
import { featureWidth } from './preprocess.ts';
import type { Manifest, Preprocessing } from './schemas.ts';
import { spectralWidth } from './timeseries/features.ts';
import type { WindowFeatures } from './timeseries/spec.ts';

/** Columns named in a result: the largest shares first, those with at least this share. */
export const TOP_CHANNELS = 3;
const MIN_SHARE = 0.05;

/** Each input slot's column index (a categorical column spans several slots). */
export function slotColumns(preprocessing: Pick<Preprocessing, 'features'>): {
  names: string[];
  slots: Int32Array;
} {
  const names = preprocessing.features.map((feature) => feature.column);
  const slots: number[] = [];
  preprocessing.features.forEach((feature, c) => {
    for (let i = 0; i < featureWidth(feature); i++) slots.push(c);
  });
  return { names, slots: Int32Array.from(slots) };
}

/**
 * Each input slot's channel for a windowed model: spectral features come channel by channel
 * (its statistics, then its bands), so a slot's share counts for the sensor it was computed
 * from, not for a feature name like `flow:std`.
 */
export function windowSlotColumns(window: {
  spec: { channels: string[]; samples: number };
  features: WindowFeatures;
}): {
  names: string[];
  slots: Int32Array;
} {
  const names = [...window.spec.channels];
  const { features } = window;
  // A raw window is its samples row-major: slot j is a sample of channel j mod channels.
  if (features.kind !== 'spectral')
    return {
      names,
      slots: Int32Array.from({ length: window.spec.samples * names.length }, (_, j) => j % names.length),
    };
  const perChannel = spectralWidth(1, features.bands, features.trend);
  if (features.names.length !== perChannel * names.length)
    throw new Error(
      `the window features have ${features.names.length} slots, ${names.length} channels of ${perChannel} expected`,
    );
  return { names, slots: Int32Array.from(features.names, (_, j) => Math.floor(j / perChannel)) };
}

/** The slot-to-column map of a model: its window's channels, or its rows' columns. */
export function anomalyColumns(manifest: Pick<Manifest, 'preprocessing' | 'window'>): {
  names: string[];
  slots: Int32Array;
} {
  return manifest.window ? windowSlotColumns(manifest.window) : slotColumns(manifest.preprocessing);
}

/**
 * Row `i`'s score: the mean squared difference of its input and its reconstruction, each slot
 * divided by that slot's residual scale on normal data. Unscaled, a sensor the others cannot
 * predict (vibration noise, a machine's own level) drowns a spike on one they predict well.
 */
export function reconstructionScore(
  x: Float32Array,
  out: ArrayLike<number>,
  width: number,
  i: number,
  scale?: ArrayLike<number>,
): number {
  let sum = 0;
  for (let j = 0; j < width; j++) {
    const d =
      ((x[i * width + j] as number) - (out[i * width + j] as number)) / (scale ? (scale[j] as number) : 1);
    sum += d * d;
  }
  return sum / width;
}

/** Each slot's residual scale (RMS, floored) over `n` rows of normal data and their reconstructions. */
export function residualScale(x: Float32Array, out: ArrayLike<number>, width: number): number[] {
  const n = x.length / width;
  const sums = new Float64Array(width);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < width; j++) {
      const d = (x[i * width + j] as number) - (out[i * width + j] as number);
      sums[j] = (sums[j] as number) + d * d;
    }
  return Array.from(sums, (s) => Number(Math.max(1e-3, Math.sqrt(s / Math.max(1, n))).toPrecision(6)));
}

export interface ChannelShare {
  name: string;
  share: number;
}

/** The columns that drove row `i`'s score, with their shares of its squared error (rounded to 3 places). */
export function channelShares(
  x: Float32Array,
  out: ArrayLike<number>,
  width: number,
  i: number,
  columns: { names: string[]; slots: Int32Array },
  scale?: ArrayLike<number>,
): ChannelShare[] {
  const byColumn = new Float64Array(columns.names.length);
  let total = 0;
  for (let j = 0; j < width; j++) {
    const d =
      ((x[i * width + j] as number) - (out[i * width + j] as number)) / (scale ? (scale[j] as number) : 1);
    const c = columns.slots[j] as number;
    byColumn[c] = (byColumn[c] as number) + d * d;
    total += d * d;
  }
  if (!(total > 0)) return [];
  return Array.from(byColumn, (error, c) => ({ name: columns.names[c] as string, share: error / total }))
    .filter((c) => c.share >= MIN_SHARE)
    .sort((a, b) => b.share - a.share)
    .slice(0, TOP_CHANNELS)
    .map((c) => ({ name: c.name, share: Math.round(c.share * 1000) / 1000 }));
}

/** k of the last n results over the threshold open an event; m clear results in a row close it. */
export interface EventRuleSpec {
  k: number;
  n: number;
  m: number;
}

/** An anomaly event: a stretch of one series the rule held abnormal. */
export interface AnomalyEvent {
  id: string;
  series: string;
  /** Times (epoch ms, or positions without a time) of its first and last anomalous results. */
  start: number;
  end: number;
  peakScore: number;
  /** The columns that drove it: their shares summed over its anomalous results, normalised. */
  channels: ChannelShare[];
  results: number;
}

interface SeriesState {
  recent: { time: number; anomalous: boolean }[];
  open?: AnomalyEvent & { shares: Map<string, number>; clear: number };
}

/**
 * The event rule over one model's results in order, per series. Every result inside an open
 * event (from the one that opened it) carries the event's id; `push` hands back an event when
 * its m-th clear result closes it, and `flush` the events still open at the end.
 */
export class EventTracker {
  private readonly series = new Map<string, SeriesState>();

  constructor(private readonly rule: EventRuleSpec) {}

  push(
    series: string,
    time: number,
    result: { anomaly: boolean; score: number; channels: readonly ChannelShare[] },
  ): { event?: string; opened?: AnomalyEvent; closed?: AnomalyEvent } {
    let state = this.series.get(series);
    if (!state) {
      state = { recent: [] };
      this.series.set(series, state);
    }
    state.recent.push({ time, anomalous: result.anomaly });
    if (state.recent.length > this.rule.n) state.recent.shift();
    const open = state.open;
    if (open) {
      if (result.anomaly) {
        open.clear = 0;
        addTo(open, time, result);
        return { event: open.id };
      }
      if (++open.clear >= this.rule.m) {
        state.open = undefined;
        return { closed: finished(open) };
      }
      return { event: open.id };
    }
    const over = state.recent.filter((r) => r.anomalous);
    if (!result.anomaly || over.length < this.rule.k) return {};
    const start = over[0]?.time ?? time;
    const event = {
      id: `${series}@${start}`,
      series,
      start,
      end: time,
      peakScore: 0,
      channels: [],
      results: 0,
      shares: new Map<string, number>(),
      clear: 0,
    };
    addTo(event, time, result);
    state.open = event;
    return { event: event.id, opened: finished(event) };
  }

  /** The events open now, as they stand (a gateway keeps them across a restart). */
  openEvents(): AnomalyEvent[] {
    return [...this.series.values()].flatMap((s) => (s.open ? [finished(s.open)] : []));
  }

  /**
   * Continues events a previous run left open: the next results of their series extend or
   * close them (their channel shares carry on weighted by the results they had).
   */
  resume(events: readonly AnomalyEvent[]): void {
    for (const event of events) {
      const shares = new Map(event.channels.map((c) => [c.name, c.share * event.results]));
      this.series.set(event.series, { recent: [], open: { ...event, shares, clear: 0 } });
    }
  }

  /** The events still open (the end of a file or a backtest). */
  flush(): AnomalyEvent[] {
    const open = [...this.series.values()].flatMap((s) => (s.open ? [finished(s.open)] : []));
    for (const state of this.series.values()) state.open = undefined;
    return open;
  }
}

/** What the event rule reads of a result. */
export interface EventInput {
  series: string;
  time: number;
  anomaly: boolean;
  score: number;
  channels: readonly ChannelShare[];
}

/**
 * A result as the event rule reads it, the same on the gateway and in `edgeloop score`: a
 * window's series and end, else the row's series and time, else its position (the number its
 * id ends with: results without a time keep their order).
 */
export function eventInputOf(result: {
  id: string;
  anomaly?: boolean;
  score?: number;
  channels?: readonly ChannelShare[];
  series?: string;
  time?: number;
  window?: { series: string; end: number };
}): EventInput {
  return {
    series: result.window?.series ?? result.series ?? '',
    time: result.window?.end ?? result.time ?? Number(result.id.slice(result.id.lastIndexOf(':') + 1)),
    anomaly: result.anomaly === true,
    score: result.score ?? 0,
    channels: result.channels ?? [],
  };
}

function addTo(
  event: AnomalyEvent & { shares: Map<string, number> },
  time: number,
  result: { score: number; channels: readonly ChannelShare[] },
): void {
  event.end = time;
  event.results++;
  event.peakScore = Math.max(event.peakScore, result.score);
  for (const c of result.channels) event.shares.set(c.name, (event.shares.get(c.name) ?? 0) + c.share);
}

function finished(event: AnomalyEvent & { shares: Map<string, number>; clear?: number }): AnomalyEvent {
  const total = [...event.shares.values()].reduce((a, b) => a + b, 0);
  const channels = [...event.shares]
    .map(([name, sum]) => ({ name, share: total > 0 ? Math.round((sum / total) * 1000) / 1000 : 0 }))
    .sort((a, b) => b.share - a.share)
    .slice(0, TOP_CHANNELS);
  const { shares: _, clear: __, ...rest } = event;
  return { ...rest, channels };
}
