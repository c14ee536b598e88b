/**
 * A regression model's target: read from a dataset cell or a reading's truth, standardized
 * for training, and turned back into a value, the same way in the trainer, `edgeloop score`
 * and on the gateway (the manifest carries the scale).
 */
import type { Histogram } from './aggregation/histogram.ts';
import { addValueToHistogram, histogramPairs } from './aggregation/value-histogram.ts';
import { numericOrFill } from './preprocess.ts';
import type { TargetScale } from './schemas.ts';

/** A target cell as a number, or NaN when it is missing or not a number. */
export function targetNumber(raw: string | number | null | undefined): number {
  return numericOrFill(raw, Number.NaN);
}

/** A value within the scale's bounds (a capped remaining life stays capped). */
export function clipTarget(value: number, bounds: Pick<TargetScale, 'min' | 'max'>): number {
  if (bounds.min !== undefined && value < bounds.min) return bounds.min;
  if (bounds.max !== undefined && value > bounds.max) return bounds.max;
  return value;
}

/** The model's output for one row (standardized) as a value in target units. */
export function targetValue(output: number, scale: TargetScale): number {
  return clipTarget(output * scale.std + scale.mean, scale);
}

export function standardizeTarget(value: number, scale: Pick<TargetScale, 'mean' | 'std'>): number {
  return (value - scale.mean) / scale.std;
}

/** Running mean and variance (Welford) and the histogram of the training targets, for the scale and drift. */
export class TargetScaleFitter {
  private n = 0;
  private mean = 0;
  private m2 = 0;
  private readonly histogram: Histogram = {};

  add(value: number): void {
    addValueToHistogram(this.histogram, value);
    this.n++;
    const delta = value - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (value - this.mean);
  }

  finish(bounds: Pick<TargetScale, 'min' | 'max'> = {}): TargetScale {
    const std = this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
    return {
      mean: this.mean,
      // A constant target still needs a positive scale; the profiler refuses one anyway.
      std: std > 1e-12 ? std : 1,
      ...(bounds.min !== undefined ? { min: bounds.min } : {}),
      ...(bounds.max !== undefined ? { max: bounds.max } : {}),
      histogram: histogramPairs(this.histogram),
    };
  }
}

/** Units of a model's output: one per class, one value, or an anomaly model's reconstruction of its input. */
export function outputUnits(preprocessing: {
  task?: string;
  labels: readonly string[];
  inputWidth: number;
}): number {
  if (preprocessing.task === 'anomaly') return preprocessing.inputWidth;
  return preprocessing.task === 'regression' ? 1 : preprocessing.labels.length;
}
