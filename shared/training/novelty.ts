/**
 * Fitting a classifier's novelty score (shared/novelty.ts): a PCA of the training inputs
 * (shared/training/pca.ts), the directions that hold 95% of the variance (at most 20, leaving
 * some off them for the residual), and a threshold at a quantile of held-out rows' scores, with
 * the same exponential tail as anomaly thresholds where the held-out rows are too few to reach it.
 */
import { type NoveltySpec, noveltyParts, noveltyScore } from '../novelty.ts';
import { thresholdAt } from './anomaly.ts';
import { axesHolding, principalAxes } from './pca.ts';

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
  const { mean, eigenvalues, weight } = principalAxes(train, width);
  const total = eigenvalues.reduce((a, b) => a + b, 0);
  // Directions with (next to) no variance: a reading that moves along one is far, whatever its size.
  const floor = Math.max(total * 1e-6, 1e-9);
  const k = axesHolding(eigenvalues, KEPT_VARIANCE, MAX_COMPONENTS);
  const components = Array.from({ length: k }, (_, c) =>
    Array.from({ length: width }, (_, j) => round(weight(j, c))),
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
