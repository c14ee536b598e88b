/**
 * Score drift of anomaly models: a release carries its held-out normal scores as a value
 * histogram; the fleet's cells keep the live scores the same way (detail and summary mode
 * alike), and drift is the PSI between them.
 */
import { describe, expect, it } from 'vitest';
import {
  addResult,
  type CountedResult,
  emptyCell,
  summarizeCell,
  trainingDistributionOf,
} from '../../shared/aggregation/aggregate.ts';
import { checkSummaryCells } from '../../shared/aggregation/summary.ts';
import { cellToWire } from '../../shared/aggregation/summary-cells.ts';
import { addValueToHistogram, histogramPairs } from '../../shared/aggregation/value-histogram.ts';
import type { Manifest } from '../../shared/schemas.ts';
import { seededRandom } from '../../shared/training/random.ts';

/** Scores like an autoencoder's on normal data: mostly near 1, a long right tail, times `scale`. */
function scores(n: number, seed: number, scale = 1): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => scale * -Math.log(1 - random()) * 0.8 + 0.2);
}

const MINUTE = Date.UTC(2026, 11, 7, 10, 0);

function manifestWith(reference: number[]): Manifest {
  const histogram = {};
  for (const score of reference) addValueToHistogram(histogram, score);
  return {
    preprocessing: { task: 'anomaly', label: '', labels: [], features: [], inputWidth: 1 },
    classDistribution: {},
    anomaly: {
      threshold: 5,
      eventRule: { k: 3, n: 5, m: 5 },
      residualScale: [1],
      scoreHistogram: histogramPairs(histogram),
    },
  } as unknown as Manifest;
}

function cellOf(live: number[]) {
  const cell = emptyCell();
  for (const score of live) {
    const result: CountedResult = { ts: MINUTE, score, anomaly: score > 5, latencyMs: 1 };
    addResult(cell, result, 0.6);
  }
  return cell;
}

describe('score drift of an anomaly model', () => {
  it('is small while the live scores look like the held-out normal ones, and large when they move', () => {
    // Prepare
    const training = trainingDistributionOf(manifestWith(scores(5000, 1)));

    // Act
    const same = summarizeCell(cellOf(scores(2000, 2)), training).drift;
    const moved = summarizeCell(cellOf(scores(2000, 3, 3)), training).drift;
    const older = summarizeCell(
      cellOf(scores(2000, 2)),
      trainingDistributionOf({ ...manifestWith([]), anomaly: undefined }),
    ).drift;

    // Assess
    expect(same?.psi).toBeLessThan(0.1);
    expect(moved?.psi).toBeGreaterThan(0.25);
    expect(moved?.level).not.toBe(same?.level);
    // A release without the reference (older manifests) has no drift rather than a false one.
    expect(older).toBeNull();
  });

  it('travels in summary cells, which are checked: the scores must add up to the results', () => {
    // Prepare
    const cell = cellOf(scores(300, 4));
    const wire = cellToWire(MINUTE, cell);
    const broken = { ...cellToWire(MINUTE + 60_000, cell), vh: wire.vh?.slice(1) };

    // Act
    const checked = checkSummaryCells([wire, broken], {
      receivedAt: MINUTE + 90_000,
      labels: ['anomaly', 'normal'],
    });

    // Assess
    expect(wire.ns).toBe(300);
    expect(checked.cells).toHaveLength(1);
    expect(checked.cells[0]?.cell.valueHist).toEqual(cell.valueHist);
    expect(checked.rejected.map((r) => r.reason)).toEqual([
      expect.stringMatching(/^cells\.1: vh adds up to \d+, not n \(300\)$/),
    ]);
  });
});
