import { describe, expect, it } from 'vitest';
import {
  addToHistogram,
  bucketIndex,
  bucketWidth,
  CONFIDENCE_EDGES,
  exactPercentile,
  type Histogram,
  LATENCY_EDGES_MS,
  mergeHistograms,
  percentileFromHistogram,
} from '../../shared/aggregation/histogram.ts';
import { seededRandom } from '../../shared/training/random.ts';

function histogramOf(values: readonly number[], edges: readonly number[]): Histogram {
  const histogram: Histogram = {};
  for (const value of values) addToHistogram(histogram, value, edges);
  return histogram;
}

describe('fixed-edge histograms', () => {
  it('puts values on an edge into the bucket that starts there', () => {
    // Act + Assess
    expect(bucketIndex(0, LATENCY_EDGES_MS)).toBe(0);
    expect(bucketIndex(0.1, LATENCY_EDGES_MS)).toBe(1);
    expect(bucketIndex(0.099, LATENCY_EDGES_MS)).toBe(0);
    expect(bucketIndex(1e9, LATENCY_EDGES_MS)).toBe(LATENCY_EDGES_MS.length - 1);
    expect(bucketIndex(1, CONFIDENCE_EDGES)).toBe(CONFIDENCE_EDGES.length - 1);
  });

  it.each([
    ['uniform 0-5 ms', (r: () => number) => r() * 5],
    ['log-spread 0.05-200 ms', (r: () => number) => 0.05 * Math.exp(r() * 8.3)],
    ['bimodal 0.4 ms and 40 ms', (r: () => number) => (r() < 0.9 ? 0.4 + r() * 0.1 : 40 + r() * 10)],
    ['heavy tail up to 20 s', (r: () => number) => 1 / (r() + 0.00005)],
  ])('estimates p50/p99 within one bucket width of the exact percentiles (%s)', (_name, draw) => {
    // Prepare
    const random = seededRandom(99);
    const latencies = Array.from({ length: 5000 }, () => draw(random));
    const histogram = histogramOf(latencies, LATENCY_EDGES_MS);

    for (const q of [0.5, 0.99]) {
      // Act
      const estimate = percentileFromHistogram(histogram, LATENCY_EDGES_MS, q) ?? Number.NaN;
      const exact = exactPercentile(latencies, q) ?? Number.NaN;

      // Assess
      expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(
        bucketWidth(bucketIndex(exact, LATENCY_EDGES_MS), LATENCY_EDGES_MS),
      );
    }
  });

  it('gives the same percentiles for merged parts as for the whole', () => {
    // Prepare
    const random = seededRandom(3);
    const values = Array.from({ length: 999 }, () => random() * 100);
    const parts = [values.slice(0, 100), values.slice(100, 600), values.slice(600)].map((part) =>
      histogramOf(part, LATENCY_EDGES_MS),
    );

    // Act
    const merged = parts.reduce((sum, part) => mergeHistograms(sum, part), {} as Histogram);

    // Assess
    expect(merged).toEqual(histogramOf(values, LATENCY_EDGES_MS));
  });

  it('has no percentile for an empty histogram', () => {
    expect(percentileFromHistogram({}, LATENCY_EDGES_MS, 0.5)).toBeNull();
    expect(exactPercentile([], 0.5)).toBeNull();
  });
});
