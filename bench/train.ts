/**
 * Training benchmark, two figures per dataset, both measured in this run on the same split:
 *
 * 1. Accuracy: edgeloop's default pipeline (`trainFromCsv`, exactly what `edgeloop train
 *    FILE --label COL` runs, no other settings) against a plain hand-written baseline:
 *    standardized numeric columns (mean-imputed), one-hot categoricals, one hidden layer of
 *    16 units written directly with tfjs, 50 epochs, no early stopping. Target: edgeloop >=
 *    baseline - 0.02.
 * 2. Speed: edgeloop's whole run (parse, type, fit preprocessing, train, evaluate, save,
 *    golden vectors) against a bare `model.fit` of the same architecture, epochs, batch size,
 *    validation data, shuffling (off) and backend. Target ratio <= 1.2.
 *
 * Public data: vega-datasets 3.2.1 (npm, BSD-3-Clause; https://github.com/vega/vega-datasets):
 * penguins.json (Palmer penguins, Gorman et al. 2014), cars.json (UCI Auto MPG),
 * seattle-weather.csv (NOAA daily observations). Plus the generated demo dataset.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseDataset } from '../shared/dataset.ts';
import { generateDemoDataset } from '../shared/demo-dataset.ts';
import { isMissing, transformRows } from '../shared/preprocess.ts';
import { TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf, tf } from '../shared/tf.ts';
import { argmaxRows } from '../shared/training/metrics.ts';
import { buildMlp } from '../shared/training/model.ts';
import { fitPreprocessing } from '../shared/training/preprocessing.ts';
import { seededRandom, shuffleInPlace } from '../shared/training/random.ts';
import { stratifiedSplit } from '../shared/training/split.ts';
import { trainFromCsv } from '../shared/training/train.ts';

interface BenchDataset {
  name: string;
  csv: string;
  label: string;
  /** The baseline's hand-picked columns. */
  numeric: string[];
  categorical: string[];
}

const SEED = 42;

function vegaDir(): string {
  // The package exports only its JS entry (build/index.js); the data files sit beside build/.
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('vega-datasets')), '..', 'data');
}

function jsonToCsv(records: Record<string, unknown>[]): string {
  const columns = Object.keys(records[0] ?? {});
  const cell = (value: unknown) => {
    const text = value === null || value === undefined ? '' : String(value);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.join(','), ...records.map((record) => columns.map((c) => cell(record[c])).join(','))].join(
    '\n',
  );
}

export function benchDatasets(): BenchDataset[] {
  const dir = vegaDir();
  const json = (file: string) =>
    JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>[];
  return [
    {
      name: 'vega penguins (Species)',
      csv: jsonToCsv(json('penguins.json')),
      label: 'Species',
      numeric: ['Beak Length (mm)', 'Beak Depth (mm)', 'Flipper Length (mm)', 'Body Mass (g)'],
      categorical: ['Island', 'Sex'],
    },
    {
      name: 'vega cars (Origin)',
      csv: jsonToCsv(json('cars.json')),
      label: 'Origin',
      numeric: [
        'Miles_per_Gallon',
        'Cylinders',
        'Displacement',
        'Horsepower',
        'Weight_in_lbs',
        'Acceleration',
      ],
      categorical: [],
    },
    {
      name: 'vega seattle-weather (weather)',
      csv: readFileSync(join(dir, 'seattle-weather.csv'), 'utf8'),
      label: 'weather',
      numeric: ['precipitation', 'temp_max', 'temp_min', 'wind'],
      categorical: [],
    },
    {
      name: 'edgeloop demo (condition)',
      csv: generateDemoDataset(),
      label: 'condition',
      numeric: ['temperature_c', 'vibration_rms', 'current_a', 'humidity_pct'],
      categorical: ['site'],
    },
  ];
}

/** The plain baseline: its own preprocessing and a 16-unit MLP, on edgeloop's split. */
async function baselineAccuracy(data: BenchDataset): Promise<number> {
  const dataset = parseDataset(data.csv, { label: data.label });
  const split = stratifiedSplit(dataset.y, { seed: SEED });
  const trainRows = [...split.train, ...split.validation];
  const stats = data.numeric.map((column) => {
    const values = trainRows
      .map((i) => dataset.rows[i]?.[column])
      .filter((v) => !isMissing(v))
      .map(Number);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) || 1;
    return { column, mean, std };
  });
  const levels = data.categorical.map((column) => ({
    column,
    values: [...new Set(trainRows.map((i) => dataset.rows[i]?.[column] ?? ''))],
  }));
  const encode = (indices: number[]) =>
    indices.map((i) => {
      const row = dataset.rows[i] ?? {};
      const numeric = stats.map(({ column, mean, std }) => {
        const raw = row[column];
        return ((isMissing(raw) ? mean : Number(raw)) - mean) / std;
      });
      const oneHot = levels.flatMap(({ column, values }) => values.map((v) => (row[column] === v ? 1 : 0)));
      return [...numeric, ...oneHot];
    });
  const k = dataset.labels.length;
  const order = shuffleInPlace([...trainRows], seededRandom(SEED));
  const xs = tf.tensor2d(encode(order));
  const ys = tf
    .oneHot(
      tf.tensor1d(
        order.map((i) => dataset.y[i] ?? 0),
        'int32',
      ),
      k,
    )
    .toFloat();
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 16, activation: 'relu', inputShape: [xs.shape[1]] }),
      tf.layers.dense({ units: k, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  await model.fit(xs, ys, { epochs: 50, batchSize: 32, shuffle: true, verbose: 0 });
  const testX = tf.tensor2d(encode(split.test));
  const probabilities = (model.predict(testX) as tf.Tensor).dataSync() as Float32Array;
  const predicted = argmaxRows(probabilities, k);
  const correct = predicted.filter((p, i) => p === dataset.y[split.test[i] ?? -1]).length;
  tf.dispose([xs, ys, testX]);
  model.dispose();
  return correct / split.test.length;
}

/** A bare fit of the architecture edgeloop chose, same epochs/batch/validation/backend. */
async function bareFitMs(data: BenchDataset, hidden: number[], epochs: number): Promise<number> {
  const config = TrainingConfigSchema.parse({ label: data.label });
  const dataset = parseDataset(data.csv, { label: data.label });
  const split = stratifiedSplit(dataset.y, { seed: SEED });
  const pre = fitPreprocessing(dataset, split.train);
  const tensors = (indices: number[]) => ({
    x: tf.tensor2d(
      transformRows(
        pre,
        indices.map((i) => dataset.rows[i] ?? {}),
      ),
      [indices.length, pre.inputWidth],
    ),
    y: tf
      .oneHot(
        tf.tensor1d(
          indices.map((i) => dataset.y[i] ?? 0),
          'int32',
        ),
        dataset.labels.length,
      )
      .toFloat() as tf.Tensor2D,
  });
  const train = tensors(split.train);
  const validation = tensors(split.validation);
  const model = buildMlp({ inputWidth: pre.inputWidth, hidden, classes: dataset.labels.length }, SEED);
  const started = performance.now();
  // shuffle off, like edgeloop (which orders rows by its seed once), so both do the same work.
  await model.fit(train.x, train.y, {
    epochs,
    batchSize: config.batchSize,
    shuffle: false,
    validationData: [validation.x, validation.y],
    verbose: 0,
  });
  const ms = performance.now() - started;
  tf.dispose([train.x, train.y, validation.x, validation.y]);
  model.dispose();
  return ms;
}

export async function main(): Promise<void> {
  const backend = await initTf();
  console.log(`backend: ${backend}; seed ${SEED}; data: vega-datasets 3.2.1 (BSD-3-Clause) + edgeloop demo`);
  const header = [
    'dataset',
    'edgeloop acc',
    'baseline acc',
    'delta',
    'ok',
    'edgeloop ms',
    'bare fit ms',
    'ratio',
  ];
  console.log(header.join(' | '));
  for (const data of benchDatasets()) {
    // Warm the backend and V8 on both paths first; then alternate the two and keep medians,
    // because this machine is shared and single timings wander.
    const config = TrainingConfigSchema.parse({ label: data.label });
    const first = await trainFromCsv(data.csv, config);
    await bareFitMs(data, first.shape.hidden, first.epochsRun);
    const edgeloopRuns: number[] = [];
    const bareRuns: number[] = [];
    let outcome = first;
    for (let run = 0; run < REPEATS; run++) {
      const started = performance.now();
      outcome = await trainFromCsv(data.csv, config);
      edgeloopRuns.push(performance.now() - started);
      bareRuns.push(await bareFitMs(data, outcome.shape.hidden, outcome.epochsRun));
    }
    const edgeloopMs = median(edgeloopRuns);
    const bareMs = median(bareRuns);
    const baseline = await baselineAccuracy(data);
    const delta = outcome.metrics.accuracy - baseline;
    console.log(
      [
        data.name,
        outcome.metrics.accuracy.toFixed(3),
        baseline.toFixed(3),
        delta >= 0 ? `+${delta.toFixed(3)}` : delta.toFixed(3),
        delta >= -0.02 ? 'yes' : 'NO',
        edgeloopMs.toFixed(0),
        bareMs.toFixed(0),
        `${(edgeloopMs / bareMs).toFixed(2)}x (${outcome.epochsRun} epochs, test rows ${outcome.metrics.testRows})`,
      ].join(' | '),
    );
  }
}

const REPEATS = 3;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  await main();
}
