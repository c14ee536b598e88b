/**
 * Fits the Preprocessing (schemas.ts) on the training rows only: standardization stats,
 * category lists and the feature order. Applying it is `transformRows` in
 * shared/preprocess.ts, the same function the device calls.
 */
import type { Dataset } from '../dataset.ts';
import { DATASET_LIMITS } from '../dataset.ts';
import { inputWidth, isMissing } from '../preprocess.ts';
import type { FeatureSpec, Preprocessing } from '../schemas.ts';

export function fitPreprocessing(
  dataset: Dataset,
  trainRows: readonly number[],
  maxCategories: number = DATASET_LIMITS.maxCategories,
): Preprocessing {
  const rows = trainRows.map((i) => dataset.rows[i] ?? {});
  const features: FeatureSpec[] = [];
  for (const profile of dataset.columns) {
    const column = profile.column;
    if (profile.kind === 'numeric') {
      const values = rows
        .map((row) => row[column])
        .filter((raw) => !isMissing(raw))
        .map(Number)
        .filter(Number.isFinite);
      const mean = values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
      const variance = values.length ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length : 0;
      const std = Math.sqrt(variance);
      features.push({ kind: 'numeric', column, mean, std: std > 1e-9 ? std : 1, fill: mean });
    } else if (profile.kind === 'categorical') {
      const counts = new Map<string, number>();
      for (const row of rows) {
        const raw = row[column];
        if (isMissing(raw)) continue;
        const value = String(raw).trim();
        counts.set(value, (counts.get(value) ?? 0) + 1);
      }
      const categories = [...counts.entries()]
        .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, maxCategories)
        .map(([value]) => value);
      features.push({ kind: 'categorical', column, categories });
    } else if (profile.kind === 'date') {
      features.push({ kind: 'date', column });
    }
  }
  return { label: dataset.label, labels: dataset.labels, features, inputWidth: inputWidth(features) };
}
