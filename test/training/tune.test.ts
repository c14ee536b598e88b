/**
 * The tuner: its budget follows the dataset's size and the config, it picks on the
 * validation split, it is reproducible for a seed, a wall-time cap skips what does not fit,
 * and its report reaches the outcome and the manifest.
 */
import { describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { TrainingConfigSchema, type TuningReport } from '../../shared/schemas.ts';
import { initTf, tf } from '../../shared/tf.ts';
import { loadModelFromArtifacts, saveModelArtifacts } from '../../shared/training/model.ts';
import { classificationObjective } from '../../shared/training/objective.ts';
import { seededRandom } from '../../shared/training/random.ts';
import { trainFromCsv } from '../../shared/training/train.ts';
import { ensembleMembers, tuneMlp, tuningRecipes } from '../../shared/training/tune.ts';

/** The search's steps at most: every first round, then the longest continuation. */
const totalSteps = (rows: number) => {
  const recipes = tuningRecipes(rows, 8, { candidates: 5, maxEpochs: 1000 });
  const firstRound = recipes.reduce((sum, r) => sum + r.firstSteps, 0);
  return firstRound + Math.max(...recipes.map((r) => r.maxSteps - r.firstSteps));
};

/** Higher validation accuracy, then lower validation loss. */
function bestByValidation(report: TuningReport): number {
  let best = 0;
  report.candidates.forEach((c, i) => {
    const b = report.candidates[best];
    const acc = c.validationAccuracy ?? -1;
    const bestAcc = b?.validationAccuracy ?? -1;
    if (acc > bestAcc || (acc === bestAcc && (c.validationLoss ?? 1e9) < (b?.validationLoss ?? 1e9)))
      best = i;
  });
  return best;
}

/** XOR quadrants: 200 training and 60 validation rows of two inputs, two classes. */
function xorData() {
  const random = seededRandom(3);
  const rowsOf = (n: number) => {
    const x = new Float32Array(n * 2);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const [a, b] = [random() * 2 - 1, random() * 2 - 1];
      x.set([a, b], i * 2);
      labels[i] = a * b > 0 ? 1 : 0;
    }
    return { x, labels };
  };
  const train = rowsOf(200);
  return {
    ...train,
    width: 2,
    classes: 2,
    validation: rowsOf(60),
    classWeight: { 0: 1, 1: 1 },
    objective: classificationObjective(2),
  };
}

describe('the tuning budget', () => {
  it('tries five recipes on a mid-sized set, fewer on a tiny one, each with enough steps', () => {
    // Act
    const tiny = tuningRecipes(105, 4, { candidates: 5, maxEpochs: 1000 });
    const mid = tuningRecipes(1000, 8, { candidates: 5, maxEpochs: 1000 });

    // Assess
    expect(mid).toHaveLength(5);
    expect(tiny.length).toBeLessThan(5);
    expect(tiny.length).toBeGreaterThanOrEqual(1);
    for (const recipe of tiny) expect(recipe.maxSteps).toBeGreaterThanOrEqual(200);
    expect(mid[0]).toMatchObject({ hidden: [32, 16], learningRate: 0.01, batchSize: 32 });
  });

  it("races every candidate a first round and lets the winner go on to a plain fit's steps", () => {
    // Act
    const recipes = tuningRecipes(1000, 8, { candidates: 3, maxEpochs: 100 });

    // Assess: the winner may take 100 passes at batch 32; the race is shorter.
    for (const recipe of recipes) {
      expect(recipe.firstSteps).toBeLessThan(recipe.maxSteps);
      expect(recipe.firstSteps).toBeGreaterThanOrEqual(100);
    }
    expect(recipes[0]?.maxSteps).toBe(100 * Math.ceil(1000 / 32));
  });

  it('grows with the rows but is capped for large data, so big sets get fewer passes', () => {
    // Act
    const steps = [500, 5000, 50_000].map(totalSteps);

    // Assess
    expect(steps[1]).toBeGreaterThan(steps[0] ?? 0);
    expect(steps[2]).toBeLessThanOrEqual(20_000);
    const passes = (rows: number, total: number) => (total * 32) / rows;
    expect(passes(50_000, steps[2] ?? 0)).toBeLessThan(passes(5000, steps[1] ?? 0));
  });

  it('keeps to the config: at most `candidates` recipes and `epochs` passes each', () => {
    // Act
    const recipes = tuningRecipes(1000, 8, { candidates: 2, maxEpochs: 3 });

    // Assess
    expect(recipes).toHaveLength(2);
    for (const recipe of recipes)
      expect(recipe.maxSteps).toBeLessThanOrEqual(3 * Math.ceil(1000 / recipe.batchSize));
  });
});

describe('the search', () => {
  const csv = generateDemoDataset({ rows: 300, seed: 9 });
  const config = TrainingConfigSchema.parse({ epochs: 15, seed: 5, tuning: { candidates: 3 } });

  it('scores every candidate on the validation split, picks the best, and is reproducible', async () => {
    // Act
    const first = await trainFromCsv(csv, config);
    const again = await trainFromCsv(csv, config);

    // Assess
    const report = first.tuning as TuningReport;
    expect(report.candidates).toHaveLength(3);
    for (const candidate of report.candidates) {
      expect(candidate.validationAccuracy).toBeGreaterThan(0);
      expect(candidate.steps).toBeGreaterThan(0);
    }
    expect(report.chosen).toBe(bestByValidation(report));
    expect(report.refit?.steps).toBeGreaterThan(0);
    expect(first.shape.hidden).toEqual(report.candidates[report.chosen]?.hidden);
    // Same seed and backend: the same scores and the same shipped weights.
    expect(again.tuning?.candidates.map((c) => c.validationLoss)).toEqual(
      report.candidates.map((c) => c.validationLoss),
    );
    expect(Buffer.from(again.artifacts.weights).equals(Buffer.from(first.artifacts.weights))).toBe(true);
  });

  it("continues only the first round's best, from where it was, past the race's steps", async () => {
    // Prepare: XOR quadrants, five candidates: a short race, and the leader is still learning.
    await initTf();

    // Act
    const { model, report } = await tuneMlp(xorData(), {
      seed: 1,
      candidates: 5,
      maxEpochs: 100,
      maxMs: 600_000,
      refit: false,
    });
    model.dispose();

    // Assess
    const leader = report.continued as number;
    expect(report.candidates[leader]?.steps).toBeGreaterThan(report.candidates[leader]?.firstSteps ?? 0);
    report.candidates.forEach((c, i) => {
      if (i !== leader) expect(c.steps).toBeLessThanOrEqual(c.firstSteps ?? 0);
    });
    expect(report.chosen).toBe(bestByValidation(report));
  });

  it('goes into the manifest, where the schema keeps it', async () => {
    // Prepare
    const outcome = await trainFromCsv(csv, {
      ...config,
      tuning: { candidates: 1, maxSeconds: 600, refit: false, ensemble: true },
    });

    // Act
    const manifest = releasedManifest(outcome, { model: 'pump', datasetKey: 'd.csv' });

    // Assess
    expect(manifest.tuning).toEqual(outcome.tuning);
    expect(manifest.tuning?.candidates).toHaveLength(1);
    expect(manifest.tuning?.refit).toBeUndefined();
  });

  it('skips the candidates that the wall-time cap leaves no time for, and says so', async () => {
    // Act
    const outcome = await trainFromCsv(csv, {
      ...config,
      tuning: { candidates: 3, maxSeconds: 0.001, refit: true, ensemble: true },
    });

    // Assess
    const report = outcome.tuning as TuningReport;
    expect(report.chosen).toBe(0);
    expect(report.candidates.slice(1).map((c) => c.skipped)).toEqual([
      'wall-time cap (config tuning.maxSeconds)',
      'wall-time cap (config tuning.maxSeconds)',
    ]);
    expect(report.refit).toBeUndefined();
    expect(outcome.metrics.testRows).toBeGreaterThan(0);
  });
});

describe('the ensemble', () => {
  it('takes the winner and the candidates close to it on validation, not the far ones', () => {
    // Prepare
    const scores = [0.9, 0.86, 0.8, undefined, 0.84].map((validationAccuracy) => ({
      hidden: [32],
      learningRate: 0.01,
      batchSize: 32,
      l2: 0,
      classWeighted: false,
      maxSteps: 100,
      ...(validationAccuracy === undefined ? { skipped: 'cap' } : { validationAccuracy }),
    }));

    // Act
    const wide = ensembleMembers(scores, 0, 1000);
    const small = ensembleMembers(scores, 0, 20);

    // Assess: 0.05 on a large split; two rows (0.1) on a 20-row one; never a skipped one.
    expect(wide).toEqual([0, 1]);
    expect(small).toEqual([0, 1, 2, 4]);
  });

  it('ships the mean of its members, scored as reported, and it saves, loads and quantizes', async () => {
    // Prepare
    await initTf();
    const data = xorData();
    const options = { seed: 1, candidates: 5, maxEpochs: 100, maxMs: 600_000, refit: false };

    // Act
    const { model, report } = await tuneMlp(data, options);
    const single = await tuneMlp(data, { ...options, ensemble: false });
    const artifacts = await saveModelArtifacts(model, 'float16');
    const loaded = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);

    // Assess: without a refit the weights are the scored ones, so the validation accuracy
    // of what ships is the reported one, and the loaded float16 copy predicts the same.
    const ensemble = report.ensemble as NonNullable<TuningReport['ensemble']>;
    expect(ensemble.members).toContain(report.chosen);
    expect(ensemble.members.length).toBeGreaterThanOrEqual(2);
    const x = tf.tensor2d(data.validation.x, [data.validation.labels.length, 2]);
    const predicted = (model.predict(x) as tf.Tensor2D).argMax(1).dataSync();
    const hits = data.validation.labels.filter((y, i) => predicted[i] === y).length;
    expect(hits / data.validation.labels.length).toBeCloseTo(ensemble.validationAccuracy ?? Number.NaN, 5);
    const reloaded = (loaded.predict(x) as tf.Tensor2D).argMax(1).dataSync();
    expect(Array.from(reloaded)).toEqual(Array.from(predicted));
    const sums = (model.predict(x) as tf.Tensor2D).sum(1).dataSync();
    for (const sum of sums) expect(sum).toBeCloseTo(1, 5);
    expect(single.report.ensemble).toBeUndefined();
    expect(single.model.getWeights().length).toBeLessThan(model.getWeights().length);
    for (const m of [model, loaded, single.model]) m.dispose();
    x.dispose();
  });
});
