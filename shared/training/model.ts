/**
 * The MLP: built to the data's size with seeded initializers, fitted with early stopping on
 * validation loss (best weights restored) and class weights, saved as tfjs `model.json` +
 * `weights.bin` bytes, and loaded back from those bytes (the device uses the same loader).
 */
import type { LayersModel, Tensor, Tensor2D } from '@tensorflow/tfjs';
import { tf } from '../tf.ts';
import { modelFiles } from '../topology.ts';
import { classificationObjective, type Objective } from './objective.ts';

export interface MlpShape {
  inputWidth: number;
  hidden: number[];
  /** Output units: the classes, or 1 for a regression model's value. */
  classes: number;
}

/** Hidden layers sized to the input width and the number of training rows. */
export function mlpShape(inputWidth: number, classes: number, trainRows: number): MlpShape {
  const wide = 2 ** Math.ceil(Math.log2(Math.max(2, inputWidth * 2)));
  let first = Math.min(128, Math.max(16, wide));
  if (trainRows < 300) first = Math.min(first, 32);
  return { inputWidth, hidden: [first, Math.max(8, first / 2)], classes };
}

export function buildMlp(
  shape: MlpShape,
  seed: number,
  learningRate = 0.005,
  objective: Objective = classificationObjective(shape.classes),
): LayersModel {
  const model = tf.sequential();
  shape.hidden.forEach((units, i) => {
    model.add(
      tf.layers.dense({
        units,
        activation: 'relu',
        ...(i === 0 ? { inputShape: [shape.inputWidth] } : {}),
        kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
        biasInitializer: 'zeros',
      }),
    );
  });
  model.add(
    tf.layers.dense({
      units: objective.units,
      activation: objective.activation,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + shape.hidden.length }),
    }),
  );
  model.compile({
    optimizer: tf.train.adam(learningRate),
    loss: objective.compiledLoss,
    ...(objective.task === 'classification' ? { metrics: ['accuracy'] } : {}),
  });
  return model;
}

export interface EpochProgress {
  epoch: number;
  epochs: number;
  loss: number;
  valLoss: number;
  valAccuracy: number;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  /** Stop after this many epochs without a better validation loss. */
  patience: number;
  classWeight?: Record<number, number>;
  onEpoch?: (progress: EpochProgress) => void;
}

export interface FitResult {
  epochsRun: number;
  bestEpoch: number;
  bestValLoss: number;
}

/**
 * Keeps the best weights by validation loss and stops after `patience` epochs without a
 * better one; `restore` puts the best weights back once the fit is over.
 */
function earlyStopping(model: LayersModel, options: FitOptions) {
  let best = {
    loss: Number.POSITIVE_INFINITY,
    epoch: 0,
    weights: [] as ReturnType<LayersModel['getWeights']>,
  };
  let epochsRun = 0;
  return {
    onEpochEnd: async (epoch: number, logs?: Record<string, unknown>) => {
      epochsRun = epoch + 1;
      const valLoss = Number(logs?.val_loss ?? Number.NaN);
      options.onEpoch?.({
        epoch: epoch + 1,
        epochs: options.epochs,
        loss: Number(logs?.loss ?? Number.NaN),
        valLoss,
        valAccuracy: Number(logs?.val_acc ?? logs?.val_accuracy ?? Number.NaN),
      });
      if (valLoss < best.loss - 1e-4) {
        for (const tensor of best.weights) tensor.dispose();
        best = { loss: valLoss, epoch: epoch + 1, weights: model.getWeights().map((w) => w.clone()) };
      } else if (epoch + 1 - best.epoch >= options.patience) {
        model.stopTraining = true;
      }
    },
    restore(): FitResult {
      if (best.weights.length > 0) {
        model.setWeights(best.weights);
        for (const tensor of best.weights) tensor.dispose();
      }
      return { epochsRun, bestEpoch: best.epoch, bestValLoss: best.loss };
    },
  };
}

/**
 * One `fit` call with shuffle off (the caller passes rows in a seeded order, so a run is
 * reproducible for a seed and backend); a callback keeps the best weights and stops early.
 */
export async function fitMlp(
  model: LayersModel,
  // Any input rank: the windowed trainer fits its recurrent model (n x steps x values) here too.
  train: { x: Tensor; y: Tensor },
  validation: { x: Tensor; y: Tensor },
  options: FitOptions,
): Promise<FitResult> {
  const stopping = earlyStopping(model, options);
  await model.fit(train.x, train.y, {
    epochs: options.epochs,
    batchSize: options.batchSize,
    shuffle: false,
    validationData: [validation.x, validation.y],
    ...(options.classWeight ? { classWeight: options.classWeight } : {}),
    verbose: 0,
    callbacks: { onEpochEnd: stopping.onEpochEnd },
  });
  return stopping.restore();
}

/** One training batch: inputs and one-hot labels. */
export interface Batch {
  xs: Tensor2D;
  ys: Tensor2D;
}

/**
 * The same fit fed batch by batch from a generator (`tf.data`), so only one batch of
 * tensors exists at a time: `batches` is called once per epoch and yields that epoch's
 * batches in order (the caller's seeded order, as with `fitMlp`).
 */
export async function fitMlpBatches(
  model: LayersModel,
  batches: () => Iterator<Batch>,
  validation: { x: Tensor2D; y: Tensor2D },
  options: FitOptions,
): Promise<FitResult> {
  const stopping = earlyStopping(model, options);
  await model.fitDataset(tf.data.generator(batches as () => Iterator<tf.TensorContainer>), {
    epochs: options.epochs,
    validationData: [validation.x, validation.y],
    validationBatchSize: 1024,
    ...(options.classWeight ? { classWeight: options.classWeight } : {}),
    verbose: 0,
    callbacks: { onEpochEnd: stopping.onEpochEnd },
  });
  return stopping.restore();
}

/** Row-major class probabilities for `rows` input vectors of width `width`. */
export function predictProbabilities(model: LayersModel, x: Float32Array, width: number): Float32Array {
  const rows = x.length / width;
  if (rows === 0) return new Float32Array(0);
  return tf.tidy(() => {
    const output = model.predict(tf.tensor2d(x, [rows, width])) as Tensor2D;
    return output.dataSync() as Float32Array;
  });
}

export type Quantization = 'none' | 'uint8' | 'float16';

export interface ModelArtifactBytes {
  modelJson: Uint8Array;
  weights: Uint8Array;
}

/**
 * Serializes the model as tfjs `model.json` (weights manifest pointing at weights.bin) and
 * the weight bytes. uint8/float16 use the tfjs weights-manifest quantization, so the stock
 * loader (tf.io.decodeWeights) reads them back.
 */
export async function saveModelArtifacts(
  model: LayersModel,
  quantize: Quantization = 'none',
): Promise<ModelArtifactBytes> {
  let saved: ModelArtifactBytes | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0));
      const specs = artifacts.weightSpecs ?? [];
      const { weightSpecs, weightData } = quantizeWeights(specs, new Float32Array(data), quantize);
      const json = {
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [modelFiles.weights], weights: weightSpecs }],
      };
      saved = { modelJson: new TextEncoder().encode(JSON.stringify(json)), weights: weightData };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved) throw new Error('tfjs did not hand the model artifacts to the save handler');
  return saved;
}

type WeightSpec = tf.io.WeightsManifestEntry;

function quantizeWeights(specs: WeightSpec[], values: Float32Array, quantize: Quantization) {
  if (quantize === 'none') return { weightSpecs: specs, weightData: new Uint8Array(values.buffer.slice(0)) };
  const chunks: Uint8Array[] = [];
  const weightSpecs: WeightSpec[] = [];
  let offset = 0;
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const slice = values.subarray(offset, offset + size);
    offset += size;
    if (quantize === 'uint8') {
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      for (const v of slice) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      if (!Number.isFinite(min)) min = max = 0;
      const scale = max > min ? (max - min) / 255 : 1;
      chunks.push(Uint8Array.from(slice, (v) => Math.round((v - min) / scale)));
      weightSpecs.push({ ...spec, quantization: { dtype: 'uint8', scale, min } });
    } else {
      chunks.push(new Uint8Array(Uint16Array.from(slice, toFloat16).buffer));
      weightSpecs.push({ ...spec, quantization: { dtype: 'float16' } });
    }
  }
  const total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const weightData = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    weightData.set(chunk, at);
    at += chunk.byteLength;
  }
  return { weightSpecs, weightData };
}

const float32 = new Float32Array(1);
const bits32 = new Uint32Array(float32.buffer);

/** IEEE 754 half precision bits of a float (round to nearest even), as tfjs decodes them. */
function toFloat16(value: number): number {
  float32[0] = value;
  const x = bits32[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exponent = ((x >>> 23) & 0xff) - 127 + 15;
  const mantissa = x & 0x7fffff;
  if (exponent >= 31) return sign | 0x7c00; // overflow -> infinity
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    const m = (mantissa | 0x800000) >> (1 - exponent);
    return sign | ((m + 0x1000) >> 13);
  }
  const half = sign | (exponent << 10) | (mantissa >> 13);
  const rest = mantissa & 0x1fff;
  return rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half;
}

/** Loads a model saved by saveModelArtifacts (or any tfjs layers model.json + one weights file). */
export async function loadModelFromArtifacts(
  modelJson: Uint8Array,
  weights: Uint8Array,
): Promise<LayersModel> {
  const json = JSON.parse(new TextDecoder().decode(modelJson)) as {
    modelTopology: object;
    weightsManifest: { weights: WeightSpec[] }[];
  };
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const weightData = weights.buffer.slice(
    weights.byteOffset,
    weights.byteOffset + weights.byteLength,
  ) as ArrayBuffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}
