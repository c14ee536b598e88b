/**
 * Windowed training benchmark (#17), all figures measured in this run on the same data:
 *
 * - The dataset: generated 3-axis vibration at 100 Hz, 24 machines, 4 machine states that
 *   have the same mean and RMS per reading, so only a window separates them
 *   (shared/timeseries/vibration-dataset.ts; about 96k readings).
 * - edgeloop: `trainWindowsFromCsv` with a `window` config (1 s windows, 0.5 s stride), for
 *   `spectral` (features + MLP) and `raw` (a GRU over the window), exactly what the training
 *   handler runs for an edgeloop.json with `window`.
 * - bare: the same windows (the same split by machine, the same model inputs) fed to a plain
 *   tfjs model written here: a 32-unit MLP, or a 32-unit GRU, a fixed number of epochs,
 *   shuffled, no early stopping, no class weights.
 * - For contrast, edgeloop's row model on single readings (`ax, ay, az`).
 *
 * Target: accuracy on held-out machines >= 0.90 and within 0.02 of bare, per model kind.
 */
import { TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf, tf } from '../shared/tf.ts';
import { fitWindowFeatures, windowInput, windowInputs } from '../shared/timeseries/features.ts';
import { LongFormatCollector } from '../shared/timeseries/long-format.ts';
import { prepareWindows } from '../shared/timeseries/prepare.ts';
import { bandsFor, type WindowSpecInput, WindowSpecSchema } from '../shared/timeseries/spec.ts';
import { trainWindowsFromCsv } from '../shared/timeseries/train.ts';
import { generateVibrationCsv, VIBRATION_LABEL } from '../shared/timeseries/vibration-dataset.ts';
import { argmaxRows } from '../shared/training/metrics.ts';
import { seededRandom, shuffleInPlace } from '../shared/training/random.ts';
import { trainFromCsv } from '../shared/training/train.ts';

const SEED = 42;
const WINDOW: WindowSpecInput = { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 };

/** A plain tfjs model on edgeloop's windows: same split, same inputs, its own fit. */
async function bareAccuracy(csv: string, features: 'spectral' | 'raw'): Promise<number> {
  const spec = WindowSpecSchema.parse({ ...WINDOW, features });
  const [head, ...lines] = csv.trim().split('\n');
  const collector = new LongFormatCollector((head ?? '').split(','), spec, VIBRATION_LABEL, undefined);
  lines.forEach((line, i) => {
    collector.add(line.split(','), `row ${i + 1}`);
  });
  const prepared = prepareWindows(collector.finish(), spec, SEED);
  const fitted = fitWindowFeatures(
    prepared.spec,
    features,
    bandsFor('classification', prepared.spec.samples, spec.bands),
    prepared.windows.train,
  );
  const input = windowInput(prepared.spec, fitted);
  const k = prepared.labels.length;
  const train = shuffleInPlace(
    [...prepared.windows.train, ...prepared.windows.validation],
    seededRandom(SEED),
  );
  const labelOf = (label: string | undefined) => prepared.labels.indexOf(label ?? '');
  const xs = tf.tensor(windowInputs(input, train), [train.length, ...input.shape]);
  const ys = tf
    .oneHot(
      tf.tensor1d(
        train.map((w) => labelOf(w.label)),
        'int32',
      ),
      k,
    )
    .toFloat();
  const model = tf.sequential();
  if (features === 'raw') model.add(tf.layers.gru({ units: 32, inputShape: input.shape }));
  else model.add(tf.layers.dense({ units: 32, activation: 'relu', inputShape: input.shape }));
  model.add(tf.layers.dense({ units: k, activation: 'softmax' }));
  model.compile({ optimizer: tf.train.adam(0.005), loss: 'categoricalCrossentropy' });
  await model.fit(xs, ys, { epochs: features === 'raw' ? 15 : 40, batchSize: 32, shuffle: true, verbose: 0 });
  const test = prepared.windows.test;
  const testX = tf.tensor(windowInputs(input, test), [test.length, ...input.shape]);
  const predicted = argmaxRows((model.predict(testX) as tf.Tensor).dataSync() as Float32Array, k);
  const correct = predicted.filter((p, i) => p === labelOf(test[i]?.label)).length;
  tf.dispose([xs, ys, testX]);
  model.dispose();
  return correct / test.length;
}

export async function main(): Promise<void> {
  const backend = await initTf();
  const csv = generateVibrationCsv();
  const readings = csv.split('\n').length - 2;
  console.log(
    `backend: ${backend}; seed ${SEED}; generated vibration: 24 machines, ${readings} readings, 3 axes at 100 Hz; window 1000 ms, stride 500 ms`,
  );
  console.log(
    ['model', 'edgeloop acc', 'bare acc', 'delta', 'ok', 'edgeloop ms', 'windows train/val/test'].join(' | '),
  );
  for (const features of ['spectral', 'raw'] as const) {
    const config = TrainingConfigSchema.parse({ label: VIBRATION_LABEL, window: { ...WINDOW, features } });
    const started = performance.now();
    const outcome = await trainWindowsFromCsv(csv, config);
    const ms = performance.now() - started;
    const bare = await bareAccuracy(csv, features);
    const accuracy = outcome.metrics.accuracy ?? 0;
    const delta = accuracy - bare;
    const counts = outcome.window?.manifest.windows;
    console.log(
      [
        features,
        accuracy.toFixed(3),
        bare.toFixed(3),
        delta >= 0 ? `+${delta.toFixed(3)}` : delta.toFixed(3),
        accuracy >= 0.9 && delta >= -0.02 ? 'yes' : 'NO',
        ms.toFixed(0),
        `${counts?.train}/${counts?.validation}/${counts?.test} (${outcome.epochsRun} epochs)`,
      ].join(' | '),
    );
  }
  // For contrast: the row model on single readings, which cannot see a window.
  const rows = await trainFromCsv(
    csv,
    TrainingConfigSchema.parse({ label: VIBRATION_LABEL, features: ['ax', 'ay', 'az'], epochs: 30 }),
  );
  console.log(
    `row model on single readings (ax, ay, az): accuracy ${(rows.metrics.accuracy ?? 0).toFixed(3)}`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  await main();
}
