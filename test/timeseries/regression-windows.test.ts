/**
 * Regression on windows: a window's target is its last reading's value; the gateway answers
 * each window with the trainer's value, and the golden windows pass probation.
 */
import { describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { loadModelFromBytes, probationFailure } from '../../device/model/model.ts';
import { scoreReadings } from '../../device/score.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { targetValue } from '../../shared/target.ts';
import { windowInput, windowInputs } from '../../shared/timeseries/features.ts';
import { collectCsv } from '../../shared/timeseries/long-format.ts';
import { predictWindows } from '../../shared/timeseries/model.ts';
import { generateRunToFailureCsv, RUL_CHANNELS, RUL_LABEL } from '../../shared/timeseries/run-to-failure.ts';
import { rmseOnWindows, trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { windowsOf } from '../../shared/timeseries/windower.ts';
import { loadModelFromArtifacts } from '../../shared/training/model.ts';

const WINDOW = { time: 'cycle', series: 'machine', sizeMs: 16_000, strideMs: 4_000 };

describe('regression on windows', () => {
  it.each([
    ['auto', 'mlp', 2],
    ['ridge', 'ridge', 0],
  ] as const)(
    "trains on each window's last target, and the gateway answers every window with the trainer's value (regressionModel %s)",
    async (regressionModel, shipped, layers) => {
      // Prepare
      const train = generateRunToFailureCsv({ machines: 10, seed: 3, life: [60, 110] });
      const next = generateRunToFailureCsv({ machines: 2, seed: 4, life: [60, 110], firstMachine: 10 });
      const config = TrainingConfigSchema.parse({
        task: 'regression',
        label: RUL_LABEL,
        window: WINDOW,
        target: { max: 80 },
        epochs: 30,
        regressionModel,
      });

      // Act
      const outcome = await trainWindowsFromCsv(train, config);
      const manifest = releasedManifest(outcome, { model: 'rul' });
      const model = await loadModelFromBytes(
        outcome.artifacts.modelJson,
        outcome.artifacts.weights,
        manifest,
      );
      const failure = probationFailure(model);
      const { results } = await scoreReadings(model, parseCsvReadings(next, 'next: ').rows);

      // Assess: a regression manifest with its scale, metrics in target units; the features
      // carry each channel's trend. On these machines the MLP predicts the validation machines
      // better than the ridge; pinned, the ridge ships as one dense layer, and the parity below
      // holds for both.
      expect(failure).toBeUndefined();
      const features = outcome.window?.manifest.features;
      expect(features?.kind === 'spectral' && features.trend).toBe(true);
      expect(features?.kind === 'spectral' ? features.names : []).toContain('vib:slope');
      expect(outcome.metrics.regression?.model).toBe(shipped);
      expect(outcome.shape.hidden).toHaveLength(layers);
      expect(outcome.notices.find((n) => n.startsWith('regression model:'))).toMatch(
        shipped === 'ridge'
          ? /ridge regression on \d+ of 75 features.*pins it/
          : /the MLP \(the ridge's validation MSE/,
      );
      expect(manifest.preprocessing.task).toBe('regression');
      expect(manifest.preprocessing.target?.max).toBe(80);
      expect(outcome.metrics.regression?.rmse).toBeGreaterThan(0);
      expect(outcome.metrics.regression?.rmse).toBeLessThan(outcome.metrics.regression?.meanRmse ?? 0);
      // The trainer's own values for the same windows of the unseen machines.
      const spec = outcome.window?.manifest.spec as NonNullable<typeof outcome.window>['manifest']['spec'];
      const input = windowInput(spec, outcome.window?.manifest.features as never);
      const windows = collectCsv(next, { ...WINDOW, timeUnit: 'ms' }, RUL_LABEL, RUL_CHANNELS).series.flatMap(
        (s) => windowsOf(s.name, spec, s.times, s.values, s.labels),
      );
      const trained = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
      const outputs = predictWindows(trained, windowInputs(input, windows), windows.length, input.shape);
      trained.dispose();
      const scale = outcome.preprocessing.target as NonNullable<typeof outcome.preprocessing.target>;
      expect(results).toHaveLength(windows.length);
      results.forEach((result, i) => {
        expect(result.window?.end).toBe(windows[i]?.end);
        expect(result.value).toBeCloseTo(targetValue(outputs[i] as number, scale), 3);
        expect(result.value).toBeLessThanOrEqual(80);
        expect(result.truth).toBe(windows[i]?.label);
      });
      // The gate scores a released windowed regression model on a new run's test readings.
      const rmse = await rmseOnWindows(
        outcome.artifacts,
        manifest,
        outcome.window?.testSeries ?? [],
        outcome.features,
      );
      expect(rmse).toBeGreaterThan(0);
      expect(rmse).toBeCloseTo(outcome.metrics.regression?.rmse ?? 0, 3);
    },
  );
});
