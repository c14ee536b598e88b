/** Metrics on a held-out split: classification (accuracy, macro-F1, per class, confusion) and regression (RMSE, MAE, R²). */
import type { ModelMetrics, RegressionMetrics } from '../schemas.ts';

/** Index of the largest value in each row of a row-major [n, k] matrix. */
export function argmaxRows(probabilities: Float32Array | number[], classes: number): number[] {
  const n = Math.floor(probabilities.length / classes);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) {
      if ((probabilities[i * classes + k] ?? 0) > (probabilities[i * classes + best] ?? 0)) best = k;
    }
    out[i] = best;
  }
  return out;
}

export function classificationMetrics(
  truth: readonly number[],
  predicted: readonly number[],
  labels: readonly string[],
): ModelMetrics {
  const k = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  truth.forEach((t, i) => {
    const p = predicted[i] ?? -1;
    if (p === t) correct++;
    const row = confusion[t];
    if (row && p >= 0 && p < k) row[p] = (row[p] ?? 0) + 1;
  });
  const perClass: NonNullable<ModelMetrics['perClass']> = {};
  let f1Sum = 0;
  labels.forEach((name, c) => {
    const tp = confusion[c]?.[c] ?? 0;
    const support = (confusion[c] ?? []).reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((sum, row) => sum + (row[c] ?? 0), 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    f1Sum += precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[name] = { precision: round(precision), recall: round(recall), support };
  });
  return {
    accuracy: truth.length ? round(correct / truth.length) : 0,
    macroF1: k ? round(f1Sum / k) : 0,
    perClass,
    confusion,
    testRows: truth.length,
  };
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/**
 * Regression metrics on held-out rows, in target units, beside the RMSE of always predicting
 * `trainMean` (the training targets' mean): a model that learned nothing shows it there.
 */
export function regressionMetrics(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  trainMean: number,
): RegressionMetrics {
  const n = truth.length;
  let squared = 0;
  let absolute = 0;
  let meanSquared = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += truth[i] as number;
  const testMean = n ? sum / n : 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const t = truth[i] as number;
    const error = (predicted[i] as number) - t;
    squared += error * error;
    absolute += Math.abs(error);
    meanSquared += (trainMean - t) ** 2;
    total += (t - testMean) ** 2;
  }
  return {
    rmse: round(n ? Math.sqrt(squared / n) : 0),
    mae: round(n ? absolute / n : 0),
    // 1 - SSE / SST on the test rows (0 for the test mean, negative when worse than it).
    r2: round(total > 0 ? 1 - squared / total : 0),
    meanRmse: round(n ? Math.sqrt(meanSquared / n) : 0),
  };
}
