/**
 * Fits the Preprocessing (schemas.ts) on the training rows only, one row at a time:
 * standardization stats (a running mean and Welford's variance, the third moment for the
 * skewness, the same of log(1 + x) for a column that turns out strongly right-skewed and
 * non-negative), category counts (the most
 * frequent `maxCategories` get slots; at most TRACKED_DISTINCT values are counted) and the
 * feature order. Applying it is `transformRows` in shared/preprocess.ts, the same function
 * the device calls.
 */

import { type ColumnProfile, TRACKED_DISTINCT } from '../dataset/column-kind.ts';
import type { Dataset } from '../dataset.ts';
import { DATASET_LIMITS } from '../dataset.ts';
import { inputWidth, isMissing } from '../preprocess.ts';
import type { FeatureSpec, Preprocessing } from '../schemas.ts';

/** Running moments of a column's values (Welford's, with Terriberry's third moment). */
interface Moments {
  n: number;
  mean: number;
  m2: number;
  m3: number;
}

function addTo(m: Moments, value: number): void {
  const n1 = m.n;
  m.n++;
  const delta = value - m.mean;
  const deltaN = delta / m.n;
  const term = delta * deltaN * n1;
  m.mean += deltaN;
  m.m3 += term * deltaN * (m.n - 2) - 3 * deltaN * m.m2;
  m.m2 += term;
}

/** Sample skewness (g1); 0 for a constant or tiny column. */
function skewness(m: Moments): number {
  return m.n > 2 && m.m2 > 1e-12 ? (Math.sqrt(m.n) * m.m3) / m.m2 ** 1.5 : 0;
}

/**
 * Skewness above which a non-negative column is standardized as log(1 + x): a value of 2 is
 * far beyond "highly skewed" (1), so only heavy tails (deaths, populations, counts) are
 * touched; standardized raw, most of their rows sit in a sliver near the mean that an MLP
 * needs many steps (or never) to resolve.
 */
export const LOG_SKEWNESS = 2;

type ColumnFit =
  | { kind: 'numeric'; column: string; at: number; raw: Moments; log: Moments; min: number }
  | { kind: 'categorical'; column: string; at: number; counts: Map<string, number> }
  | { kind: 'date'; column: string; at: number };

export class PreprocessingFitter {
  private readonly fits: ColumnFit[];
  /** What `finish` did beyond standardizing (a log transform), for the run's notices. */
  readonly notices: string[] = [];

  constructor(
    columns: readonly ColumnProfile[],
    header: readonly string[],
    private readonly maxCategories: number = DATASET_LIMITS.maxCategories,
  ) {
    this.fits = columns.flatMap((profile): ColumnFit[] => {
      const at = header.indexOf(profile.column);
      switch (profile.kind) {
        case 'numeric':
          return [
            {
              kind: 'numeric',
              column: profile.column,
              at,
              raw: { n: 0, mean: 0, m2: 0, m3: 0 },
              log: { n: 0, mean: 0, m2: 0, m3: 0 },
              min: Number.POSITIVE_INFINITY,
            },
          ];
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
        addTo(fit.raw, value);
        if (value < fit.min) fit.min = value;
        if (value >= 0) addTo(fit.log, Math.log1p(value));
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
        const skew = skewness(fit.raw);
        const log = fit.min >= 0 && skew > LOG_SKEWNESS;
        if (log)
          this.notices.push(
            `column '${fit.column}': right-skewed (skewness ${skew.toFixed(1)}, no negative values), standardized as log(1 + x)`,
          );
        const m = log ? fit.log : fit.raw;
        const std = m.n ? Math.sqrt(m.m2 / m.n) : 0;
        return {
          kind: 'numeric',
          column: fit.column,
          mean: m.mean,
          std: std > 1e-9 ? std : 1,
          fill: m.mean,
          ...(log ? { log1p: true as const } : {}),
        };
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
