import { describe, expect, it } from 'vitest';
import { parseDataset } from '../../shared/dataset.ts';
import { transformRows } from '../../shared/preprocess.ts';
import { PreprocessingSchema } from '../../shared/schemas.ts';
import { gateDecision } from '../../shared/training/gate.ts';
import { argmaxRows, classificationMetrics } from '../../shared/training/metrics.ts';
import { fitPreprocessing, PreprocessingFitter } from '../../shared/training/preprocessing.ts';
import { stratifiedSplit } from '../../shared/training/split.ts';
import { classWeights } from '../../shared/training/train.ts';
import { fixture } from './fixtures.ts';

describe('stratified split', () => {
  const y = Array.from({ length: 200 }, (_, i) => (i % 10 === 0 ? 1 : i % 10 < 4 ? 2 : 0));

  it('is the same for the same seed and different for another seed', () => {
    expect(stratifiedSplit(y, { seed: 1 })).toEqual(stratifiedSplit(y, { seed: 1 }));
    expect(stratifiedSplit(y, { seed: 1 }).test).not.toEqual(stratifiedSplit(y, { seed: 2 }).test);
  });

  it('partitions every row once and keeps each class share in every part', () => {
    const split = stratifiedSplit(y, { seed: 5 });
    const all = [...split.train, ...split.validation, ...split.test].sort((a, b) => a - b);
    expect(all).toEqual(y.map((_, i) => i));
    for (const part of [split.validation, split.test]) {
      const rare = part.filter((i) => y[i] === 1).length / part.length;
      expect(rare).toBeGreaterThan(0.05);
      expect(rare).toBeLessThan(0.15);
    }
  });
});

describe('fitted preprocessing', () => {
  it('uses only training rows for the statistics and validates against the schema', () => {
    // Prepare
    const dataset = parseDataset(fixture('ok-quoted-headers.csv'));
    const train = dataset.rows.map((_, i) => i).filter((i) => i % 2 === 0);
    // Act
    const pre = fitPreprocessing(dataset, train);
    // Assess
    expect(PreprocessingSchema.parse(pre)).toEqual(pre);
    const numeric = pre.features[0];
    const values = train.map((i) => Number(dataset.rows[i]?.['Temperature (C)']));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(numeric).toMatchObject({ kind: 'numeric', column: 'Temperature (C)' });
    expect(numeric?.kind === 'numeric' && numeric.mean).toBeCloseTo(mean, 9);
    expect(pre.inputWidth).toBe(1 + 1 + 3 + 1);
  });

  it('standardizes training rows to mean 0, imputes missing cells, routes unseen categories to "other"', () => {
    const dataset = parseDataset(fixture('ok-na-rows.csv'));
    const all = dataset.rows.map((_, i) => i);
    const pre = fitPreprocessing(dataset, all);
    const x = transformRows(pre, dataset.rows);
    const column = Array.from({ length: dataset.rows.length }, (_, i) => x[i * pre.inputWidth] ?? Number.NaN);
    expect(column.every(Number.isFinite)).toBe(true);
    expect(Math.abs(column.reduce((a, b) => a + b, 0) / column.length)).toBeLessThan(1e-5);

    const cats = parseDataset(fixture('ok-high-cardinality.csv'));
    const catPre = fitPreprocessing(
      cats,
      cats.rows.map((_, i) => i),
      32,
    );
    const machine = catPre.features[2];
    expect(machine?.kind === 'categorical' && machine.categories.length).toBe(32);
    const unseen = transformRows(catPre, [
      { temperature_c: '50', vibration_rms: '1', machine: 'machine-999' },
    ]);
    expect(unseen[unseen.length - 1]).toBe(1);
  });
});

describe('skewed columns', () => {
  /** A heavy-tailed count (most rows small, a few huge), a symmetric one, and a label. */
  const csv = [
    'deaths,temperature,label',
    ...Array.from({ length: 60 }, (_, i) => {
      const deaths = i % 10 === 0 ? 10 ** (3 + (i % 4)) : i % 7;
      return `${deaths},${20 + Math.sin(i)},${i % 2 ? 'a' : 'b'}`;
    }),
  ].join('\n');

  it('standardizes a right-skewed non-negative column as log(1 + x), says so, and leaves the rest', () => {
    // Prepare
    const dataset = parseDataset(csv, { label: 'label' });
    const all = dataset.rows.map((_, i) => i);

    // Act
    const fitter = new PreprocessingFitter(dataset.columns, dataset.header);
    for (const row of dataset.rows) fitter.add(dataset.header.map((column) => String(row[column] ?? '')));
    const pre = fitter.finish(dataset.label, dataset.labels);
    const x = transformRows(pre, [
      { deaths: '6', temperature: '20' },
      { deaths: '', temperature: '' },
    ]);

    // Assess
    expect(fitPreprocessing(dataset, all)).toEqual(pre);
    const [deaths, temperature] = pre.features;
    expect(deaths).toMatchObject({ kind: 'numeric', column: 'deaths', log1p: true });
    expect(temperature).not.toHaveProperty('log1p');
    const logs = dataset.rows.map((row) => Math.log1p(Number(row.deaths)));
    const mean = logs.reduce((a, b) => a + b, 0) / logs.length;
    expect(deaths?.kind === 'numeric' && deaths.mean).toBeCloseTo(mean, 9);
    const std = deaths?.kind === 'numeric' ? deaths.std : 1;
    expect(x[0]).toBeCloseTo((Math.log1p(6) - mean) / std, 5);
    expect(x[2]).toBeCloseTo(0, 9); // a missing count is the (log) mean
    expect(fitter.notices).toEqual([
      expect.stringMatching(
        /^column 'deaths': right-skewed \(skewness \d+\.\d, no negative values\), standardized as log\(1 \+ x\)$/,
      ),
    ]);
  });

  it('keeps a skewed column with negative values linear', () => {
    // Prepare
    const shifted = csv.replace(/^(\d+),/gm, (_, n) => `${Number(n) - 5},`);
    const dataset = parseDataset(shifted, { label: 'label' });

    // Act
    const pre = fitPreprocessing(
      dataset,
      dataset.rows.map((_, i) => i),
    );

    // Assess
    expect(pre.features[0]).toMatchObject({ kind: 'numeric', column: 'deaths' });
    expect(pre.features[0]).not.toHaveProperty('log1p');
  });
});

describe('metrics, class weights and the gate', () => {
  it('computes accuracy, macro-F1, per-class precision/recall and the confusion matrix', () => {
    const metrics = classificationMetrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ['a', 'b', 'c']);
    expect(metrics.accuracy).toBeCloseTo(4 / 6, 6);
    expect(metrics.confusion).toEqual([
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 1],
    ]);
    expect(metrics.perClass?.b).toEqual({ precision: 0.666667, recall: 1, support: 2 });
    expect(metrics.macroF1).toBeCloseTo((0.5 + 0.8 + 2 / 3) / 3, 5);
    expect(argmaxRows([0.1, 0.9, 0.7, 0.3], 2)).toEqual([1, 0]);
  });

  it('weights a rare class up in proportion to its rarity', () => {
    const weights = classWeights([0, 0, 0, 1], 2);
    expect(weights[0]).toBeCloseTo((4 / 6) ** 0.25, 9);
    expect(weights[1]).toBeCloseTo(2 ** 0.25, 9);
  });

  it('passes a first version, a tie within margin, and rejects a worse one with both scores', () => {
    expect(gateDecision({ accuracy: 0.5, margin: 0.02 }).passed).toBe(true);
    expect(gateDecision({ accuracy: 0.89, baselineAccuracy: 0.9, margin: 0.02 }).passed).toBe(true);
    const rejected = gateDecision({ accuracy: 0.8, baselineAccuracy: 0.9, margin: 0.02 });
    expect(rejected).toEqual({
      passed: false,
      reason: 'worse than the current release: new accuracy 0.8000 vs current release 0.9000 (margin 0.02)',
    });
  });
});
