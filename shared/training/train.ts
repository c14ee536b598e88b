/**
 * Dataset bytes + config -> a trained, evaluated classifier and its artifacts. Pure of AWS:
 * the training function and `edgeloop train` both call `trainFromCsv`.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { type Dataset, parseDataset } from '../dataset.ts';
import { type RawRow, transformRows } from '../preprocess.ts';
import type { Manifest, ModelMetrics, Preprocessing, TrainingConfig } from '../schemas.ts';
import { initTf, tf } from '../tf.ts';
import { argmaxRows, classificationMetrics } from './metrics.ts';
import {
  buildMlp,
  type EpochProgress,
  fitMlp,
  loadModelFromArtifacts,
  type MlpShape,
  type ModelArtifactBytes,
  mlpShape,
  predictProbabilities,
  saveModelArtifacts,
} from './model.ts';
import { fitPreprocessing } from './preprocessing.ts';
import { seededRandom, shuffleInPlace } from './random.ts';
import { stratifiedSplit } from './split.ts';

export interface TrainRunOptions {
  /** File name or S3 key, used in rejection messages. */
  source?: string;
  maxBytes?: number;
  onEpoch?: (progress: EpochProgress) => void;
  /** Epochs without a better validation loss before stopping. */
  patience?: number;
}

export interface TrainingOutcome {
  preprocessing: Preprocessing;
  metrics: ModelMetrics;
  classDistribution: Record<string, number>;
  golden: Manifest['golden'];
  artifacts: ModelArtifactBytes;
  shape: MlpShape;
  /** Rows kept after validation, feature columns used, class names. */
  rows: number;
  features: string[];
  classes: string[];
  notices: string[];
  backend: string;
  seed: number;
  epochsRun: number;
  bestEpoch: number;
  /** The held-out rows (raw) and their labels: the gate scores the current release on them. */
  testSet: { rows: Record<string, string>[]; labels: string[] };
}

export const GOLDEN_ROWS = 5;
export const GOLDEN_TOLERANCE = 1e-3;

export async function trainFromCsv(
  csv: Uint8Array | string,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  const dataset = parseDataset(csv, {
    ...(config.label ? { label: config.label } : {}),
    ...(config.features ? { features: config.features } : {}),
    minRowsPerClass: config.minRowsPerClass,
    ...(options.maxBytes ? { maxBytes: options.maxBytes } : {}),
    ...(options.source ? { source: options.source } : {}),
  });
  return trainOnDataset(dataset, config, options);
}

export async function trainOnDataset(
  dataset: Dataset,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  const backend = await initTf();
  const split = stratifiedSplit(dataset.y, { seed: config.seed });
  const preprocessing = fitPreprocessing(dataset, split.train);
  const k = dataset.labels.length;
  const trainOrder = shuffleInPlace([...split.train], seededRandom(config.seed));
  const shape = mlpShape(preprocessing.inputWidth, k, trainOrder.length);

  const tensors = tf.tidy(() => ({
    train: toTensors(dataset, preprocessing, trainOrder),
    validation: toTensors(dataset, preprocessing, split.validation),
  }));
  const model = buildMlp(shape, config.seed);
  let fitted: Awaited<ReturnType<typeof fitMlp>>;
  try {
    fitted = await fitMlp(model, tensors.train, tensors.validation, {
      epochs: config.epochs,
      batchSize: config.batchSize,
      patience: options.patience ?? Math.max(5, Math.round(config.epochs / 6)),
      classWeight: classWeights(
        trainOrder.map((i) => dataset.y[i] ?? 0),
        k,
      ),
      ...(options.onEpoch ? { onEpoch: options.onEpoch } : {}),
    });
  } finally {
    tf.dispose([tensors.train.x, tensors.train.y, tensors.validation.x, tensors.validation.y]);
  }
  const testRows = split.test.map((i) => dataset.rows[i] ?? {});
  const testTruth = split.test.map((i) => dataset.y[i] ?? 0);
  const testX = transformRows(preprocessing, testRows);
  const artifacts = await saveModelArtifacts(model, config.quantize);
  // The float model's accuracy, to report what quantization costs.
  const floatAccuracy =
    config.quantize === 'none'
      ? undefined
      : classificationMetrics(
          testTruth,
          argmaxRows(predictProbabilities(model, testX, preprocessing.inputWidth), k),
          dataset.labels,
        ).accuracy;
  const floatBytes = model.getWeights().reduce((sum, w) => sum + w.size * 4, 0);
  model.dispose();

  // Evaluate what ships: the model as loaded back from its artifact bytes.
  const shipped = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    const probabilities = predictProbabilities(shipped, testX, preprocessing.inputWidth);
    const metrics = classificationMetrics(testTruth, argmaxRows(probabilities, k), dataset.labels);
    if (config.quantize !== 'none' && floatAccuracy !== undefined) {
      metrics.quantization = {
        dtype: config.quantize,
        sizeRatio: Math.round((artifacts.weights.byteLength / floatBytes) * 1e4) / 1e4,
        accuracyDelta: Math.round((metrics.accuracy - floatAccuracy) * 1e6) / 1e6,
      };
    }
    const golden = goldenVectors(shipped, preprocessing, testRows, dataset.features);
    return {
      preprocessing,
      metrics,
      classDistribution: classDistribution(dataset),
      golden,
      artifacts,
      shape,
      rows: dataset.rows.length,
      features: dataset.features,
      classes: dataset.labels,
      notices: dataset.notices,
      backend,
      seed: config.seed,
      epochsRun: fitted.epochsRun,
      bestEpoch: fitted.bestEpoch,
      testSet: { rows: testRows, labels: testTruth.map((y) => dataset.labels[y] ?? '') },
    };
  } finally {
    shipped.dispose();
  }
}

function toTensors(dataset: Dataset, preprocessing: Preprocessing, indices: readonly number[]) {
  const rows = indices.map((i) => dataset.rows[i] ?? {});
  const x = tf.tensor2d(transformRows(preprocessing, rows), [indices.length, preprocessing.inputWidth]);
  const y = tf.oneHot(
    tf.tensor1d(
      indices.map((i) => dataset.y[i] ?? 0),
      'int32',
    ),
    dataset.labels.length,
  ) as tf.Tensor2D;
  return { x, y: y.toFloat() as tf.Tensor2D };
}

/**
 * Tempered balanced class weights, (n / (k * count))^0.25: rare classes weigh more, but not
 * so much that accuracy on the common ones is traded away (the fourth root measured best
 * on the bench datasets; full balancing cost up to 16 points of accuracy on seattle-weather).
 */
export const CLASS_WEIGHT_POWER = 0.25;

export function classWeights(y: readonly number[], classes: number): Record<number, number> {
  const counts = new Array<number>(classes).fill(0);
  for (const c of y) counts[c] = (counts[c] ?? 0) + 1;
  const weights: Record<number, number> = {};
  counts.forEach((count, c) => {
    weights[c] = count ? (y.length / (classes * count)) ** CLASS_WEIGHT_POWER : 1;
  });
  return weights;
}

function classDistribution(dataset: Dataset): Record<string, number> {
  const counts = new Array<number>(dataset.labels.length).fill(0);
  for (const c of dataset.y) counts[c] = (counts[c] ?? 0) + 1;
  return Object.fromEntries(
    dataset.labels.map((name, c) => [name, Math.round(((counts[c] ?? 0) / dataset.y.length) * 1e6) / 1e6]),
  );
}

/** A few held-out raw rows with the probabilities the shipped model gives them. */
function goldenVectors(
  model: LayersModel,
  preprocessing: Preprocessing,
  testRows: readonly Record<string, string>[],
  features: readonly string[],
): Manifest['golden'] {
  const rows = testRows
    .slice(0, GOLDEN_ROWS)
    .map((row) => Object.fromEntries(features.map((column) => [column, row[column] ?? ''])));
  const probabilities = predictProbabilities(
    model,
    transformRows(preprocessing, rows),
    preprocessing.inputWidth,
  );
  const k = preprocessing.labels.length;
  const outputs = rows.map((_, i) =>
    Array.from(probabilities.subarray(i * k, (i + 1) * k), (p) => Number(p.toFixed(6))),
  );
  return { rows, outputs, tolerance: GOLDEN_TOLERANCE };
}

/**
 * Accuracy of an already released model on new held-out rows, by label name (a class the
 * old model does not know counts as a miss). The quality gate compares on the same rows.
 */
export async function accuracyOnRows(
  artifacts: ModelArtifactBytes,
  preprocessing: Preprocessing,
  rows: readonly RawRow[],
  truth: readonly string[],
): Promise<number> {
  await initTf();
  const model = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    const probabilities = predictProbabilities(
      model,
      transformRows(preprocessing, rows),
      preprocessing.inputWidth,
    );
    const predicted = argmaxRows(probabilities, preprocessing.labels.length);
    const correct = predicted.filter((p, i) => preprocessing.labels[p] === truth[i]).length;
    return truth.length ? correct / truth.length : 0;
  } finally {
    model.dispose();
  }
}
