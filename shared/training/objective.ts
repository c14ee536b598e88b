/**
 * What a model's task changes in an MLP and its training: the output layer, the loss, the
 * targets it is fitted to, and how a validation score ranks candidates. Everything else (the
 * split, the preprocessing, the tuner's search, early stopping, saving) is shared.
 *
 * Regression fits standardized targets with mean squared error: RMSE is what the gate and
 * the reports judge, and MSE optimizes it directly; the standardization (and the optional
 * `target` cap) keeps one extreme target from dominating the loss, which is what Huber
 * would be chosen for.
 */
import type { Tensor1D, Tensor2D } from '@tensorflow/tfjs';
import type { Task } from '../schemas.ts';
import { tf } from '../tf.ts';

export interface Objective {
  readonly task: Task;
  /** Units of the output layer: one per class, or one value. */
  readonly units: number;
  readonly activation: 'softmax' | 'linear';
  /** The loss name tfjs compiles for `model.fit` (the streaming path for large datasets). */
  readonly compiledLoss: 'categoricalCrossentropy' | 'meanSquaredError';
  /** Row-major [n, units] fit targets from the stored y (class indices, or standardized values). */
  targets(y: ArrayLike<number>): Float32Array;
  /** Per-row loss, shape [n]. */
  rowLoss(output: Tensor2D, targets: Tensor2D): Tensor1D;
  /** Share of rows classified right; undefined for regression (ranked by loss alone). */
  accuracy(output: Tensor2D, targets: Tensor2D): number | undefined;
}

export function classificationObjective(classes: number): Objective {
  return {
    task: 'classification',
    units: classes,
    activation: 'softmax',
    compiledLoss: 'categoricalCrossentropy',
    targets(y) {
      const out = new Float32Array(y.length * classes);
      for (let i = 0; i < y.length; i++) out[i * classes + (y[i] as number)] = 1;
      return out;
    },
    rowLoss: (output, targets) =>
      tf.neg(tf.sum(tf.mul(targets, tf.log(output.clipByValue(1e-7, 1 - 1e-7))), 1)) as Tensor1D,
    accuracy: (output, targets) =>
      tf.tidy(
        () =>
          tf.mean(tf.cast(tf.equal(tf.argMax(output, 1), tf.argMax(targets, 1)), 'float32')).dataSync()[0] ??
          0,
      ),
  };
}

export const regressionObjective: Objective = {
  task: 'regression',
  units: 1,
  activation: 'linear',
  compiledLoss: 'meanSquaredError',
  targets: (y) => Float32Array.from(y),
  rowLoss: (output, targets) => tf.sum(tf.square(tf.sub(output, targets)), 1) as Tensor1D,
  accuracy: () => undefined,
};

/**
 * An anomaly model reconstructs its input (an autoencoder): `width` linear outputs, fitted
 * with MSE to the input vectors themselves, which the caller passes as the targets.
 */
export function anomalyObjective(width: number): Objective {
  return {
    task: 'anomaly',
    units: width,
    activation: 'linear',
    compiledLoss: 'meanSquaredError',
    targets: () => {
      throw new Error("an anomaly model's targets are its inputs: pass the input tensor");
    },
    rowLoss: (output, targets) => tf.mean(tf.square(tf.sub(output, targets)), 1) as Tensor1D,
    accuracy: () => undefined,
  };
}

/** The objective of a task; `units` is the classes, or an anomaly model's input width. */
export function objectiveFor(task: Task | undefined, units: number): Objective {
  if (task === 'anomaly') return anomalyObjective(units);
  return task === 'regression' ? regressionObjective : classificationObjective(units);
}
