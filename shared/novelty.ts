/**
 * A classifier's novelty score, the same in the trainer and on the gateway: how far a
 * reading's input vector is from the inputs the model was trained on. A PCA of the training
 * inputs keeps the directions that hold most of their variance; the score adds the squared
 * distance along them (each in units of its variance, Hotelling's T²) and the squared distance
 * off them (in units of its training mean, the Q residual), over k + 1, so training inputs
 * score about 1. A reading over the threshold is answered `unknown`: the model never saw
 * anything like it, and whatever class it would pick says nothing.
 */
import type { Manifest } from './schemas.ts';

export type NoveltySpec = NonNullable<Manifest['novelty']>;

/** The answer a classifier gives a reading too far from its training data. */
export const UNKNOWN_CLASS = 'unknown';

/** Row `i`'s squared distance along the kept directions (in their variances) and off them. */
export function noveltyParts(
  x: Float32Array,
  width: number,
  i: number,
  spec: Pick<NoveltySpec, 'mean' | 'components' | 'variances'>,
  centered: Float64Array = new Float64Array(width),
): { t2: number; residual: number } {
  let norm = 0;
  for (let j = 0; j < width; j++) {
    const d = (x[i * width + j] as number) - (spec.mean[j] ?? 0);
    centered[j] = d;
    norm += d * d;
  }
  let t2 = 0;
  let along = 0;
  spec.components.forEach((component, c) => {
    let t = 0;
    for (let j = 0; j < width; j++) t += (component[j] ?? 0) * (centered[j] as number);
    along += t * t;
    t2 += (t * t) / (spec.variances[c] as number);
  });
  return { t2, residual: Math.max(0, norm - along) };
}

/** Row `i`'s novelty score; `centered` is scratch of the input width. */
export function noveltyScore(
  x: Float32Array,
  width: number,
  i: number,
  spec: Pick<NoveltySpec, 'mean' | 'components' | 'variances' | 'residualMean'>,
  centered?: Float64Array,
): number {
  const { t2, residual } = noveltyParts(x, width, i, spec, centered);
  return (t2 + residual / spec.residualMean) / (spec.components.length + 1);
}
