/**
 * The ridge regression candidate: its closed form, its penalty cross-validated over whole
 * groups, and the dense layer it ships as.
 */
import { describe, expect, it } from 'vitest';
import { initTf, tf } from '../../shared/tf.ts';
import { seededRandom } from '../../shared/training/random.ts';
import {
  fitRidge,
  RIDGE_PENALTIES,
  ridgeModel,
  ridgePenaltyByGroups,
  ridgePredict,
  ridgeSums,
  selectColumnKinds,
  selectColumns,
  solveSpd,
} from '../../shared/training/ridge.ts';

/** n rows of `width` uniform inputs and y = 2 x0 - 3 x1 + 5 (+ noise). */
function linearRows(n: number, width: number, noise: number, seed = 1) {
  const random = seededRandom(seed);
  const x = Float32Array.from({ length: n * width }, () => random() * 2 - 1);
  const y = Array.from(
    { length: n },
    (_, i) => 2 * (x[i * width] as number) - 3 * (x[i * width + 1] as number) + 5 + noise * (random() - 0.5),
  );
  return { x, y };
}

describe('ridge regression', () => {
  it('solves a symmetric positive definite system', () => {
    // Prepare: [[4, 2], [2, 3]] x = [10, 8] has x = [1.75, 1.5].
    const a = Float64Array.from([4, 2, 2, 3]);

    // Act
    const x = solveSpd(a, Float64Array.from([10, 8]));

    // Assess
    expect(x[0]).toBeCloseTo(1.75, 10);
    expect(x[1]).toBeCloseTo(1.5, 10);
    expect(() => solveSpd(Float64Array.from([1, 2, 2, 1]), Float64Array.from([1, 1]))).toThrow(
      /not positive definite/,
    );
  });

  it('recovers a linear relation with a small penalty, and shrinks its weights with a large one', () => {
    // Prepare
    const { x, y } = linearRows(400, 3, 0);
    const sums = ridgeSums(x, y, 3);

    // Act
    const exact = fitRidge(sums, 1e-9);
    const shrunk = fitRidge(sums, 10);

    // Assess: the weights and intercept, then weights near 0 and the intercept near y's mean.
    expect(Array.from(exact.weights).map((w) => Number(w.toFixed(4)))).toEqual([2, -3, 0]);
    expect(exact.bias).toBeCloseTo(5, 4);
    expect(Math.abs(shrunk.weights[1] as number)).toBeLessThan(0.2);
    expect(shrunk.bias).toBeCloseTo(y.reduce((a, b) => a + b, 0) / y.length, 0);
  });

  it('ships as one dense layer that predicts what the closed form does', async () => {
    // Prepare
    await initTf();
    const { x, y } = linearRows(50, 4, 1);
    const ridge = fitRidge(ridgeSums(x, y, 4), 0.01);

    // Act
    const model = ridgeModel(ridge);
    const outputs = tf.tidy(() => (model.predict(tf.tensor2d(x, [50, 4])) as tf.Tensor).dataSync());
    model.dispose();

    // Assess
    expect(model.layers).toHaveLength(1);
    const expected = ridgePredict(ridge, x);
    outputs.forEach((v, i) => {
      expect(v).toBeCloseTo(expected[i] as number, 4);
    });
  });

  it('picks the smallest penalty on clean linear data and the largest on pure noise', () => {
    // Prepare: 20 groups of 20 rows.
    const clean = linearRows(400, 5, 0.1);
    const random = seededRandom(7);
    const noise = Array.from({ length: 400 }, () => random());
    const groups = Array.from({ length: 400 }, (_, i) => `g${Math.floor(i / 20)}`);

    // Act
    const onClean = ridgePenaltyByGroups(clean.x, clean.y, groups, 5);
    const onNoise = ridgePenaltyByGroups(clean.x, noise, groups, 5);

    // Assess
    expect(onClean.penalty).toBe(RIDGE_PENALTIES[0]);
    expect(onClean.mse).toBeLessThan(0.01);
    expect(onNoise.penalty).toBe(RIDGE_PENALTIES[RIDGE_PENALTIES.length - 1]);
  });

  it('keeps a group in one fold: rows that only recognize their own group do not vouch for a small penalty', () => {
    // Prepare: 10 groups; each group's rows share a random input vector (plus a little noise)
    // and a random target, unrelated across groups: 12 inputs can memorize 10 groups' targets,
    // which nothing about a new group supports.
    const random = seededRandom(3);
    const width = 12;
    const rows = 200;
    const groupInputs = Array.from({ length: 10 }, () =>
      Array.from({ length: width }, () => random() * 2 - 1),
    );
    const groupTargets = Array.from({ length: 10 }, () => random() * 2 - 1);
    const groupOf = (i: number) => Math.floor(i / 20);
    const x = Float32Array.from({ length: rows * width }, (_, k) => {
      const inputs = groupInputs[groupOf(Math.floor(k / width))] as number[];
      return (inputs[k % width] as number) + 0.01 * (random() - 0.5);
    });
    const y = Array.from({ length: rows }, (_, i) => groupTargets[groupOf(i)] as number);

    // Act
    const byGroup = ridgePenaltyByGroups(
      x,
      y,
      Array.from({ length: rows }, (_, i) => `g${groupOf(i)}`),
      width,
    );
    const byRow = ridgePenaltyByGroups(
      x,
      y,
      Array.from({ length: rows }, (_, i) => `r${i}`),
      width,
    );

    // Assess: row folds reward memorizing; group folds see it fail on a new group.
    expect(byRow.penalty).toBe(RIDGE_PENALTIES[0]);
    expect(byGroup.penalty).toBeGreaterThan(byRow.penalty);
    expect(byGroup.mse).toBeGreaterThan(byRow.mse);
  });

  it('keeps the column kinds that predict new groups, and leaves out those that only add variance', () => {
    // Prepare: 12 groups of 30 rows; 3 channels of a 'level' and a 'slope' column and of 6
    // noise kinds; y is the channels' levels plus noise.
    const random = seededRandom(11);
    const kinds = ['level', 'slope', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
    const columnKinds = [0, 1, 2].flatMap(() => kinds);
    const width = columnKinds.length;
    const rows = 360;
    const x = Float32Array.from({ length: rows * width }, () => random() * 2 - 1);
    const y = Array.from({ length: rows }, (_, i) => {
      const level = columnKinds.reduce(
        (sum, kind, c) => sum + (kind === 'level' ? (x[i * width + c] as number) : 0),
        0,
      );
      return level + 0.5 * (random() - 0.5);
    });
    const groups = Array.from({ length: rows }, (_, i) => `g${Math.floor(i / 30)}`);

    // Act
    const chosen = selectColumnKinds(x, y, groups, width, columnKinds);

    // Assess: the level columns, maybe one noise kind that happened to help, never all of them.
    expect(chosen.columns.map((c) => columnKinds[c])).toEqual(
      expect.arrayContaining(['level', 'level', 'level']),
    );
    expect(chosen.columns.length).toBeLessThanOrEqual(6);
    expect(selectColumns(x, width, chosen.columns).length).toBe(rows * chosen.columns.length);
  });
});
