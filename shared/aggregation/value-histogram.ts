/**
 * A regression model's predictions as a histogram that needs no knowledge of the target's
 * scale (kWh, cycles of remaining life, grams): buckets are 1/16 of an octave wide on |value|
 * (each about 4.4% wide), mirrored for negative values, with one bucket for values near zero.
 * Cells sum it by plain addition like every other histogram, quantiles come out within a
 * bucket's width, and drift compares it with the training targets' histogram that the
 * manifest carries.
 */
import type { Histogram } from './histogram.ts';
import { populationStabilityIndex } from './psi.ts';

/** Buckets per doubling of |value|. */
const PER_OCTAVE = 16;
/** |value| below this is bucket 0. */
const NEAR_ZERO = 1e-9;
/** Shifts log2|value| * PER_OCTAVE above 0 for every |value| >= NEAR_ZERO (2^-30 > 1e-9). */
const OFFSET = 32 * PER_OCTAVE;

export function valueBucket(value: number): number {
  const magnitude = Math.abs(value);
  if (!(magnitude >= NEAR_ZERO)) return 0;
  const index = Math.max(1, Math.floor(Math.log2(magnitude) * PER_OCTAVE) + OFFSET + 1);
  return value < 0 ? -index : index;
}

/** The bucket's bounds [low, high) in value order. */
export function valueBucketBounds(index: number): [number, number] {
  if (index === 0) return [-NEAR_ZERO, NEAR_ZERO];
  const k = Math.abs(index) - 1 - OFFSET;
  const low = 2 ** (k / PER_OCTAVE);
  const high = 2 ** ((k + 1) / PER_OCTAVE);
  return index > 0 ? [low, high] : [-high, -low];
}

export function addValueToHistogram(histogram: Histogram, value: number, count = 1): void {
  const index = valueBucket(value);
  histogram[index] = (histogram[index] ?? 0) + count;
}

/** Buckets in value order: negative ones from the most negative, then zero, then positive. */
function ordered(histogram: Histogram): [number, number][] {
  return Object.entries(histogram)
    .map(([index, count]): [number, number] => [Number(index), count])
    .filter(([, count]) => count > 0)
    .sort(([a], [b]) => a - b);
}

/** The q-quantile (nearest rank, interpolated inside its bucket), or null for an empty histogram. */
export function valueQuantile(histogram: Histogram, q: number): number | null {
  const buckets = ordered(histogram);
  const total = buckets.reduce((sum, [, count]) => sum + count, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [index, count] of buckets) {
    if (seen + count >= rank) {
      const [low, high] = valueBucketBounds(index);
      return low + ((rank - seen) / count) * (high - low);
    }
    seen += count;
  }
  return null;
}

/** Bins the drift check compares: about ten of equal training mass. */
const DRIFT_BINS = 10;

/**
 * PSI between the training targets' distribution and the live predictions', over about ten
 * bins of equal training mass (fine buckets merged in value order), so it reads like the
 * classifier's PSI over classes. Null when nothing arrived or training carried no histogram.
 */
export function valueDriftPsi(training: Histogram, live: Histogram): number | null {
  const trainingBuckets = ordered(training);
  const trainingTotal = trainingBuckets.reduce((sum, [, count]) => sum + count, 0);
  if (trainingTotal === 0) return null;
  // Upper bucket index of each bin, cut where the training mass passes each tenth.
  const uppers: number[] = [];
  let seen = 0;
  for (const [index, count] of trainingBuckets) {
    seen += count;
    if (seen >= ((uppers.length + 1) * trainingTotal) / DRIFT_BINS) uppers.push(index);
  }
  const binOf = (index: number) => {
    const bin = uppers.findIndex((upper) => index <= upper);
    return String(bin < 0 ? uppers.length : bin);
  };
  const shares: Record<string, number> = {};
  for (const [index, count] of trainingBuckets) shares[binOf(index)] = (shares[binOf(index)] ?? 0) + count;
  const counts: Record<string, number> = {};
  for (const [index, count] of ordered(live)) counts[binOf(index)] = (counts[binOf(index)] ?? 0) + count;
  return populationStabilityIndex(shares, counts);
}

/** A histogram as the sparse [bucket, count] pairs manifests and summary cells carry. */
export function histogramPairs(histogram: Histogram): [number, number][] {
  return ordered(histogram);
}
