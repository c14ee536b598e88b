/**
 * The windowed models: `spectral` windows feed the repo's MLP (shared/training/model.ts);
 * `raw` windows feed a GRU over the window's samples, then a softmax (the founding example's
 * Input -> recurrent -> Dense(softmax), categorical cross-entropy, Adam). A GRU, not a conv1d:
 * conv1d training fails on the wasm backend (no Conv2DBackpropFilter kernel, tfjs #8474),
 * LSTM and GRU train there, and a GRU has a quarter fewer weights than an LSTM.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { tf } from '../tf.ts';
import { classificationObjective, type Objective } from '../training/objective.ts';

export const RECURRENT_UNITS = 32;

/** A GRU over `steps` steps of `stepWidth` values (frames of samples, see features.ts). */
export function buildRecurrent(
  steps: number,
  stepWidth: number,
  classes: number,
  seed: number,
  learningRate = 0.005,
  objective: Objective = classificationObjective(classes),
): LayersModel {
  const model = tf.sequential();
  model.add(
    tf.layers.gru({
      units: RECURRENT_UNITS,
      inputShape: [steps, stepWidth],
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
      // Not orthogonal: tfjs warns on every load of a model whose recurrent kernel has 2,000+ weights.
      recurrentInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
    }),
  );
  model.add(
    tf.layers.dense({
      units: objective.units,
      activation: objective.activation,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
    }),
  );
  model.compile({
    optimizer: tf.train.adam(learningRate),
    loss: objective.compiledLoss,
    ...(objective.task === 'classification' ? { metrics: ['accuracy'] } : {}),
  });
  return model;
}

/** Inputs as a tensor of n windows of the per-window `shape`. */
export function inputTensor(x: Float32Array, n: number, shape: readonly number[]): Tensor {
  return tf.tensor(x, [n, ...shape]);
}

/** Most windows tfjs runs as one batch. */
export const PREDICT_BATCH = 1024;

/**
 * Row-major class probabilities for n windows, in batches of up to 1,024 (tfjs's default
 * slices of 32 and their concat cost several times the predict of a small model; the gateway
 * predicts its windows the same way).
 */
export function predictWindows(model: LayersModel, x: Float32Array, n: number, shape: readonly number[]) {
  if (n === 0) return new Float32Array(0);
  return tf.tidy(
    () =>
      (
        model.predict(inputTensor(x, n, shape), { batchSize: Math.min(n, PREDICT_BATCH) }) as Tensor
      ).dataSync() as Float32Array,
  );
}
