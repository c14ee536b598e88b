/**
 * Regression quality benchmark: edgeloop's `"task": "regression"` against a bare tfjs MLP on
 * the same split, in the same run, over several seeds, on public data (bench/datasets.ts).
 *
 * - edgeloop: `trainFromCsv(csv, { task: 'regression', label, seed })`, what `edgeloop train
 *   FILE --task regression --label COL --seed N` runs (typing, preprocessing, target scale, the
 *   tuner, evaluation on the test rows).
 * - baseline: the bare encoder of bench/train.ts, the target standardized on the training rows
 *   (an engineer who left it raw would hand Adam targets in the thousands), a 32-16 relu MLP
 *   with one linear output, MSE, Adam 0.01, batch 32, 100 epochs, shuffled, trained on the
 *   training and validation rows, scored on the same test rows.
 *
 * Beside both: the RMSE of always predicting the training mean. Target (issue #32): every
 * dataset's mean RMSE within 2% of the baseline's or better. `npx tsx bench/train-regression.ts [seeds]`.
 */
import { parseDataset } from '../shared/dataset.ts';
import { TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf, tf } from '../shared/tf.ts';
import { regressionMetrics } from '../shared/training/metrics.ts';
import { seededRandom, shuffleInPlace } from '../shared/training/random.ts';
import { stratifiedSplit } from '../shared/training/split.ts';
import { trainFromCsv } from '../shared/training/train.ts';
import { type BenchDataset, regressionDatasets } from './datasets.ts';
import { bareEncoder } from './train.ts';

const SEEDS = [1, 2, 3, 4, 5, 6];
/** edgeloop's RMSE may exceed the bare MLP's by at most this share. */
const TARGET_RATIO = 1.02;

/** The bare MLP on edgeloop's split for `seed` (one class: the trainer's random split). */
async function baseline(data: BenchDataset, seed: number) {
  const dataset = parseDataset(data.csv, { task: 'regression', label: data.label });
  const split = stratifiedSplit(
    dataset.y.map(() => 0),
    { seed },
  );
  const trainRows = [...split.train, ...split.validation];
  const encode = bareEncoder(dataset, trainRows);
  const targets = trainRows.map((i) => dataset.y[i] as number);
  const mean = targets.reduce((a, b) => a + b, 0) / targets.length;
  const std = Math.sqrt(targets.reduce((a, b) => a + (b - mean) ** 2, 0) / targets.length) || 1;
  const order = shuffleInPlace([...trainRows], seededRandom(seed));
  const xs = tf.tensor2d(encode(order));
  const ys = tf.tensor2d(
    order.map((i) => [((dataset.y[i] as number) - mean) / std]),
    [order.length, 1],
  );
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 32, activation: 'relu', inputShape: [xs.shape[1]] }),
      tf.layers.dense({ units: 16, activation: 'relu' }),
      tf.layers.dense({ units: 1 }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const started = performance.now();
  await model.fit(xs, ys, { epochs: 100, batchSize: 32, shuffle: true, verbose: 0 });
  const ms = performance.now() - started;
  const testX = tf.tensor2d(encode(split.test));
  const outputs = (model.predict(testX) as tf.Tensor).dataSync();
  tf.dispose([xs, ys, testX]);
  model.dispose();
  const truth = split.test.map((i) => dataset.y[i] as number);
  const metrics = regressionMetrics(
    truth,
    Array.from(outputs, (o) => o * std + mean),
    mean,
  );
  return { rmse: metrics.rmse, meanRmse: metrics.meanRmse, ms, rows: dataset.rows.length };
}

async function edgeloop(data: BenchDataset, seed: number) {
  const config = TrainingConfigSchema.parse({ task: 'regression', label: data.label, seed });
  const started = performance.now();
  const outcome = await trainFromCsv(data.csv, config);
  const metrics = outcome.metrics.regression;
  if (!metrics) throw new Error(`${data.name}: the run reported no regression metrics`);
  return { ...metrics, ms: performance.now() - started };
}

const average = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const fmt = (value: number) => Number(value.toPrecision(4)).toString();

export async function main(seeds: number[] = SEEDS): Promise<boolean> {
  const backend = await initTf();
  const datasets = regressionDatasets();
  console.log(
    `regression: backend ${backend}; seeds ${seeds.join(', ')} (each its own split and initialization)`,
  );
  console.log('datasets (target column; source; licence):');
  for (const d of datasets) console.log(`  ${d.name} (${d.label}; ${d.source}; ${d.licence})`);
  await edgeloop(datasets[0] as BenchDataset, 0);
  await baseline(datasets[0] as BenchDataset, 0);
  console.log(
    [
      'dataset',
      'rows',
      'edgeloop RMSE',
      'bare RMSE',
      'ratio',
      'mean-predictor RMSE',
      'edgeloop R²',
      'ok (<= 1.02)',
      'edgeloop s',
      'bare fit s',
    ].join(' | '),
  );
  let allOk = true;
  for (const data of datasets) {
    const ours = [];
    const theirs = [];
    for (const seed of seeds) {
      ours.push(await edgeloop(data, seed));
      theirs.push(await baseline(data, seed));
    }
    const ratio = average(ours.map((o) => o.rmse)) / average(theirs.map((t) => t.rmse));
    const ok = ratio <= TARGET_RATIO;
    allOk &&= ok;
    console.log(
      [
        data.name,
        theirs[0]?.rows,
        fmt(average(ours.map((o) => o.rmse))),
        fmt(average(theirs.map((t) => t.rmse))),
        ratio.toFixed(3),
        fmt(average(ours.map((o) => o.meanRmse))),
        average(ours.map((o) => o.r2)).toFixed(3),
        ok ? 'yes' : 'NO',
        (average(ours.map((o) => o.ms)) / 1000).toFixed(1),
        (average(theirs.map((t) => t.ms)) / 1000).toFixed(1),
      ].join(' | '),
    );
  }
  console.log(`every dataset within 2% of the bare RMSE or better: ${allOk ? 'yes' : 'NO'}`);
  return allOk;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  const count = Number(process.argv[2] ?? SEEDS.length);
  await main(Array.from({ length: count }, (_, i) => i + 1));
}
