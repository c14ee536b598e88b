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
import { InputError } from '../errors.ts';
import { type RawRow, transformRows } from '../preprocess.ts';
import type { Alarm, AnomalyModel, Manifest, TrainingConfig } from '../schemas.ts';
import { initTf, tf } from '../tf.ts';
import { windowInput, windowInputs } from '../timeseries/features.ts';
import { parseTime, type SeriesReadings } from '../timeseries/long-format.ts';
import type { ResolvedWindow } from '../timeseries/spec.ts';
import { windowsOf } from '../timeseries/windower.ts';
import { loadModelFromArtifacts, type ModelArtifactBytes } from './model.ts';
import { axesHolding, principalAxes } from './pca.ts';
import { seededRandom } from './random.ts';

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

/** Share of the training vectors' variance the PCA model's axes hold. */
const PCA_KEPT_VARIANCE = 0.95;

/**
 * PCA as a linear autoencoder: the encoder projects onto the principal axes that hold 95% of
 * the training vectors' variance (kernel W, width x k, bias -mean W), the decoder maps back
 * (kernel W transposed, bias mean), so the reconstruction error is the Q residual.
 * `probabilistic` shrinks each axis on the way back by s = 1 - sqrt(noise / variance), noise
 * being the mean variance off the axes (kernel diag(s) W transposed): the error is then the Q
 * residual plus each axis's score scaled to the noise, a Hotelling T² term. A plain projection
 * is blind to a change along its own axes, and with many noisy slots those hold most directions
 * a fault can take (a fan's new harmonic); but it also ignores how machines differ along them,
 * which a few training machines cannot tell from a fault. As a tfjs model either ships and is
 * scored as the autoencoder is.
 */
export function buildPcaModel(
  train: Float32Array,
  width: number,
  probabilistic: boolean,
): { model: LayersModel; axes: number } {
  const { mean, eigenvalues, weight } = principalAxes(train, width);
  const k = axesHolding(eigenvalues, PCA_KEPT_VARIANCE, width);
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: k, inputShape: [width], activation: 'linear' }));
  model.add(tf.layers.dense({ units: width, activation: 'linear' }));
  const kernel = Float32Array.from({ length: width * k }, (_, i) => weight(Math.floor(i / k), i % k));
  const encoderBias = Float32Array.from({ length: k }, (_, c) =>
    mean.reduce((sum, m, j) => sum - m * weight(j, c), 0),
  );
  const shrink = probabilistic ? axisShrink(eigenvalues, k) : new Array<number>(k).fill(1);
  const decoder = Float32Array.from({ length: k * width }, (_, i) => {
    const c = Math.floor(i / width);
    return (shrink[c] as number) * weight(i % width, c);
  });
  tf.tidy(() => {
    model.layers[0]?.setWeights([tf.tensor2d(kernel, [width, k]), tf.tensor1d(encoderBias)]);
    model.layers[1]?.setWeights([tf.tensor2d(decoder, [k, width]), tf.tensor1d(Float32Array.from(mean))]);
  });
  return { model, axes: k };
}

/**
 * Each kept axis's decoder factor: 1 - sqrt(noise / variance), where noise is the mean variance
 * of the axes left out, so a vector's squared error along axis c is its squared score times
 * noise / variance (probabilistic PCA's Mahalanobis term). No noise (nothing varies off the
 * axes) leaves a plain projection.
 */
export function axisShrink(eigenvalues: readonly number[], k: number): number[] {
  const rest = eigenvalues.slice(k);
  const noise = rest.length ? rest.reduce((a, b) => a + b, 0) / rest.length : 0;
  return eigenvalues
    .slice(0, k)
    .map((variance) => (variance > 0 && noise > 0 ? Math.max(0, 1 - Math.sqrt(noise / variance)) : 1));
}

/**
 * The models a config fits, cheapest first: the one it pins, or under `auto` the PCA and the
 * autoencoder (the PCA only with two or more slots: with one it keeps every axis and leaves no
 * residual to measure). Probabilistic PCA is pinned, not chosen: on held-out machines it was
 * chosen by the separation of labelled events and then alarmed four times its budget on a
 * fourth pump (test/training/pipeline.test.ts, 4 pumps), where the plain PCA and the
 * autoencoder kept it; on 100 Hz fans it found more faults (bench/README.md).
 */
export function anomalyCandidates(pinned: TrainingConfig['anomalyModel'], width: number): AnomalyModel[] {
  if ((pinned === 'pca' || pinned === 'ppca') && width < 2)
    throw new InputError(
      `"anomalyModel": "${pinned}" needs at least 2 input slots (a residual off its principal axes); use "autoencoder" or "auto"`,
    );
  if (pinned !== undefined && pinned !== 'auto') return [pinned];
  return width > 1 ? ['pca', 'autoencoder'] : ['autoencoder'];
}

/**
 * Held-out results in two halves: one calibrates a candidate's threshold, the other measures
 * its false alarms. Results of series in time order (windows: `series` given) split within
 * each series, the earlier half calibrating, so both span every series. Rows come shuffled and
 * alternate: in a file's order each half would hold a few whole machines, and the comparison
 * would be of machines, not models (bench/anomaly.ts chose PCA on pumps 4-6 against 1-3, and it
 * alarmed more on pumps it never saw).
 */
export function heldOutHalves(
  n: number,
  series?: readonly string[],
): { calibrate: number[]; measure: number[] } {
  const calibrate: number[] = [];
  const measure: number[] = [];
  if (!series) {
    for (let i = 0; i < n; i++) (i % 2 === 0 ? calibrate : measure).push(i);
    return { calibrate, measure };
  }
  const total = new Map<string, number>();
  for (const name of series) total.set(name, (total.get(name) ?? 0) + 1);
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const name = series[i] ?? '';
    const at = seen.get(name) ?? 0;
    seen.set(name, at + 1);
    (at < (total.get(name) ?? 0) / 2 ? calibrate : measure).push(i);
  }
  return { calibrate, measure };
}

/** A threshold and where it came from (`eventsPerDayAtTail` when the event rule set it). */
export interface Calibration {
  threshold: number;
  quantile: number;
  from: 'events' | 'config' | 'budget' | 'default';
  eventsPerDayAtTail?: number;
}

/**
 * The threshold for held-out normal scores: by the events the rule opens on them when they are
 * results in time order (`series` given) and a rate is known, else at the budget's quantile.
 */
export function calibrateThreshold(
  scores: ArrayLike<number>,
  series: readonly string[] | undefined,
  resultsPerDay: number | undefined,
  alarm: Alarm,
  rule: EventRuleSpec,
): Calibration {
  if (series && resultsPerDay !== undefined && alarm.quantile === undefined) {
    const days = scores.length / resultsPerDay;
    return { ...thresholdForEvents(scores, series, days, rule, alarm.falseAlarmsPerDay), from: 'events' };
  }
  const { quantile, from } = alarmQuantile(alarm, resultsPerDay, rule);
  return { threshold: thresholdAt(scores, quantile), quantile, from };
}

/**
 * How often normal results alarm at a threshold: the share over it, and the events a day per
 * series, counted when the results are in time order (`series` given), else from the share.
 */
export function falseAlarms(
  scores: ArrayLike<number>,
  series: readonly string[] | undefined,
  threshold: number,
  rule: EventRuleSpec,
  resultsPerDay: number | undefined,
): { falseAlarmRate: number; falseAlarmsPerDay?: number; events?: number } {
  let over = 0;
  for (let i = 0; i < scores.length; i++) if ((scores[i] as number) > threshold) over++;
  const falseAlarmRate = scores.length ? over / scores.length : 0;
  if (resultsPerDay === undefined) return { falseAlarmRate };
  if (!series || scores.length === 0)
    return { falseAlarmRate, falseAlarmsPerDay: eventsPerDay(falseAlarmRate, resultsPerDay, rule) };
  const events = countEvents(scores, series, threshold, rule);
  return { falseAlarmRate, falseAlarmsPerDay: events / (scores.length / resultsPerDay), events };
}

/** The second score quantile candidates are compared at: the highest a few hundred held-out results measure without the tail model. */
export const COMPARED_QUANTILE = TAIL_FROM;

/** A candidate's measured half of held-out normal results over thresholds from the other half (`heldOutAlarms`). */
export interface HeldOutAlarms {
  /** Results over the threshold calibrated as the shipped one is, their share, and its events a day. */
  overThreshold: number;
  falseAlarmRate: number;
  falseAlarmsPerDay?: number;
  /** Results over the 0.9 score quantile, and their share (a tenth where the scores hold steady). */
  overQuantile: number;
  overQuantileShare: number;
}

/**
 * A candidate on held-out normal results it was not calibrated on (`heldOutHalves`): how many
 * of the measured half pass the threshold calibrated on the other as the shipped one is (the
 * budget's quantile, with its tail model), and how many pass the other's 90th percentile score (a quantile the
 * halves measure, so it still parts candidates when the budget's leaves a handful).
 */
export function heldOutAlarms(
  scores: ArrayLike<number>,
  series: readonly string[] | undefined,
  resultsPerDay: number | undefined,
  alarm: Alarm,
  rule: EventRuleSpec,
): HeldOutAlarms {
  const halves = heldOutHalves(scores.length, series);
  const pick = <T>(values: ArrayLike<T>, at: readonly number[]) => at.map((i) => values[i] as T);
  const calibrating = pick(scores, halves.calibrate);
  const measuring = pick(scores, halves.measure);
  const { threshold } = calibrateThreshold(
    calibrating,
    series && pick(series, halves.calibrate),
    resultsPerDay,
    alarm,
    rule,
  );
  const { events, ...rates } = falseAlarms(
    measuring,
    series && pick(series, halves.measure),
    threshold,
    rule,
    resultsPerDay,
  );
  const tail = thresholdAt(calibrating, COMPARED_QUANTILE);
  const overQuantile = measuring.filter((s) => s > tail).length;
  return {
    overThreshold: measuring.filter((s) => s > threshold).length,
    ...rates,
    overQuantile,
    overQuantileShare: measuring.length ? overQuantile / measuring.length : 0,
  };
}

/** Held-out vectors a departure check reads at most (each is scored once more per candidate). */
const DEPARTURE_MAX_VECTORS = 4_000;
/** A departure: one input slot moved this many training standard deviations. */
export const DEPARTURE_STDS = 3;

/**
 * Held-out normal vectors, each with one input slot moved by 3 standard deviations (inputs are
 * scaled by the training data), the slot and the sign drawn from `seed`: a label-free stand-in
 * for a fault, to see which candidate notices a departure in any direction (a PCA's residual is
 * blind along its own axes). Every n-th vector, at most 4,000.
 */
export function departures(validation: Float32Array, width: number, seed: number): Float32Array {
  const n = validation.length / width;
  const step = Math.max(1, Math.ceil(n / DEPARTURE_MAX_VECTORS));
  const random = seededRandom(seed);
  const out = new Float32Array(Math.ceil(n / step) * width);
  for (let i = 0, o = 0; i < n; i += step, o++) {
    out.set(validation.subarray(i * width, (i + 1) * width), o * width);
    const slot = Math.min(width - 1, Math.floor(random() * width));
    out[o * width + slot] = (out[o * width + slot] as number) + (random() < 0.5 ? -1 : 1) * DEPARTURE_STDS;
  }
  return out;
}

/** A candidate as the choice sees it: its held-out false alarms, and its separation of labelled events. */
export interface CandidateAlarms {
  model: AnomalyModel;
  overThreshold: number;
  overQuantile: number;
  /** Departed vectors (`departures`) under its threshold: departures it would miss. */
  departuresMissed?: number;
  eventRecall?: number;
  scoreRatio?: number;
}

/** Those with the fewest `count`, counts within one Poisson standard deviation (sqrt(fewest + 1)) of it counting as tied. */
function fewest<C>(candidates: readonly C[], count: (c: C) => number): C[] {
  const least = Math.min(...candidates.map(count));
  return candidates.filter((c) => count(c) <= least + Math.sqrt(least + 1));
}

/**
 * The candidate to ship, by its held-out false alarms (`heldOutAlarms`): the fewest results over
 * its calibrated threshold; among those tied within noise, the fewest departures missed
 * (`departures`: a model that alarms as rarely but sees less is no better); then the fewest over
 * the 0.9 quantile; among those still tied, better separation of labelled events (event recall,
 * then score ratio); and otherwise the autoencoder, which sees a change in any direction, where
 * a PCA's residual is blind along its own axes. `tied` names the candidates the false alarms
 * could not part.
 */
export function chooseAnomalyModel<C extends CandidateAlarms>(
  candidates: readonly C[],
): { chosen: C; tied: C[] } {
  if (candidates.length === 0) throw new Error('no anomaly model candidates');
  const tied = fewest(
    fewest(
      fewest(candidates, (c) => c.overThreshold),
      (c) => c.departuresMissed ?? 0,
    ),
    (c) => c.overQuantile,
  );
  const ranked = tied.every((c) => c.eventRecall !== undefined)
    ? [...tied].sort(
        (a, b) => (b.eventRecall ?? 0) - (a.eventRecall ?? 0) || (b.scoreRatio ?? 0) - (a.scoreRatio ?? 0),
      )
    : [...tied].sort((a, b) => Number(b.model === 'autoencoder') - Number(a.model === 'autoencoder'));
  return { chosen: ranked[0] as C, tied };
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
