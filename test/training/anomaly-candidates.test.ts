/**
 * Anomaly model candidates (#31): a PCA shipped as a linear autoencoder, scored by the gateway
 * as the trainer scores it; the choice between it and the dense autoencoder by false alarms on
 * held-out normal data, labelled separation breaking a tie; and a pinned model honoured.
 */
import { describe, expect, it } from 'vitest';
import { gatewayReplay } from '../../bench/support/gateway-replay.ts';
import { normalAndFaulty } from '../../shared/anomaly-dataset.ts';
import { transformRows } from '../../shared/preprocess.ts';
import { ModelMetricsSchema, TrainingConfigSchema } from '../../shared/schemas.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import {
  anomalyCandidates,
  axisShrink,
  buildPcaModel,
  type CandidateAlarms,
  chooseAnomalyModel,
  departures,
  heldOutAlarms,
  heldOutHalves,
  reconstructionScores,
  reconstructions,
} from '../../shared/training/anomaly.ts';
import { loadModelFromArtifacts } from '../../shared/training/model.ts';
import { principalAxes } from '../../shared/training/pca.ts';
import { gaussian, seededRandom } from '../../shared/training/random.ts';
import { trainFromCsv } from '../../shared/training/train.ts';

const candidate = (model: CandidateAlarms['model'], over: [number, number], extra = {}) => ({
  model,
  overThreshold: over[0],
  overQuantile: over[1],
  ...extra,
});

describe('choosing an anomaly model', () => {
  it('takes the fewest held-out false alarms, then the fewest over the 0.9 quantile, then separation, then the autoencoder', () => {
    // Clearly fewer over the calibrated threshold wins, listed first or not.
    expect(
      chooseAnomalyModel([candidate('pca', [40, 10]), candidate('autoencoder', [20, 30])]).chosen.model,
    ).toBe('autoencoder');
    // Within noise there (5 and 6), the 0.9 quantile parts them.
    const quantile = chooseAnomalyModel([candidate('pca', [5, 40]), candidate('autoencoder', [6, 12])]);
    expect(quantile.chosen.model).toBe('autoencoder');
    expect(quantile.tied.map((c) => c.model)).toEqual(['autoencoder']);
    // Within noise on false alarms, the fewest departures missed comes before the quantile.
    const seeing = chooseAnomalyModel([
      candidate('pca', [5, 10], { departuresMissed: 990 }),
      candidate('autoencoder', [6, 40], { departuresMissed: 900 }),
    ]);
    expect(seeing.chosen.model).toBe('autoencoder');
    // Tied on both: the autoencoder, listed first or not (a PCA is blind along its own axes).
    const tied = [candidate('pca', [5, 20]), candidate('autoencoder', [6, 22])];
    expect(chooseAnomalyModel(tied).chosen.model).toBe('autoencoder');
    expect(chooseAnomalyModel([...tied].reverse()).chosen.model).toBe('autoencoder');
    expect(chooseAnomalyModel(tied).tied).toHaveLength(2);
    // Tied, with labelled events: event recall, then the score ratio.
    const labelled = (recall: [number, number], ratio: [number, number]) =>
      chooseAnomalyModel([
        { ...(tied[0] as CandidateAlarms), eventRecall: recall[0], scoreRatio: ratio[0] },
        { ...(tied[1] as CandidateAlarms), eventRecall: recall[1], scoreRatio: ratio[1] },
      ]).chosen.model;
    expect(labelled([0.5, 0.9], [9, 2])).toBe('autoencoder');
    expect(labelled([0.9, 0.9], [2, 9])).toBe('autoencoder');
    expect(labelled([0.9, 0.9], [9, 2])).toBe('pca');
    // Separation never outweighs clearly more false alarms.
    expect(
      chooseAnomalyModel([
        candidate('pca', [5, 20], { eventRecall: 0.5, scoreRatio: 2 }),
        candidate('autoencoder', [30, 22], { eventRecall: 1, scoreRatio: 9 }),
      ]).chosen.model,
    ).toBe('pca');
  });

  it('calibrates on one half of the held-out results and counts on the other: each series split in time, rows alternating', () => {
    expect(heldOutHalves(6, ['a', 'a', 'a', 'a', 'b', 'b'])).toEqual({
      calibrate: [0, 1, 4],
      measure: [2, 3, 5],
    });
    expect(heldOutHalves(5)).toEqual({ calibrate: [0, 2, 4], measure: [1, 3] });
    // Two candidates' scores of the same held-out windows: one steady, one whose normal scores
    // creep up in the later half of each series (what it learned does not hold).
    const random = seededRandom(3);
    const series = Array.from({ length: 1200 }, (_, i) => (i < 600 ? 'p1' : 'p2'));
    const steady = series.map(() => Math.abs(gaussian(random)));
    const creeping = steady.map((s, i) => s * (1 + (i % 600) / 300));
    const alarm = { falseAlarmsPerDay: 1 };
    const rule = { k: 3, n: 5, m: 5 };
    const figures = (scores: number[]) => heldOutAlarms(scores, series, 288, alarm, rule);
    expect(figures(steady).overQuantileShare).toBeCloseTo(0.1, 1);
    expect(figures(creeping).overQuantileShare).toBeGreaterThan(0.25);
    const choice = chooseAnomalyModel([
      { model: 'pca' as const, ...figures(creeping) },
      { model: 'autoencoder' as const, ...figures(steady) },
    ]);
    expect(choice.chosen.model).toBe('autoencoder');
  });

  it('fits the PCA and the autoencoder under auto (PCA only with a residual to measure), one when pinned; old metrics still parse', () => {
    expect(anomalyCandidates(undefined, 5)).toEqual(['pca', 'autoencoder']);
    expect(anomalyCandidates('ppca', 5)).toEqual(['ppca']);
    expect(anomalyCandidates('auto', 1)).toEqual(['autoencoder']);
    expect(anomalyCandidates('pca', 5)).toEqual(['pca']);
    expect(() => anomalyCandidates('pca', 1)).toThrow(/needs at least 2 input slots/);
    expect(() => anomalyCandidates('ppca', 1)).toThrow(/"ppca" needs at least 2 input slots/);
    expect(TrainingConfigSchema.safeParse({ task: 'anomaly', anomalyModel: 'kmeans' }).success).toBe(false);
    const old = ModelMetricsSchema.parse({
      anomaly: { threshold: 4.5, quantile: 0.959, falseAlarmRate: 0.026 },
      testRows: 600,
    });
    expect(old.anomaly?.model).toBeUndefined();
  });
});

describe('the PCA anomaly model', () => {
  it.each(['pca', 'ppca'] as const)(
    'is %s over its principal axes, pinned as configured, scored by the gateway as by the trainer',
    async (anomalyModel) => {
      // Prepare
      const { normal, faulty } = normalAndFaulty(
        { pumps: 3, minutes: 720 },
        { pumps: 2, minutes: 360, firstPump: 3, faults: { perPump: 1, minutes: 60 } },
      );
      const config = TrainingConfigSchema.parse({
        task: 'anomaly',
        time: 'ts',
        series: 'pump',
        anomalyModel,
      });

      // Act
      const outcome = await trainFromCsv(normal.csv, config);
      const { manifest, failure, readings, results } = await gatewayReplay(outcome, faulty.csv);

      // Assess: the pinned model, its axes as the shape's one hidden layer, no candidates.
      const width = manifest.preprocessing.inputWidth;
      expect(outcome.metrics.anomaly?.model).toBe(anomalyModel);
      expect(outcome.metrics.anomaly?.candidates).toBeUndefined();
      expect(outcome.notices).toContainEqual(
        expect.stringMatching(
          new RegExp(`^anomaly model: ${anomalyModel} \\(\\d+ principal axes\\), as "anomalyModel" pins it$`),
        ),
      );
      expect(outcome.shape.hidden).toHaveLength(1);
      expect(outcome.shape.hidden[0]).toBeGreaterThanOrEqual(1);
      expect(outcome.shape.hidden[0]).toBeLessThan(width);
      expect(outcome.epochsRun).toBe(0);
      expect(failure).toBeUndefined();
      // The trainer's own scores of the same readings, by the shipped artifacts and the manifest.
      const trainer = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
      const x = transformRows(manifest.preprocessing, readings);
      const expected = reconstructionScores(trainer, x, width, manifest.anomaly?.residualScale ?? []);
      trainer.dispose();
      expect(results).toHaveLength(readings.length);
      results.forEach((result, i) => {
        expect(result.score).toBeCloseTo(expected[i] as number, 4);
      });
      // It tells the fault from normal operation: the spike's readings score over the threshold.
      const threshold = manifest.anomaly?.threshold as number;
      expect(results.filter((r) => (r.score as number) > threshold).length).toBeGreaterThan(0);
    },
  );
});

describe('departures', () => {
  it('move one slot of each held-out vector by 3 standard deviations, the same for a seed', () => {
    // Prepare
    const width = 4;
    const validation = Float32Array.from({ length: 10 * width }, (_, i) => i / 7);

    // Act
    const departed = departures(validation, width, 7);

    // Assess
    expect(departed).toHaveLength(validation.length);
    for (let i = 0; i < 10; i++) {
      const moved = [0, 1, 2, 3].filter((j) => departed[i * width + j] !== validation[i * width + j]);
      expect(moved).toHaveLength(1);
      const j = moved[0] as number;
      expect(
        Math.abs((departed[i * width + j] as number) - (validation[i * width + j] as number)),
      ).toBeCloseTo(3, 5);
    }
    expect(departures(validation, width, 7)).toEqual(departed);
    expect(departures(new Float32Array(20_000 * 2), 2, 1)).toHaveLength(4_000 * 2);
  });
});

describe('the PCA model', () => {
  it('scores a vector as probabilistic PCA: its residual off the axes plus each axis score scaled to the noise', () => {
    // Prepare: 5 slots driven by 2 latent factors, plus noise.
    const random = seededRandom(3);
    const width = 5;
    const n = 600;
    const x = new Float32Array(n * width);
    for (let i = 0; i < n; i++) {
      const [a, b] = [3 * gaussian(random), gaussian(random)];
      const clean = [a, a + b, a - b, 2 * b, 0.5 * a];
      clean.forEach((v, j) => {
        x[i * width + j] = v + 0.3 * gaussian(random) + j;
      });
    }
    const { mean, eigenvalues, weight } = principalAxes(x, width);

    // Act
    const { model, axes } = buildPcaModel(x, width, true);
    const v = Float32Array.from([4, -1, 6, 0.5, 9]);
    const along = Float32Array.from(mean, (m, j) => m + 2 * weight(j, 0));
    const error = (input: Float32Array) => {
      const out = reconstructions(model, input, width);
      return input.reduce((sum, value, j) => sum + (value - (out[j] as number)) ** 2, 0);
    };
    const [errorV, errorAlong] = [error(v), error(along)];
    model.dispose();

    // Assess: Q + sum over kept axes of z^2 noise / variance, noise the mean variance left out.
    expect(axes).toBe(2);
    const noise = eigenvalues.slice(axes).reduce((a, b) => a + b, 0) / (width - axes);
    const d = Array.from(v, (value, j) => value - (mean[j] as number));
    const z = [0, 1].map((c) => d.reduce((sum, dj, j) => sum + dj * weight(j, c), 0));
    const q = d.reduce((sum, dj) => sum + dj * dj, 0) - z.reduce((sum, zc) => sum + zc * zc, 0);
    const expected = q + z.reduce((sum, zc, c) => sum + (zc * zc * noise) / (eigenvalues[c] as number), 0);
    expect(errorV).toBeCloseTo(expected, 2);
    // A plain projection would score a move along its first axis 0; here it costs 4 noise / variance.
    expect(errorAlong).toBeCloseTo((4 * noise) / (eigenvalues[0] as number), 3);
    expect(errorAlong).toBeGreaterThan(0);
    expect(axisShrink([4, 1, 0.25, 0.25], 2)).toEqual([0.75, 0.5]);
    expect(axisShrink([4, 1, 0, 0], 2)).toEqual([1, 1]);
  });
});

describe('auto on windows', () => {
  it('chooses the autoencoder when held-out windows show the PCA does not hold, and the choice is right on the test windows', async () => {
    // Prepare: two units whose load climbs over three days, each sensor linear in it; the
    // validation windows (the next 15% of time) see loads the training windows did not.
    const random = seededRandom(5);
    const lines = ['ts,unit,a,b,c,d'];
    const minutes = 3 * 1440;
    for (const unit of ['u1', 'u2'])
      for (let t = 0; t < minutes; t++) {
        const load = (2 * t) / minutes + 0.3 * Math.sin((2 * Math.PI * t) / 240);
        const noise = () => 0.05 * gaussian(random);
        lines.push(
          [
            Date.UTC(2026, 0, 1) + t * 60_000,
            unit,
            load + noise(),
            2 * load + noise(),
            1 - load + noise(),
            noise(),
          ].join(','),
        );
      }
    const csv = lines.join('\n');
    const config = (anomalyModel: string) =>
      TrainingConfigSchema.parse({
        task: 'anomaly',
        window: {
          time: 'ts',
          series: 'unit',
          sizeMs: 30 * 60_000,
          strideMs: 5 * 60_000,
          frequencyHz: 1 / 60,
        },
        epochs: 30,
        anomalyModel,
      });

    // Act
    const auto = await trainWindowsFromCsv(csv, config('auto'));
    const pca = await trainWindowsFromCsv(csv, config('pca'));

    // Assess: both candidates' figures, the autoencoder chosen by them and named in a notice.
    const metrics = auto.metrics.anomaly;
    expect(metrics?.model).toBe('autoencoder');
    const [pcaFigures, autoencoderFigures] = metrics?.candidates ?? [];
    expect(pcaFigures?.model).toBe('pca');
    expect(autoencoderFigures?.model).toBe('autoencoder');
    expect(pcaFigures?.overQuantile).toBeGreaterThan(2 * (autoencoderFigures?.overQuantile ?? 1));
    expect(auto.notices).toContainEqual(
      expect.stringMatching(/^anomaly model: autoencoder \(hidden [\d-]+\), chosen by /),
    );
    // The PCA would have alarmed more on the test windows (later still) than the one chosen.
    expect(pca.metrics.anomaly?.falseAlarmsPerDay).toBeGreaterThan(metrics?.falseAlarmsPerDay ?? 0);
  });
});
