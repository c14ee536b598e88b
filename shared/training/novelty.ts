/**
 * Fitting a classifier's novelty score (shared/novelty.ts): a PCA of the training inputs
 * (ml-pca's eigen-decomposition of their covariance, accumulated here in one pass), the
 * directions that hold 95% of the variance (at most 20, leaving some off them for the
 * residual), and a threshold at a quantile of held-out rows' scores, with the same
 * exponential tail as anomaly thresholds where the held-out rows are too few to reach it.
 */
import { PCA } from 'ml-pca';
import { type NoveltySpec, noveltyParts, noveltyScore } from '../novelty.ts';
import { thresholdAt } from './anomaly.ts';

/** Share of the variance the kept directions hold, and how many at most. */
const KEPT_VARIANCE = 0.95;
const MAX_COMPONENTS = 20;

export const DEFAULT_NOVELTY_QUANTILE = 0.999;

const round = (value: number) => Number(value.toPrecision(7));

/** The PCA of `train` (n x width) and the threshold at `quantile` of `heldOut`'s scores. */
export function fitNovelty(
  train: Float32Array,
  heldOut: Float32Array,
  width: number,
  quantile = DEFAULT_NOVELTY_QUANTILE,
): Omit<NoveltySpec, 'golden'> {
  const n = train.length / width;
  if (n < 2) throw new Error('a novelty score needs at least 2 training rows');
  const mean = new Float64Array(width);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < width; j++) mean[j] = (mean[j] as number) + (train[i * width + j] as number) / n;
  const covariance = Array.from({ length: width }, () => new Array<number>(width).fill(0));
  const d = new Float64Array(width);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < width; j++) d[j] = (train[i * width + j] as number) - (mean[j] as number);
    for (let a = 0; a < width; a++) {
      const row = covariance[a] as number[];
      const da = d[a] as number;
      for (let b = a; b < width; b++) row[b] = (row[b] as number) + (da * (d[b] as number)) / (n - 1);
    }
  }
  for (let a = 0; a < width; a++)
    for (let b = 0; b < a; b++) (covariance[a] as number[])[b] = covariance[b]?.[a] ?? 0;

  const pca = new PCA(covariance, { isCovarianceMatrix: true });
  const eigenvalues = pca.getEigenvalues().map((v) => Math.max(0, v));
  const total = eigenvalues.reduce((a, b) => a + b, 0);
  // Directions with (next to) no variance: a reading that moves along one is far, whatever its size.
  const floor = Math.max(total * 1e-6, 1e-9);
  let k = 0;
  let held = 0;
  while (k < Math.min(MAX_COMPONENTS, width) && (held < KEPT_VARIANCE * total || k === 0)) {
    held += eigenvalues[k] ?? 0;
    k++;
  }
  if (k === width && width > 1) k--; // leave a residual to measure
  const vectors = pca.getEigenvectors();
  const components = Array.from({ length: k }, (_, c) =>
    Array.from({ length: width }, (_, j) => round(vectors.get(j, c))),
  );
  const variances = eigenvalues.slice(0, k).map((v) => round(Math.max(v, floor)));
  const spec = { mean: Array.from(mean, round), components, variances };
  const centered = new Float64Array(width);
  // The residual's training mean is its unit (floored, so a fit with no residual stays finite).
  let residual = 0;
  for (let i = 0; i < n; i++) residual += noveltyParts(train, width, i, spec, centered).residual / n;
  const fitted = { ...spec, residualMean: round(Math.max(residual, floor)) };
  const scores = Float64Array.from({ length: heldOut.length / width }, (_, i) =>
    noveltyScore(heldOut, width, i, fitted, centered),
  );
  return { ...fitted, threshold: round(thresholdAt(scores, quantile)), quantile };
}

/** Share of `x`'s rows (n x width) scored over the spec's threshold. */
export function unknownRate(x: Float32Array, width: number, spec: Omit<NoveltySpec, 'golden'>): number {
  const n = x.length / width;
  if (n === 0) return 0;
  const centered = new Float64Array(width);
  let over = 0;
  for (let i = 0; i < n; i++) if (noveltyScore(x, width, i, spec, centered) > spec.threshold) over++;
  return over / n;
}
