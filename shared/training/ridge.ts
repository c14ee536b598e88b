/**
 * Ridge regression as a model candidate: a linear model of standardized inputs, fitted in
 * closed form, its penalty chosen by validation error on held-out series, and shipped as a
 * single dense layer (what the gateway loads like any other LayersModel). Across units that
 * each wear or behave their own way (machines, sites), a linear model of a window's features
 * often generalizes to unseen units better than a network that fits the training units'
 * quirks; the trainer keeps whichever of the two predicts the validation units better.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { tf } from '../tf.ts';

/**
 * Penalties tried, per row (the loss is the mean squared error plus penalty x |w|^2), on
 * inputs and targets standardized to unit variance, so one grid serves every dataset.
 */
export const RIDGE_PENALTIES = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10] as const;

export interface Ridge {
  weights: Float64Array;
  bias: number;
  penalty: number;
}

/** The solution of a x = b for a symmetric positive definite `a` (n x n, row-major), by Cholesky. */
export function solveSpd(a: Float64Array, b: Float64Array): Float64Array {
  const n = b.length;
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j] as number;
      for (let k = 0; k < j; k++) sum -= (l[i * n + k] as number) * (l[j * n + k] as number);
      if (i === j) {
        if (sum <= 0) throw new Error('solveSpd: the matrix is not positive definite');
        l[i * n + i] = Math.sqrt(sum);
      } else l[i * n + j] = sum / (l[j * n + j] as number);
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = b[i] as number;
    for (let k = 0; k < i; k++) sum -= (l[i * n + k] as number) * (y[k] as number);
    y[i] = sum / (l[i * n + i] as number);
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let sum = y[i] as number;
    for (let k = i + 1; k < n; k++) sum -= (l[k * n + i] as number) * (x[k] as number);
    x[i] = sum / (l[i * n + i] as number);
  }
  return x;
}

/** Uncentered sums of a set of rows, which add and subtract: a fold's complement is the total minus the fold. */
export interface RidgeSums {
  width: number;
  n: number;
  x: Float64Array;
  y: number;
  /** x'x (width x width, row-major) and x'y. */
  xx: Float64Array;
  xy: Float64Array;
}

export function ridgeSums(x: Float32Array, y: ArrayLike<number>, width: number): RidgeSums {
  const sums = emptySums(width);
  for (let i = 0; i < y.length; i++) addRow(sums, x, i, y[i] as number);
  return sums;
}

function emptySums(width: number): RidgeSums {
  return {
    width,
    n: 0,
    x: new Float64Array(width),
    y: 0,
    xx: new Float64Array(width * width),
    xy: new Float64Array(width),
  };
}

function addRow(sums: RidgeSums, x: Float32Array, i: number, y: number): void {
  const { width } = sums;
  sums.n++;
  sums.y += y;
  for (let a = 0; a < width; a++) {
    const xa = x[i * width + a] as number;
    sums.x[a] = (sums.x[a] as number) + xa;
    sums.xy[a] = (sums.xy[a] as number) + xa * y;
    for (let b = a; b < width; b++)
      sums.xx[a * width + b] = (sums.xx[a * width + b] as number) + xa * (x[i * width + b] as number);
  }
}

function minus(total: RidgeSums, part: RidgeSums): RidgeSums {
  const sub = (p: Float64Array, q: Float64Array) => p.map((v, j) => v - (q[j] as number));
  return {
    width: total.width,
    n: total.n - part.n,
    x: sub(total.x, part.x),
    y: total.y - part.y,
    xx: sub(total.xx, part.xx),
    xy: sub(total.xy, part.xy),
  };
}

/**
 * The ridge of `penalty` (the intercept unpenalized): (X'X + penalty n I) w = X'y on centered
 * rows, the penalty per row so it means the same on 100 rows and on 100,000.
 */
export function fitRidge(sums: RidgeSums, penalty: number): Ridge {
  const { width, n } = sums;
  const mean = sums.x.map((v) => v / n);
  const yMean = sums.y / n;
  const a = new Float64Array(width * width);
  const b = new Float64Array(width);
  for (let i = 0; i < width; i++) {
    b[i] = (sums.xy[i] as number) - n * (mean[i] as number) * yMean;
    for (let j = i; j < width; j++) {
      const v = (sums.xx[i * width + j] as number) - n * (mean[i] as number) * (mean[j] as number);
      a[i * width + j] = v;
      a[j * width + i] = v;
    }
    // A hair more keeps a constant input (all zeros once standardized) from making it singular.
    a[i * width + i] = (a[i * width + i] as number) + penalty * n + 1e-9;
  }
  const weights = solveSpd(a, b);
  let bias = yMean;
  for (let j = 0; j < width; j++) bias -= (weights[j] as number) * (mean[j] as number);
  return { weights, bias, penalty };
}

export function ridgePredict(ridge: Ridge, x: Float32Array): Float64Array {
  const width = ridge.weights.length;
  const n = x.length / width;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = ridge.bias;
    for (let j = 0; j < width; j++) v += (ridge.weights[j] as number) * (x[i * width + j] as number);
    out[i] = v;
  }
  return out;
}

export function meanSquaredError(predicted: ArrayLike<number>, truth: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < truth.length; i++) sum += ((predicted[i] as number) - (truth[i] as number)) ** 2;
  return sum / Math.max(1, truth.length);
}

/** Folds of whole groups: rows of one group (a machine's windows) are never split across folds. */
export const RIDGE_FOLDS = 5;

/**
 * The penalty with the least cross-validated error, folds made of whole groups: a row's
 * neighbours in its own group (overlapping windows of one machine) would otherwise vouch for
 * a penalty too small to generalize to new groups. Fewer groups than folds: one fold each.
 */
export function ridgePenaltyByGroups(
  x: Float32Array,
  y: ArrayLike<number>,
  groups: readonly string[],
  width: number,
  penalties: readonly number[] = RIDGE_PENALTIES,
): { penalty: number; mse: number } {
  const names = [...new Set(groups)];
  const folds = Math.min(RIDGE_FOLDS, names.length);
  if (folds < 2) throw new Error('ridgePenaltyByGroups needs rows of at least 2 groups');
  const foldOf = new Map(names.map((name, i) => [name, i % folds]));
  const parts = Array.from({ length: folds }, () => emptySums(width));
  const total = emptySums(width);
  for (let i = 0; i < y.length; i++) {
    addRow(parts[foldOf.get(groups[i] as string) as number] as RidgeSums, x, i, y[i] as number);
    addRow(total, x, i, y[i] as number);
  }
  const ridges = parts.map((part) => penalties.map((penalty) => fitRidge(minus(total, part), penalty)));
  const squared = new Float64Array(penalties.length);
  for (let i = 0; i < y.length; i++) {
    const fold = foldOf.get(groups[i] as string) as number;
    penalties.forEach((_, p) => {
      const ridge = ridges[fold]?.[p] as Ridge;
      let v = ridge.bias;
      for (let j = 0; j < width; j++) v += (ridge.weights[j] as number) * (x[i * width + j] as number);
      squared[p] = (squared[p] as number) + (v - (y[i] as number)) ** 2;
    });
  }
  let best = 0;
  for (let p = 1; p < penalties.length; p++) if ((squared[p] as number) < (squared[best] as number)) best = p;
  return { penalty: penalties[best] as number, mse: (squared[best] as number) / Math.max(1, y.length) };
}

/** The ridge as a LayersModel: one dense unit, linear, holding its weights and bias. */
export function ridgeModel(ridge: Ridge): LayersModel {
  const width = ridge.weights.length;
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: 1, activation: 'linear', inputShape: [width] }));
  const values = [tf.tensor2d(Float32Array.from(ridge.weights), [width, 1]), tf.tensor1d([ridge.bias])];
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

/** The columns `columns` of `x` (rows of `width`), as rows of their own. */
export function selectColumns(x: Float32Array, width: number, columns: readonly number[]): Float32Array {
  const n = x.length / width;
  const out = new Float32Array(n * columns.length);
  for (let i = 0; i < n; i++)
    columns.forEach((c, j) => {
      out[i * columns.length + j] = x[i * width + c] as number;
    });
  return out;
}

/**
 * Forward selection of whole column kinds (every channel's mean, every channel's slope, ...):
 * the kind whose columns most lower the grouped cross-validated error joins, until none does.
 * Inputs that carry nothing about the target (a noise channel's kurtosis) still cost a ridge
 * variance on new groups; a kind at a time keeps the search to a few dozen closed-form fits.
 */
export function selectColumnKinds(
  x: Float32Array,
  y: ArrayLike<number>,
  groups: readonly string[],
  width: number,
  kinds: readonly string[],
): { columns: number[]; penalty: number; mse: number } {
  const names = [...new Set(kinds)];
  let chosen: string[] = [];
  let best = { columns: [] as number[], penalty: 0, mse: Number.POSITIVE_INFINITY };
  for (;;) {
    let step: typeof best | undefined;
    let stepKind = '';
    for (const kind of names.filter((k) => !chosen.includes(k))) {
      const keep = new Set([...chosen, kind]);
      const columns = kinds.flatMap((k, c) => (keep.has(k) ? [c] : []));
      const tried = ridgePenaltyByGroups(selectColumns(x, width, columns), y, groups, columns.length);
      if (!step || tried.mse < step.mse) {
        step = { columns, ...tried };
        stepKind = kind;
      }
    }
    if (!step || step.mse >= best.mse) return best;
    best = step;
    chosen = [...chosen, stepKind];
  }
}
