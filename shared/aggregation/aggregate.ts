/**
 * Pre-aggregation of inference results into per-minute cells, and the statistics read back
 * from summed cells. A cell is additive in every field, so cells from many invocations are
 * combined by plain addition (DynamoDB ADD per attribute) and stay exact.
 */
import { UNKNOWN_CLASS } from '../novelty.ts';
import type { InferenceResult, Manifest } from '../schemas.ts';
import { targetNumber } from '../target.ts';
import { aggregateKeys } from '../topology.ts';
import {
  addToHistogram,
  CONFIDENCE_EDGES,
  type Histogram,
  LATENCY_EDGES_MS,
  mergeHistograms,
  percentileFromHistogram,
} from './histogram.ts';
import { type DriftLevel, driftLevel, populationStabilityIndex } from './psi.ts';
import { addValueToHistogram, histogramPairs, valueDriftPsi, valueQuantile } from './value-histogram.ts';

/** Used when the manifest of a version cannot be read. */
export const DEFAULT_LOW_CONFIDENCE = 0.6;

export interface AggregateCell {
  count: number;
  /** Results whose confidence was below the model's lowConfidence threshold. */
  lowConfidence: number;
  confidenceSum: number;
  latencySumMs: number;
  /** Results that carried ground truth, and how many of those were right. */
  labelled: number;
  correct: number;
  classes: Record<string, number>;
  /**
   * Regression results: how many, the sum and sum of squares of their values, and for the
   * labelled ones (counted in `labelled`) the sums of squared and absolute errors.
   */
  valued: number;
  /** Anomaly results (counted in `classes` as 'anomaly' and 'normal'; they carry no confidence). */
  scored: number;
  valueSum: number;
  valueSquares: number;
  errorSquares: number;
  errorAbs: number;
  /** Regression: the values' scale-free histogram (value-histogram.ts). */
  valueHist: Histogram;
  confidenceHist: Histogram;
  latencyHist: Histogram;
}

export function emptyCell(): AggregateCell {
  return {
    count: 0,
    lowConfidence: 0,
    confidenceSum: 0,
    latencySumMs: 0,
    labelled: 0,
    correct: 0,
    classes: {},
    valued: 0,
    scored: 0,
    valueSum: 0,
    valueSquares: 0,
    errorSquares: 0,
    errorAbs: 0,
    valueHist: {},
    confidenceHist: {},
    latencyHist: {},
  };
}

/** What a cell counts of a result (its id is the batch's business, not the cell's). */
export type CountedResult = Pick<
  InferenceResult,
  'ts' | 'label' | 'confidence' | 'wouldBe' | 'value' | 'anomaly' | 'score' | 'latencyMs' | 'truth'
>;

export function addResult(cell: AggregateCell, result: CountedResult, lowConfidence: number): void {
  if (result.value !== undefined) {
    addValue(cell, result.value, result.truth, result.latencyMs);
    return;
  }
  if (result.anomaly !== undefined) {
    // An anomaly model's verdicts count as two classes: the class mix is its anomaly rate.
    const verdict = result.anomaly ? 'anomaly' : 'normal';
    cell.count += 1;
    cell.scored += 1;
    cell.classes[verdict] = (cell.classes[verdict] ?? 0) + 1;
    // The scores' histogram: their drift from the held-out normal scores of training.
    if (result.score !== undefined) addValueToHistogram(cell.valueHist, result.score);
    cell.latencySumMs += result.latencyMs;
    addToHistogram(cell.latencyHist, result.latencyMs, LATENCY_EDGES_MS);
    return;
  }
  const label = result.label ?? '';
  const confidence = result.confidence ?? 0;
  cell.count += 1;
  if (confidence < lowConfidence) cell.lowConfidence += 1;
  cell.confidenceSum += confidence;
  cell.latencySumMs += result.latencyMs;
  // An `unknown` answer (novelty) abstains: live accuracy counts the readings given a class.
  if (result.truth !== undefined && result.wouldBe === undefined) {
    cell.labelled += 1;
    if (result.truth === label) cell.correct += 1;
  }
  cell.classes[label] = (cell.classes[label] ?? 0) + 1;
  addToHistogram(cell.confidenceHist, confidence, CONFIDENCE_EDGES);
  addToHistogram(cell.latencyHist, result.latencyMs, LATENCY_EDGES_MS);
}

/** A regression result: its value, and its error when the reading carried a numeric truth. */
function addValue(cell: AggregateCell, value: number, truth: string | undefined, latencyMs: number): void {
  cell.count += 1;
  cell.valued += 1;
  cell.valueSum += value;
  cell.valueSquares += value * value;
  addValueToHistogram(cell.valueHist, value);
  cell.latencySumMs += latencyMs;
  addToHistogram(cell.latencyHist, latencyMs, LATENCY_EDGES_MS);
  const actual = truth === undefined ? Number.NaN : targetNumber(truth);
  if (Number.isNaN(actual)) return;
  cell.labelled += 1;
  cell.errorSquares += (value - actual) ** 2;
  cell.errorAbs += Math.abs(value - actual);
}

export function mergeCells(into: AggregateCell, from: AggregateCell): AggregateCell {
  into.count += from.count;
  into.lowConfidence += from.lowConfidence;
  into.confidenceSum += from.confidenceSum;
  into.latencySumMs += from.latencySumMs;
  into.labelled += from.labelled;
  into.correct += from.correct;
  into.valued += from.valued;
  into.scored += from.scored;
  into.valueSum += from.valueSum;
  into.valueSquares += from.valueSquares;
  into.errorSquares += from.errorSquares;
  into.errorAbs += from.errorAbs;
  mergeHistograms(into.valueHist, from.valueHist);
  for (const [name, count] of Object.entries(from.classes))
    into.classes[name] = (into.classes[name] ?? 0) + count;
  mergeHistograms(into.confidenceHist, from.confidenceHist);
  mergeHistograms(into.latencyHist, from.latencyHist);
  return into;
}

export type AggregateLevel = 'model' | 'thing';

export interface AggregateKey {
  level: AggregateLevel;
  pk: string;
  sk: string;
  model: string;
  version: number;
  minute: string;
  thing?: string;
}

export interface KeyedCell {
  key: AggregateKey;
  cell: AggregateCell;
}

/** A cell with the UTC minute (aggregateKeys.minute) it covers. */
export interface MinuteCell {
  minute: string;
  cell: AggregateCell;
}

/** One cell per UTC minute the results fall in, sorted by minute. */
export function cellsByMinute(results: readonly InferenceResult[], lowConfidence: number): MinuteCell[] {
  const byMinute = new Map<string, AggregateCell>();
  for (const result of results) {
    const minute = aggregateKeys.minute(result.ts);
    let cell = byMinute.get(minute);
    if (!cell) {
      cell = emptyCell();
      byMinute.set(minute, cell);
    }
    addResult(cell, result, lowConfidence);
  }
  return [...byMinute].sort(([a], [b]) => a.localeCompare(b)).map(([minute, cell]) => ({ minute, cell }));
}

/**
 * Groups one batch's valid results by minute into per-(model, version, thing, minute) and
 * per-(model, version, minute) cells: one write per key per batch.
 */
export function preAggregate(input: {
  model: string;
  version: number;
  thing: string;
  results: readonly InferenceResult[];
  lowConfidence: number;
}): KeyedCell[] {
  const { model, version, thing } = input;
  const keyed: KeyedCell[] = [];
  for (const { minute, cell } of cellsByMinute(input.results, input.lowConfidence)) {
    const sk = aggregateKeys.sort(minute, version);
    keyed.push({
      key: { level: 'thing', pk: aggregateKeys.thing(model, thing), sk, model, version, minute, thing },
      cell,
    });
    // The model-level cell holds the same numbers; a copy keeps the two writes independent.
    keyed.push({
      key: { level: 'model', pk: aggregateKeys.model(model), sk, model, version, minute },
      cell: mergeCells(emptyCell(), cell),
    });
  }
  return keyed;
}

export interface CellSummary {
  inferences: number;
  /** Share of each predicted class. */
  classMix: Record<string, number>;
  classCounts: Record<string, number>;
  confidenceMean: number | null;
  lowConfidenceRate: number | null;
  latencyMeanMs: number | null;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  /** Share of labelled results predicted right; null when none carried truth (and for regression). */
  liveAccuracy: number | null;
  labelled: number;
  /** Regression: the predictions' mean and standard deviation, and live RMSE and MAE where truth arrived. */
  valueMean: number | null;
  valueStd: number | null;
  valueP50: number | null;
  valueP90: number | null;
  /** Regression: the predictions' histogram as [bucket, count] pairs (value-histogram.ts), for the canary check. */
  valueHistogram?: [number, number][];
  liveRmse: number | null;
  liveMae: number | null;
  /** Anomaly models: the share of scored results over the threshold; null for other models. */
  anomalyRate: number | null;
  drift: { psi: number; level: DriftLevel } | null;
}

/**
 * What a version was trained on, for drift: its class shares, or a regression model's
 * training targets as a value histogram.
 */
export interface TrainingDistribution {
  classes?: Record<string, number>;
  values?: Histogram;
}

export function trainingDistributionOf(
  manifest: Pick<Manifest, 'classDistribution' | 'preprocessing' | 'anomaly'> | undefined,
): TrainingDistribution | undefined {
  if (!manifest) return undefined;
  const histogram = manifest.preprocessing.target?.histogram;
  if (manifest.preprocessing.task === 'regression')
    return histogram ? { values: Object.fromEntries(histogram) } : {};
  // An anomaly model's scores against its held-out normal scores (none in older manifests).
  if (manifest.preprocessing.task === 'anomaly') {
    const scores = manifest.anomaly?.scoreHistogram;
    return scores ? { values: Object.fromEntries(scores) } : {};
  }
  return { classes: manifest.classDistribution };
}

/**
 * The classes a version's cells may count: its class names (and `unknown` when it scores
 * novelty), or an anomaly model's verdicts.
 */
export function countedClasses(manifest: Pick<Manifest, 'preprocessing' | 'novelty'>): readonly string[] {
  if (manifest.preprocessing.task === 'anomaly') return ['anomaly', 'normal'];
  return manifest.novelty ? [...manifest.preprocessing.labels, UNKNOWN_CLASS] : manifest.preprocessing.labels;
}

/** Statistics of a (summed) cell; drift only when the training distribution is known. */
export function summarizeCell(cell: AggregateCell, training?: TrainingDistribution): CellSummary {
  const n = cell.count;
  const classMix = Object.fromEntries(
    Object.entries(cell.classes)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, count]) => [name, n > 0 ? count / n : 0]),
  );
  const psi =
    cell.valued > 0 || cell.scored > 0
      ? training?.values
        ? valueDriftPsi(training.values, cell.valueHist)
        : null
      : training?.classes
        ? populationStabilityIndex(training.classes, cell.classes)
        : null;
  return {
    inferences: n,
    classMix,
    classCounts: { ...cell.classes },
    // Regression results carry no confidence: those figures are null, not 0.
    confidenceMean: n > 0 && cell.valued + cell.scored === 0 ? cell.confidenceSum / n : null,
    lowConfidenceRate: n > 0 && cell.valued + cell.scored === 0 ? cell.lowConfidence / n : null,
    latencyMeanMs: n > 0 ? cell.latencySumMs / n : null,
    latencyP50Ms: percentileFromHistogram(cell.latencyHist, LATENCY_EDGES_MS, 0.5),
    latencyP99Ms: percentileFromHistogram(cell.latencyHist, LATENCY_EDGES_MS, 0.99),
    liveAccuracy: cell.labelled > 0 && cell.valued === 0 ? cell.correct / cell.labelled : null,
    labelled: cell.labelled,
    ...valueStatistics(cell),
    anomalyRate: cell.scored > 0 ? (cell.classes.anomaly ?? 0) / cell.scored : null,
    drift: psi === null ? null : { psi, level: driftLevel(psi) },
  };
}

function valueStatistics(
  cell: AggregateCell,
): Pick<
  CellSummary,
  'valueMean' | 'valueStd' | 'valueP50' | 'valueP90' | 'valueHistogram' | 'liveRmse' | 'liveMae'
> {
  const v = cell.valued;
  if (v === 0)
    return { valueMean: null, valueStd: null, valueP50: null, valueP90: null, liveRmse: null, liveMae: null };
  const mean = cell.valueSum / v;
  return {
    valueMean: mean,
    valueStd: Math.sqrt(Math.max(0, cell.valueSquares / v - mean * mean)),
    valueP50: valueQuantile(cell.valueHist, 0.5),
    valueP90: valueQuantile(cell.valueHist, 0.9),
    valueHistogram: histogramPairs(cell.valueHist),
    liveRmse: cell.labelled > 0 ? Math.sqrt(cell.errorSquares / cell.labelled) : null,
    liveMae: cell.labelled > 0 ? cell.errorAbs / cell.labelled : null,
  };
}
