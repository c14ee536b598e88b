/**
 * A loaded model and the one thing the device does with it: raw readings in, labels and
 * confidences (or a regression model's values) out, with the manifest's preprocessing
 * applied and every tensor disposed.
 */

import {
  anomalyColumns,
  type ChannelShare,
  channelShares,
  reconstructionScore,
} from '../../shared/anomaly.ts';
import { noveltyScore, UNKNOWN_CLASS } from '../../shared/novelty.ts';
import { type RawRow, transformInto } from '../../shared/preprocess.ts';
import type { Manifest } from '../../shared/schemas.ts';
import { outputUnits, targetValue } from '../../shared/target.ts';
import { initTf, tf } from '../../shared/tf.ts';
import { windowProbationFailure } from './window-model.ts';

/** The standard tfjs layers-model JSON (what tf.io.withSaveHandler's artifacts become on disk). */
interface ModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/** A classifier's answer to one reading, a regression model's, or an anomaly model's. */
export type Prediction =
  | {
      label: string;
      confidence: number;
      /** A reading far from the training data: answered `unknown`, with the class it would have been. */
      wouldBe?: string;
      novelty?: number;
      value?: undefined;
      score?: undefined;
    }
  | { value: number; score?: undefined }
  | { score: number; threshold: number; anomaly: boolean; channels: ChannelShare[]; value?: undefined };

export interface Classified {
  labels: readonly string[];
  best: Int32Array;
  confidence: Float32Array;
  /** The model's raw outputs (rows x classes; rows x 1 for regression). */
  probs: Float32Array;
  /** A regression model's values in target units (scale and clip applied); then labels is empty. */
  values?: Float32Array;
  /** An anomaly model's scores, the columns that drove each, and the threshold they are judged by. */
  anomaly?: { scores: Float32Array; channels: ChannelShare[][]; threshold: number };
  /** A classifier's novelty scores and the threshold over which a reading is answered `unknown`. */
  novelty?: { scores: Float32Array; threshold: number };
}

/** What a classify call answers, as the result paths read it (not the raw outputs). */
export type ClassifiedAnswers = Pick<
  Classified,
  'labels' | 'best' | 'confidence' | 'values' | 'anomaly' | 'novelty'
>;

/** Row `i`'s answer: its value, or its best class and that class's probability. */
export function predictionAt(classified: ClassifiedAnswers, i: number): Prediction {
  if (classified.values) return { value: classified.values[i] ?? Number.NaN };
  const scored = classified.anomaly;
  if (scored) {
    const score = scored.scores[i] ?? Number.NaN;
    return {
      score,
      threshold: scored.threshold,
      anomaly: score > scored.threshold,
      channels: scored.channels[i] ?? [],
    };
  }
  const top = classified.best[i] ?? 0;
  const label = classified.labels[top] ?? String(top);
  const confidence = classified.confidence[i] ?? Number.NaN;
  const novelty = classified.novelty?.scores[i];
  if (novelty !== undefined && isNovel(novelty, classified.novelty?.threshold))
    return { label: UNKNOWN_CLASS, confidence, wouldBe: label, novelty: roundScore(novelty) };
  return { label, confidence };
}

/** Whether a novelty score (as results carry it, 7 digits) is over the threshold. */
export function isNovel(score: number, threshold: number | undefined): boolean {
  return threshold !== undefined && roundScore(score) > threshold;
}

/** A score as results carry it: the 7 significant digits a float32 has. */
function roundScore(value: number): number {
  return Number(value.toPrecision(7));
}

export interface LoadedModel {
  version: number;
  manifest: Manifest;
  /** One `predict` for the whole batch; fills `probs` (rows x classes) when given. */
  predictRows(rows: readonly RawRow[]): { predictions: Prediction[]; probs: Float32Array };
  /**
   * The same predict without an object per row (the replay hot path): each row's best class
   * index into `labels` and its probability, exactly what `predictRows` reports.
   */
  classifyRows(rows: readonly RawRow[]): Classified;
  /**
   * `classifyRows` for rows already transformed: `x` holds `n` rows of `inputWidth` values.
   * tfjs runs all `n` as one batch, not in its default slices of 32 and a concat: 250 rows of
   * the bench's MLP take 0.18 ms of CPU that way against 0.74 ms (the answers are the same).
   */
  classifyInput(x: Float32Array, n: number): Classified;
  dispose(): void;
}

/**
 * A windowed model's input is a window's features, not a row's: fed rows it would predict
 * from a vector of zeros past the channels, silently wrong. Every row path refuses it.
 */
export function refuseWindowedModel(manifest: Manifest): void {
  if (manifest.window)
    throw new Error(
      `model v${manifest.version} classifies windows of readings (${manifest.window.spec.samples} samples of ${manifest.window.spec.channels.join(', ')}), not single rows`,
    );
}

/** Builds a layers model from model.json + weights.bin bytes. */
export async function loadModelFromBytes(
  modelJsonBytes: Uint8Array,
  weightsBytes: Uint8Array,
  manifest: Manifest,
): Promise<LoadedModel> {
  await initTf();
  const json = JSON.parse(Buffer.from(modelJsonBytes).toString('utf8')) as ModelJson;
  if (!json.modelTopology || !Array.isArray(json.weightsManifest))
    throw new Error('model.json is not a tfjs layers model (needs modelTopology and weightsManifest)');
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const weightData = weightsBytes.buffer.slice(
    weightsBytes.byteOffset,
    weightsBytes.byteOffset + weightsBytes.byteLength,
  ) as ArrayBuffer;
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }),
  );
  const pre = manifest.preprocessing;
  const width = pre.inputWidth;
  const labels = pre.labels;
  // One input vector per row; a windowed model's per-window input may be 2-D (steps x values).
  const inputShape = (model.inputs[0]?.shape ?? [null, width]).slice(1) as number[];
  const perRow = inputShape.reduce((a, b) => a * b, 1);
  if (perRow !== width) throw new Error(`model input width ${perRow} does not match the manifest's ${width}`);
  let scratch = new Float32Array(256 * width);
  const classes = outputUnits(pre);
  const scale = pre.target;
  const threshold = manifest.anomaly?.threshold;
  const residual = manifest.anomaly?.residualScale;
  const columns = pre.task === 'anomaly' ? anomalyColumns(manifest) : undefined;
  const classifyInput = (x: Float32Array, n: number): Classified => {
    // tidy returns the output tensor, not its data: tidy walks whatever it returns.
    const output = tf.tidy(
      () =>
        model.predict(tf.tensor(x.subarray(0, n * width), [n, ...inputShape]), {
          batchSize: Math.max(1, n),
        }) as tf.Tensor,
    );
    const probs = output.dataSync() as Float32Array;
    output.dispose();
    const best = new Int32Array(n);
    const confidence = new Float32Array(n);
    if (columns && threshold !== undefined) {
      confidence.fill(Number.NaN);
      const scores = new Float32Array(n);
      const channels: ChannelShare[][] = new Array(n);
      for (let i = 0; i < n; i++) {
        scores[i] = reconstructionScore(x, probs, width, i, residual);
        channels[i] = channelShares(x, probs, width, i, columns, residual);
      }
      return { labels, best, confidence, probs, anomaly: { scores, channels, threshold } };
    }
    if (scale) {
      confidence.fill(Number.NaN);
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = targetValue(probs[i] ?? Number.NaN, scale);
      return { labels, best, confidence, probs, values };
    }
    const novel = manifest.novelty;
    const noveltyOf = novel
      ? () => {
          const scores = new Float32Array(n);
          const centered = new Float64Array(width);
          for (let i = 0; i < n; i++) scores[i] = noveltyScore(x, width, i, novel, centered);
          return { novelty: { scores, threshold: novel.threshold } };
        }
      : () => ({});
    for (let i = 0; i < n; i++) {
      let top = 0;
      let topP = probs[i * classes] ?? Number.NaN;
      for (let c = 1; c < classes; c++) {
        const p = probs[i * classes + c] ?? Number.NaN;
        if (p > topP) {
          topP = p;
          top = c;
        }
      }
      best[i] = top;
      confidence[i] = topP;
    }
    return { labels, best, confidence, probs, ...noveltyOf() };
  };
  const classifyRows = (rows: readonly RawRow[]): Classified => {
    refuseWindowedModel(manifest);
    const n = rows.length;
    if (scratch.length < n * width) scratch = new Float32Array(n * width);
    for (let i = 0; i < n; i++) transformInto(pre, rows[i] as RawRow, scratch, i * width);
    return classifyInput(scratch, n);
  };
  return {
    version: manifest.version,
    manifest,
    classifyRows,
    classifyInput,
    predictRows(rows) {
      const classified = classifyRows(rows);
      const predictions: Prediction[] = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) predictions[i] = predictionAt(classified, i);
      return { predictions, probs: classified.probs };
    },
    dispose() {
      model.dispose();
    },
  };
}

/**
 * Probation: the manifest's golden rows must give the trainer's outputs within the
 * tolerance, and nothing may be NaN or infinite. Returns the reason for a failure.
 */
export function probationFailure(model: LoadedModel): string | undefined {
  if (model.manifest.window) return windowProbationFailure(model);
  const { rows, outputs, tolerance } = model.manifest.golden;
  if (rows.length === 0) return 'the manifest carries no golden rows to check the model against';
  const classified = model.classifyRows(rows);
  return (
    goldenMismatch(classified.probs, outputs, outputUnits(model.manifest.preprocessing), tolerance, 'row') ??
    noveltyMismatch(classified.novelty?.scores, model.manifest.novelty?.golden, 'row')
  );
}

/** Why the golden rows' (or windows') novelty scores differ from the trainer's (relative 1e-3), if they do. */
export function noveltyMismatch(
  scores: Float32Array | undefined,
  expected: readonly number[] | undefined,
  noun: 'row' | 'window',
): string | undefined {
  if (!expected) return undefined;
  for (let r = 0; r < expected.length; r++) {
    const got = scores?.[r] ?? Number.NaN;
    const want = expected[r] ?? Number.NaN;
    if (!(Math.abs(got - want) <= 1e-3 * Math.max(1, Math.abs(want))))
      return `golden ${noun} ${r} novelty score: got ${got}, expected ${want}`;
  }
  return undefined;
}

/** Why `probs` (golden inputs x classes) differ from the trainer's `outputs`, if they do. */
export function goldenMismatch(
  probs: Float32Array,
  outputs: readonly (readonly number[])[],
  classes: number,
  tolerance: number,
  noun: 'row' | 'window',
): string | undefined {
  for (let i = 0; i < probs.length; i++) {
    if (!Number.isFinite(probs[i]))
      return `golden ${noun} ${Math.floor(i / classes)} gives a non-finite output`;
  }
  for (let r = 0; r < outputs.length; r++) {
    const expected = outputs[r];
    if (!expected || expected.length !== classes)
      return `golden output ${r} has ${expected?.length ?? 0} values, the model has ${classes} classes`;
    for (let c = 0; c < classes; c++) {
      const got = probs[r * classes + c] ?? Number.NaN;
      const want = expected[c] ?? Number.NaN;
      if (Math.abs(got - want) > tolerance)
        return `golden ${noun} ${r} class ${c}: got ${got.toFixed(6)}, expected ${want.toFixed(6)} (tolerance ${tolerance})`;
    }
  }
  return undefined;
}
