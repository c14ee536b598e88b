/**
 * Fits the Preprocessing (schemas.ts) on the training rows only, one row at a time:
 * standardization stats (a running mean and Welford's variance), category counts (the most
 * frequent `maxCategories` get slots; at most TRACKED_DISTINCT values are counted) and the
 * feature order. Applying it is `transformRows` in shared/preprocess.ts, the same function
 * the device calls.
 */

import { type ColumnProfile, TRACKED_DISTINCT } from '../dataset/column-kind.ts';
import type { Dataset } from '../dataset.ts';
import { DATASET_LIMITS } from '../dataset.ts';
import { inputWidth, isMissing } from '../preprocess.ts';
import type { FeatureSpec, Preprocessing } from '../schemas.ts';

type ColumnFit =
  | { kind: 'numeric'; column: string; at: number; n: number; sum: number; mean: number; m2: number }
  | { kind: 'categorical'; column: string; at: number; counts: Map<string, number> }
  | { kind: 'date'; column: string; at: number };

export class PreprocessingFitter {
  private readonly fits: ColumnFit[];

  constructor(
    columns: readonly ColumnProfile[],
    header: readonly string[],
    private readonly maxCategories: number = DATASET_LIMITS.maxCategories,
  ) {
    this.fits = columns.flatMap((profile): ColumnFit[] => {
      const at = header.indexOf(profile.column);
      switch (profile.kind) {
        case 'numeric':
          return [{ kind: 'numeric', column: profile.column, at, n: 0, sum: 0, mean: 0, m2: 0 }];
        case 'categorical':
          return [{ kind: 'categorical', column: profile.column, at, counts: new Map() }];
        case 'date':
          return [{ kind: 'date', column: profile.column, at }];
        default:
          return [];
      }
    });
  }

  /** One training row, as cells in header order. */
  add(cells: readonly string[]): void {
    for (const fit of this.fits) {
      const raw = cells[fit.at];
      if (fit.kind === 'numeric') {
        if (isMissing(raw)) continue;
        const value = Number(raw);
        if (!Number.isFinite(value)) continue;
        fit.n++;
        fit.sum += value;
        const delta = value - fit.mean;
        fit.mean += delta / fit.n;
        fit.m2 += delta * (value - fit.mean);
      } else if (fit.kind === 'categorical') {
        if (isMissing(raw)) continue;
        const value = String(raw).trim();
        const count = fit.counts.get(value);
        if (count !== undefined) fit.counts.set(value, count + 1);
        else if (fit.counts.size < TRACKED_DISTINCT) fit.counts.set(value, 1);
      }
    }
  }

  finish(label: string, labels: string[]): Preprocessing {
    const features = this.fits.map((fit): FeatureSpec => {
      if (fit.kind === 'numeric') {
        const mean = fit.n ? fit.sum / fit.n : 0;
        const std = fit.n ? Math.sqrt(fit.m2 / fit.n) : 0;
        return { kind: 'numeric', column: fit.column, mean, std: std > 1e-9 ? std : 1, fill: mean };
      }
      if (fit.kind === 'categorical') {
        const categories = [...fit.counts.entries()]
          .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
          .slice(0, this.maxCategories)
          .map(([value]) => value);
        return { kind: 'categorical', column: fit.column, categories };
      }
      return { kind: 'date', column: fit.column };
    });
    return { label, labels, features, inputWidth: inputWidth(features) };
  }
}

export function fitPreprocessing(
  dataset: Dataset,
  trainRows: readonly number[],
  maxCategories: number = DATASET_LIMITS.maxCategories,
): Preprocessing {
  const fitter = new PreprocessingFitter(dataset.columns, dataset.header, maxCategories);
  for (const i of trainRows) {
    const row = dataset.rows[i] ?? {};
    fitter.add(dataset.header.map((column) => row[column] ?? ''));
  }
  return fitter.finish(dataset.label, dataset.labels);
}
