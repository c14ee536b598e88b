/**
 * Anomaly models: an autoencoder fitted on normal operation (its input vectors, a reading's or
 * a window's features, are its targets), and the threshold its reconstruction score is judged
 * by, calibrated on held-out normal data to the false-alarm budget the user states.
 *
 * Rows: the threshold sits at the score quantile the budget gives per reading a day, results
 * taken as independent (`alarmQuantile`). Windows: the held-out windows are a sequence, so the
 * event rule is run over them and its rate extrapolated (`thresholdForEvents`). Either way the
 * quantiles lie past what a few hundred held-out results can measure, so the tail above the
 * held-out 90th percentile is taken as exponential (peaks over threshold, with the mean
 * excess as its scale); below q = 0.9 the empirical quantile is used.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { type EventRuleSpec, EventTracker, reconstructionScore } from '../anomaly.ts';
import { type RawRow, transformRows } from '../preprocess.ts';
import type { Alarm, Manifest } from '../schemas.ts';
import { initTf, tf } from '../tf.ts';
import { windowInput, windowInputs } from '../timeseries/features.ts';
import { parseTime, type SeriesReadings } from '../timeseries/long-format.ts';
import type { ResolvedWindow } from '../timeseries/spec.ts';
import { windowsOf } from '../timeseries/windower.ts';
import { loadModelFromArtifacts, type ModelArtifactBytes } from './model.ts';

/** The quantile used when neither the budget's rate nor a quantile is known. */
export const DEFAULT_ALARM_QUANTILE = 0.999;
/** Where the exponential tail starts. */
const TAIL_FROM = 0.9;

/** The autoencoder's hidden layers for `width` inputs: a bottleneck of half the width, at most 16. */
export function autoencoderHidden(width: number): number[] {
  const hidden = Math.min(64, Math.max(8, 2 * width));
  return [hidden, Math.max(1, Math.min(16, Math.floor(width / 2))), hidden];
}

/** A dense autoencoder for `width` inputs (relu around a linear bottleneck, linear output). */
export function buildAutoencoder(width: number, seed: number, learningRate = 0.005): LayersModel {
  const [outer = 8, bottleneck = 1] = autoencoderHidden(width);
  const model = tf.sequential();
  const layers = [
    { units: outer, activation: 'relu' as const },
    { units: bottleneck, activation: 'linear' as const },
    { units: outer, activation: 'relu' as const },
    { units: width, activation: 'linear' as const },
  ];
  layers.forEach((layer, i) => {
    model.add(
      tf.layers.dense({
        ...layer,
        ...(i === 0 ? { inputShape: [width] } : {}),
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
      }),
    );
  });
  model.compile({ optimizer: tf.train.adam(learningRate), loss: 'meanSquaredError' });
  return model;
}

/** The model's reconstructions of `n` row vectors of `width`. */
export function reconstructions(model: LayersModel, x: Float32Array, width: number): Float32Array {
  const n = x.length / width;
  if (n === 0) return new Float32Array(0);
  return tf.tidy(() => (model.predict(tf.tensor2d(x, [n, width])) as tf.Tensor).dataSync() as Float32Array);
}

/** Reconstruction scores of `n` row vectors of `width` by `model`, slots scaled by `scale`. */
export function reconstructionScores(
  model: LayersModel,
  x: Float32Array,
  width: number,
  scale: ArrayLike<number>,
): Float32Array {
  const out = reconstructions(model, x, width);
  return Float32Array.from({ length: x.length / width }, (_, i) =>
    reconstructionScore(x, out, width, i, scale),
  );
}

/** The quantile the threshold sits at: the config's, or 1 - budget / readings a day, or the default. */
export function alarmQuantile(
  alarm: Alarm,
  readingsPerDay: number | undefined,
  rule: EventRuleSpec = { k: 1, n: 1, m: 1 },
): { quantile: number; from: 'config' | 'budget' | 'default' } {
  if (alarm.quantile !== undefined) return { quantile: alarm.quantile, from: 'config' };
  if (readingsPerDay !== undefined && readingsPerDay > alarm.falseAlarmsPerDay) {
    // The budget is in alarms (events), and an event needs k of n results over the threshold:
    // with a share p of normal results over it, about readings * C(n, k) * p^k events a day
    // open (taking results as independent), so p = (budget / (readings * C(n, k)))^(1/k).
    const p = (alarm.falseAlarmsPerDay / (readingsPerDay * binomial(rule.n, rule.k))) ** (1 / rule.k);
    return { quantile: Math.min(0.999999, Math.max(0.5, 1 - p)), from: 'budget' };
  }
  return { quantile: DEFAULT_ALARM_QUANTILE, from: 'default' };
}

/** False alarms (events) a day a share `rate` of normal results over the threshold gives under the rule. */
export function eventsPerDay(rate: number, readingsPerDay: number, rule: EventRuleSpec): number {
  return readingsPerDay * binomial(rule.n, rule.k) * rate ** rule.k;
}

function binomial(n: number, k: number): number {
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return c;
}

/** Where the scores' tail starts (their 90th percentile) and its exponential scale (the mean excess). */
function scoreTail(sorted: Float64Array): { empirical: (q: number) => number; u: number; scale: number } {
  const n = sorted.length;
  const empirical = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
  const u = empirical(TAIL_FROM);
  const excesses = sorted.filter((s) => s > u);
  const scale = excesses.length ? excesses.reduce((a, s) => a + (s - u), 0) / excesses.length : 0;
  return { empirical, u, scale };
}

/** The score under which a share `quantile` of normal scores fall (exponential tail above the 90th percentile). */
export function thresholdAt(scores: ArrayLike<number>, quantile: number): number {
  const sorted = Float64Array.from(scores).sort();
  if (sorted.length === 0) return Number.POSITIVE_INFINITY;
  const { empirical, u, scale } = scoreTail(sorted);
  if (quantile <= TAIL_FROM) return empirical(quantile);
  return u + scale * Math.log((1 - TAIL_FROM) / (1 - quantile));
}

/** Events the rule opens over results in order (per series) at a threshold. */
export function countEvents(
  scores: ArrayLike<number>,
  series: readonly string[],
  threshold: number,
  rule: EventRuleSpec,
): number {
  const tracker = new EventTracker(rule);
  let events = 0;
  for (let i = 0; i < scores.length; i++) {
    const score = scores[i] as number;
    if (tracker.push(series[i] ?? '', i, { anomaly: score > threshold, score, channels: [] }).closed)
      events++;
  }
  return events + tracker.flush().length;
}

/**
 * The threshold at which the event rule opens `budget` events a day on held-out normal
 * results in time order (`series[i]` is result i's series; `days` their series-days).
 * Overlapping windows' scores move together, so results over a threshold come in runs, and
 * the independence that `alarmQuantile` assumes would put the threshold far too low. So the
 * rule itself is run at the tail's start u (the 90th percentile), where events are frequent
 * enough to count, and above u the events' rate is taken to fall as the exceedances' does
 * (exponentially, scale the mean excess): rate(t) = rate(u) exp(-(t - u) / scale).
 */
export function thresholdForEvents(
  scores: ArrayLike<number>,
  series: readonly string[],
  days: number,
  rule: EventRuleSpec,
  budget: number,
): { threshold: number; quantile: number; eventsPerDayAtTail: number } {
  const sorted = Float64Array.from(scores).sort();
  if (sorted.length === 0 || !(days > 0))
    return { threshold: Number.POSITIVE_INFINITY, quantile: 1, eventsPerDayAtTail: 0 };
  const { u, scale } = scoreTail(sorted);
  // The budget is a ceiling, and a few held-out series-days count few events: the rate at u
  // is taken one standard deviation above its count (Poisson), not at the count itself.
  const counted = countEvents(scores, series, u, rule);
  const atTail = (counted + 1 + Math.sqrt(counted + 1)) / days;
  // Fewer events than the budget already at u: u is as low as the held-out data can vouch for.
  const above = atTail > budget ? scale * Math.log(atTail / budget) : 0;
  return {
    threshold: u + above,
    quantile: 1 - (1 - TAIL_FROM) * Math.exp(scale > 0 ? -above / scale : 0),
    eventsPerDayAtTail: counted / days,
  };
}

/** Readings a day from the times of a series' readings (epoch ms), or undefined when unknown. */
export class ReadingRate {
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private count = 0;

  add(time: number): void {
    if (!Number.isFinite(time)) return;
    this.count++;
    if (time < this.min) this.min = time;
    if (time > this.max) this.max = time;
  }

  perDay(): number | undefined {
    const span = this.max - this.min;
    return this.count > 1 && span > 0 ? ((this.count - 1) * 86_400_000) / span : undefined;
  }
}

/**
 * Held-out readings of a windowed run as rows (time, series and channels as text), whole
 * series until `max` rows: what the gate scores a windowed release on, as it scores a row
 * model on its held-out rows.
 */
export function seriesRows(
  series: readonly SeriesReadings[],
  spec: ResolvedWindow,
  max: number,
): Record<string, string>[] {
  const rows: Record<string, string>[] = [];
  const width = spec.channels.length;
  for (const s of series) {
    if (rows.length >= max) break;
    s.times.forEach((time, i) => {
      const row: Record<string, string> = {
        [spec.time]: String(spec.timeUnit === 's' ? time / 1000 : time),
      };
      if (spec.series) row[spec.series] = s.name;
      spec.channels.forEach((channel, c) => {
        row[channel] = String(s.values[i * width + c]);
      });
      rows.push(row);
    });
  }
  return rows;
}

/** A windowed model's inputs for rows of readings: each series cut with the model's own window. */
export function windowVectorsOfRows(
  window: NonNullable<Manifest['window']>,
  rows: readonly RawRow[],
): Float32Array {
  const { spec } = window;
  const bySeries = new Map<string, RawRow[]>();
  for (const row of rows) {
    const name = spec.series ? String(row[spec.series] ?? '') : '';
    const list = bySeries.get(name) ?? [];
    list.push(row);
    bySeries.set(name, list);
  }
  const windows = [...bySeries].flatMap(([name, list]) => {
    const times = list.map((row) => parseTime(String(row[spec.time] ?? ''), spec.timeUnit));
    const values = Float32Array.from(
      list.flatMap((row) => spec.channels.map((channel) => Number(row[channel]))),
    );
    return windowsOf(name, spec, times, values);
  });
  return windowInputs(windowInput(spec, window.features), windows);
}

/**
 * Share of its results on `rows` (normal operation) an already released anomaly model alarms
 * on, at its own threshold: a result per row, or per window for a windowed release.
 */
export async function falseAlarmRateOnRows(
  artifacts: ModelArtifactBytes,
  manifest: Pick<Manifest, 'preprocessing' | 'anomaly' | 'window'>,
  rows: readonly RawRow[],
): Promise<number> {
  const threshold = manifest.anomaly?.threshold;
  if (threshold === undefined) throw new Error('the release is not an anomaly model: it has no threshold');
  await initTf();
  const model = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    const width = manifest.preprocessing.inputWidth;
    const scale = manifest.anomaly?.residualScale ?? [];
    // A windowed release scores the windows the rows make (a result per window, as on a gateway).
    const x = manifest.window
      ? windowVectorsOfRows(manifest.window, rows)
      : transformRows(manifest.preprocessing, rows);
    const scores = reconstructionScores(model, x, width, scale);
    return scores.length ? scores.filter((s) => s > threshold).length / scores.length : 0;
  } finally {
    model.dispose();
  }
}
