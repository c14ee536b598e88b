/**
 * A regression model's results in the fleet's cells: value sums, the scale-free value
 * histogram (quantiles, drift against the training targets), errors where truth arrived, and
 * the summary-mode wire form the aggregator checks.
 */
import { describe, expect, it } from 'vitest';
import { formatModelStats } from '../../infra/cli/commands/stats.ts';
import { emptyCell, mergeCells, summarizeCell } from '../../shared/aggregation/aggregate.ts';
import type { Histogram } from '../../shared/aggregation/histogram.ts';
import { checkSummaryCells } from '../../shared/aggregation/summary.ts';
import { cellFromWire, summarizeResults } from '../../shared/aggregation/summary-cells.ts';
import {
  addValueToHistogram,
  valueBucket,
  valueBucketBounds,
  valueDriftPsi,
  valueQuantile,
} from '../../shared/aggregation/value-histogram.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { seededRandom } from '../../shared/training/random.ts';

const exact = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number;
};

function histogramOf(values: number[]): Histogram {
  const histogram: Histogram = {};
  for (const v of values) addValueToHistogram(histogram, v);
  return histogram;
}

describe('the value histogram', () => {
  it('puts every value in a bucket that holds it, and gives quantiles within a bucket width', () => {
    const random = seededRandom(5);
    for (const scale of [0.003, 1, 125, 4_200, -50]) {
      const values = Array.from({ length: 5000 }, () => scale * (1 + random() * 3));
      for (const v of values.slice(0, 200)) {
        const [low, high] = valueBucketBounds(valueBucket(v));
        expect(v).toBeGreaterThanOrEqual(low);
        expect(v).toBeLessThan(high);
      }
      const histogram = histogramOf(values);
      for (const q of [0.1, 0.5, 0.9]) {
        const truth = exact(values, q);
        expect(Math.abs((valueQuantile(histogram, q) as number) - truth)).toBeLessThanOrEqual(
          Math.abs(truth) * 0.045,
        );
      }
    }
    expect(valueBucket(0)).toBe(0);
    expect(valueQuantile({}, 0.5)).toBeNull();
  });

  it('reads a shifted prediction distribution as drift and the same one as stable', () => {
    const random = seededRandom(8);
    const draw = (shift: number) => Array.from({ length: 4000 }, () => 40 + shift + (random() - 0.5) * 20);
    const training = histogramOf(draw(0));
    expect(valueDriftPsi(training, histogramOf(draw(0)))).toBeLessThan(0.05);
    expect(valueDriftPsi(training, histogramOf(draw(8)))).toBeGreaterThan(0.25);
    expect(valueDriftPsi(training, {})).toBeNull();
  });
});

describe('regression cells', () => {
  const results: InferenceResult[] = Array.from({ length: 120 }, (_, i) => ({
    id: `gw:${i}`,
    ts: Date.UTC(2026, 11, 1, 10, 0, i % 60),
    value: 30 + (i % 10),
    latencyMs: 1.5,
    ...(i % 2 === 0 ? { truth: String(30 + (i % 10) + (i % 4 === 0 ? 2 : -2)) } : {}),
  }));

  it('go through summary mode and back, pass the aggregator check, and give live RMSE, MAE and quantiles', () => {
    const wire = summarizeResults(results, 0.6);
    const checked = checkSummaryCells(wire, { receivedAt: Date.UTC(2026, 11, 1, 11), labels: [] });
    expect(checked.rejected).toEqual([]);
    const total = emptyCell();
    for (const { cell } of checked.cells) mergeCells(total, cell);
    const summary = summarizeCell(total, { values: histogramOf(results.map((r) => r.value as number)) });
    expect(summary.inferences).toBe(120);
    expect(summary.labelled).toBe(60);
    expect(summary.liveRmse).toBeCloseTo(2, 9);
    expect(summary.liveMae).toBeCloseTo(2, 9);
    expect(summary.liveAccuracy).toBeNull();
    expect(summary.valueMean).toBeCloseTo(34.5, 9);
    expect(Math.abs((summary.valueP50 as number) - 34)).toBeLessThan(34 * 0.045);
    expect(summary.drift?.level).toBe('stable');
    expect(summary.classMix).toEqual({});
    // `edgeloop stats` shows the regression lines, not class mix or confidence.
    const lines = formatModelStats({
      model: 'line',
      since: 'x',
      inferences: 120,
      versions: [{ version: 1, firstMinute: 'a', lastMinute: 'b', ...summary }],
    } as never);
    expect(lines.join('\n')).toMatch(/prediction {4}mean 34\.5, std [\d.]+, p50 [\d.]+, p90 [\d.]+/);
    expect(lines.join('\n')).toMatch(/live error {4}RMSE 2, MAE 2 over 60 labelled/);
    expect(lines.join('\n')).not.toMatch(/class mix|confidence/);
  });

  it('are refused when they carry classes, or counts that do not add up', () => {
    const [cell] = summarizeResults(results.slice(0, 10), 0.6);
    const rules = { receivedAt: Date.UTC(2026, 11, 1, 11), labels: [] };
    const withClass = { ...cell, classes: { a: 10 } };
    expect(checkSummaryCells([withClass], rules).rejected[0]?.reason).toMatch(
      /carries classes or confidences/,
    );
    const short = { ...cell, vh: [[valueBucket(30), 3]] };
    expect(checkSummaryCells([short], rules).rejected[0]?.reason).toMatch(/vh adds up to 3, not n \(10\)/);
    expect(cellFromWire(cell as never).valued).toBe(10);
  });
});
