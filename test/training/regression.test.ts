import { describe, expect, it } from 'vitest';
import { parseDataset } from '../../shared/dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { transformRows } from '../../shared/preprocess.ts';
import { PreprocessingSchema, TrainingConfigSchema } from '../../shared/schemas.ts';
import { targetValue } from '../../shared/target.ts';
import { regressionGateDecision } from '../../shared/training/gate.ts';
import { regressionMetrics } from '../../shared/training/metrics.ts';
import { loadModelFromArtifacts, predictProbabilities } from '../../shared/training/model.ts';
import { seededRandom } from '../../shared/training/random.ts';
import { rmseOnRows, trainFromCsv } from '../../shared/training/train.ts';

/**
 * A machine's energy draw: linear in load, quadratic in speed, shifted by the line it runs on,
 * with noise of std 1 (so no model can beat an RMSE of about 1).
 */
function energyCsv(rows: number, seed = 3, label = (y: number, _i: number) => y.toFixed(3)): string {
  const random = seededRandom(seed);
  const lines = ['load,speed,line,energy'];
  for (let i = 0; i < rows; i++) {
    const load = random() * 10;
    const speed = random() * 4 - 2;
    const line = ['a', 'b', 'c'][i % 3] as string;
    const noise = (random() + random() + random() + random() - 2) * Math.sqrt(3);
    const y = 20 + 3 * load + 4 * speed * speed + (line === 'b' ? 5 : 0) + noise;
    lines.push(`${load.toFixed(3)},${speed.toFixed(3)},${line},${label(y, i)}`);
  }
  return `${lines.join('\n')}\n`;
}

const config = (extra: Record<string, unknown> = {}) =>
  TrainingConfigSchema.parse({ task: 'regression', label: 'energy', epochs: 60, ...extra });

describe('regression: a numeric label is a target, never a set of classes', () => {
  it('profiles the label as numbers; a classifier refuses it and names the regression task', () => {
    const csv = energyCsv(300);
    const profiled = parseDataset(csv, { task: 'regression', label: 'energy' });
    expect(profiled.labels).toEqual([]);
    expect(profiled.classCounts).toEqual([300]);
    expect(profiled.target?.distinct).toBeGreaterThan(250);
    expect(profiled.y.every((y) => Number.isFinite(y) && y > 0)).toBe(true);
    expect(() => parseDataset(csv, { label: 'energy' })).toThrow(/"task": "regression"/);
  });

  it('drops a few text labels with a notice and refuses a label column that is mostly text', () => {
    const few = energyCsv(300, 3, (y, i) => (i % 50 === 7 ? 'sensor fault' : y.toFixed(3)));
    const profiled = parseDataset(few, { task: 'regression', label: 'energy' });
    expect(profiled.stats.droppedNonNumericTarget).toBe(6);
    expect(profiled.notices.join('\n')).toMatch(
      /dropped 6 row\(s\) whose label 'energy' is not a number \(e\.g\. 'sensor fault' \(data row 8\)/,
    );
    const many = energyCsv(300, 3, (y, i) => (i % 3 === 0 ? 'high' : y.toFixed(3)));
    expect(() => parseDataset(many, { task: 'regression', label: 'energy' })).toThrow(InputError);
    expect(() => parseDataset(many, { task: 'regression', label: 'energy' })).toThrow(
      /label column 'energy' is not numeric: 100 of 300 values \(33\.3%\) are not numbers/,
    );
    const constant = energyCsv(300, 3, () => '7');
    expect(() => parseDataset(constant, { task: 'regression', label: 'energy' })).toThrow(
      /is 7 in every row/,
    );
  });
});

describe('training a regression model', () => {
  it('learns the target, reports RMSE, MAE and R² beside the mean predictor, and ships what it scored', async () => {
    // Act
    const outcome = await trainFromCsv(energyCsv(1500), config());

    // Assess: the noise floor is 1; always predicting the mean is far worse.
    const metrics = outcome.metrics.regression;
    expect(metrics).toBeDefined();
    expect(outcome.metrics.accuracy).toBeUndefined();
    expect(metrics?.rmse).toBeLessThan(1.6);
    expect(metrics?.meanRmse).toBeGreaterThan(8);
    expect(metrics?.r2).toBeGreaterThan(0.95);
    expect(metrics?.mae).toBeLessThan(metrics?.rmse ?? 0);
    const pre = PreprocessingSchema.parse(outcome.preprocessing);
    expect(pre.task).toBe('regression');
    expect(pre.labels).toEqual([]);
    expect(pre.target?.std).toBeGreaterThan(5);
    expect(outcome.classes).toEqual([]);
    expect(outcome.golden.outputs.every((output) => output.length === 1)).toBe(true);
    // The shipped bytes give the reported RMSE on the held-out rows (and rmseOnRows agrees).
    const model = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
    const outputs = predictProbabilities(model, transformRows(pre, outcome.testSet.rows), pre.inputWidth);
    model.dispose();
    const scale = pre.target as NonNullable<typeof pre.target>;
    const values = Array.from(outputs, (o) => targetValue(o, scale));
    const truth = outcome.testSet.labels.map(Number);
    expect(regressionMetrics(truth, values, scale.mean).rmse).toBeCloseTo(metrics?.rmse ?? 0, 4);
    expect(
      await rmseOnRows(outcome.artifacts, pre, outcome.testSet.rows, outcome.testSet.labels),
    ).toBeCloseTo(metrics?.rmse ?? 0, 4);
    // The tuner ranked regression candidates by validation RMSE.
    expect(outcome.tuning?.candidates.some((c) => c.validationRmse !== undefined)).toBe(true);
    expect(outcome.tuning?.candidates.every((c) => c.validationAccuracy === undefined)).toBe(true);
  });

  it('caps training targets and clips predictions to the configured bounds, with a notice', async () => {
    const outcome = await trainFromCsv(energyCsv(900), config({ target: { max: 45 } }));
    expect(outcome.notices.join('\n')).toMatch(/capped \d+ target\(s\) of 'energy' to \[-inf, 45\]/);
    const pre = outcome.preprocessing;
    expect(pre.target?.max).toBe(45);
    const model = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
    const outputs = predictProbabilities(model, transformRows(pre, outcome.testSet.rows), pre.inputWidth);
    model.dispose();
    const values = Array.from(outputs, (o) => targetValue(o, pre.target as NonNullable<typeof pre.target>));
    expect(Math.max(...values)).toBeLessThanOrEqual(45);
  });
});

describe('regression metrics and gate', () => {
  it('computes RMSE, MAE, R² and the mean predictor RMSE', () => {
    const m = regressionMetrics([1, 2, 3, 4], [1.5, 2, 2.5, 4], 2.5);
    expect(m.rmse).toBeCloseTo(Math.sqrt(0.5 / 4), 6);
    expect(m.mae).toBeCloseTo(0.25, 6);
    expect(m.r2).toBeCloseTo(1 - 0.5 / 5, 6);
    expect(m.meanRmse).toBeCloseTo(Math.sqrt(5 / 4), 6);
  });

  it('passes a first version only when it beats the mean, then compares RMSE with a relative margin', () => {
    expect(regressionGateDecision({ rmse: 2, meanRmse: 5, margin: 0.02 }).passed).toBe(true);
    const nothing = regressionGateDecision({ rmse: 5.1, meanRmse: 5, margin: 0.02 });
    expect(nothing).toEqual({
      passed: false,
      reason:
        'learned nothing the training mean does not know: RMSE 5.1 vs 5 for always predicting the training mean',
    });
    expect(regressionGateDecision({ rmse: 2.03, meanRmse: 5, baselineRmse: 2, margin: 0.02 }).passed).toBe(
      true,
    );
    expect(regressionGateDecision({ rmse: 2.05, meanRmse: 5, baselineRmse: 2, margin: 0.02 }).reason).toMatch(
      /^worse than the current release: new RMSE 2.05 vs current release 2/,
    );
    expect(regressionGateDecision({ rmse: 2, meanRmse: 5, margin: 0.02, maxRmse: 1.5 }).reason).toBe(
      "below the config's floor: RMSE 2 > gateMaxRmse 1.5",
    );
  });
});
