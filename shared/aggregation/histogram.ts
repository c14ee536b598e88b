/**
 * Fixed-edge histograms that can be summed across invocations (DynamoDB ADD per bucket) and
 * still answer percentile questions. Bucket i holds values in [edges[i], edges[i + 1]); the
 * last bucket is open-ended. Estimates interpolate linearly inside the bucket that holds the
 * wanted rank, so an estimate is never further than one bucket width from the true value.
 */

/** Latency bucket lower edges in milliseconds: fine below 10 ms, where gateway inference lives. */
export const LATENCY_EDGES_MS: readonly number[] = [
  0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12.5, 15, 20, 25, 30, 40, 50, 75, 100,
  150, 200, 300, 500, 750, 1000, 2000, 5000, 10_000, 30_000, 60_000,
];

/** Confidence bucket lower edges: twenty 0.05-wide buckets over [0, 1]. */
export const CONFIDENCE_EDGES: readonly number[] = Array.from({ length: 20 }, (_, i) => i / 20);

/** Sparse histogram: bucket index -> count. Sparse so that it maps onto flat item attributes. */
export type Histogram = Record<number, number>;

/** Index of the bucket holding `value` (values below the first edge go to bucket 0). */
export function bucketIndex(value: number, edges: readonly number[]): number {
  let lo = 0;
  let hi = edges.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((edges[mid] ?? Number.POSITIVE_INFINITY) <= value) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Upper edge of bucket i; the open last bucket is given the width of the one before it. */
export function bucketUpper(index: number, edges: readonly number[]): number {
  const next = edges[index + 1];
  if (next !== undefined) return next;
  const last = edges[index] ?? 0;
  const previous = edges[index - 1] ?? 0;
  return last + (last - previous);
}

/** Width of bucket i (what the percentile estimate's error is bounded by). */
export function bucketWidth(index: number, edges: readonly number[]): number {
  return bucketUpper(index, edges) - (edges[index] ?? 0);
}

export function addToHistogram(
  histogram: Histogram,
  value: number,
  edges: readonly number[],
  count = 1,
): void {
  const index = bucketIndex(value, edges);
  histogram[index] = (histogram[index] ?? 0) + count;
}

export function mergeHistograms(into: Histogram, from: Histogram): Histogram {
  for (const [index, count] of Object.entries(from)) {
    const i = Number(index);
    into[i] = (into[i] ?? 0) + count;
  }
  return into;
}

export function histogramTotal(histogram: Histogram): number {
  let total = 0;
  for (const count of Object.values(histogram)) total += count;
  return total;
}

/**
 * The q-quantile (0 < q <= 1) estimated from a histogram, or null when it is empty. Uses the
 * nearest-rank definition (rank = ceil(q * n)) and interpolates within the bucket by rank.
 */
export function percentileFromHistogram(
  histogram: Histogram,
  edges: readonly number[],
  q: number,
): number | null {
  const total = histogramTotal(histogram);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  const indices = Object.keys(histogram)
    .map(Number)
    .sort((a, b) => a - b);
  let seen = 0;
  for (const index of indices) {
    const count = histogram[index] ?? 0;
    if (count === 0) continue;
    if (seen + count >= rank) {
      const lower = edges[index] ?? 0;
      const fraction = (rank - seen) / count;
      return lower + fraction * (bucketUpper(index, edges) - lower);
    }
    seen += count;
  }
  return null;
}

/** Exact nearest-rank percentile over raw values (the reference the estimates are tested against). */
export function exactPercentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] ?? null;
}
