/**
 * Principal axes of training vectors, shared by a classifier's novelty score and the PCA
 * anomaly model: their covariance accumulated here in one pass (the rows are never copied into
 * a matrix) and ml-pca's eigen-decomposition of it.
 */
import { PCA } from 'ml-pca';

export interface PrincipalAxes {
  mean: Float64Array;
  /** Variance along each axis, largest first (rounding's negatives as 0). */
  eigenvalues: number[];
  /** Axis `c`'s weight on slot `j`. */
  weight: (j: number, c: number) => number;
}

/** The principal axes of `x` (n rows of `width`), n >= 2. */
export function principalAxes(x: Float32Array, width: number): PrincipalAxes {
  const n = x.length / width;
  if (n < 2) throw new Error('principal axes need at least 2 rows');
  const mean = new Float64Array(width);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < width; j++) mean[j] = (mean[j] as number) + (x[i * width + j] as number) / n;
  const covariance = Array.from({ length: width }, () => new Array<number>(width).fill(0));
  const d = new Float64Array(width);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < width; j++) d[j] = (x[i * width + j] as number) - (mean[j] as number);
    for (let a = 0; a < width; a++) {
      const row = covariance[a] as number[];
      const da = d[a] as number;
      for (let b = a; b < width; b++) row[b] = (row[b] as number) + (da * (d[b] as number)) / (n - 1);
    }
  }
  for (let a = 0; a < width; a++)
    for (let b = 0; b < a; b++) (covariance[a] as number[])[b] = covariance[b]?.[a] ?? 0;
  const pca = new PCA(covariance, { isCovarianceMatrix: true });
  const vectors = pca.getEigenvectors();
  return {
    mean,
    eigenvalues: pca.getEigenvalues().map((v) => Math.max(0, v)),
    weight: (j, c) => vectors.get(j, c),
  };
}

/**
 * How many axes, largest first, hold `share` of the variance: at least one, at most `max`,
 * and fewer than all of them when there are several (what is off them is what gets measured).
 */
export function axesHolding(eigenvalues: readonly number[], share: number, max: number): number {
  const width = eigenvalues.length;
  const total = eigenvalues.reduce((a, b) => a + b, 0);
  let k = 0;
  let held = 0;
  while (k < Math.min(max, width) && (held < share * total || k === 0)) {
    held += eigenvalues[k] ?? 0;
    k++;
  }
  return k === width && width > 1 ? k - 1 : k;
}
