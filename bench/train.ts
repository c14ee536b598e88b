/**
 * Training quality benchmark: edgeloop against a bare hand-written tfjs MLP, both measured in
 * this run, on public datasets (bench/datasets.ts) over several seeds (each seed is another
 * split and another initialization; both sides use the same split and test rows).
 *
 * - edgeloop: `trainFromCsv(csv, { label, seed })`, exactly what `edgeloop train FILE --label
 *   COL --seed N` runs: typing, preprocessing, the tuner's search, refit, evaluation on the
 *   test rows, saving. Its wall time is the whole call.
 * - baseline: what an ML engineer would write in 20 lines: the columns edgeloop keeps,
 *   numeric ones standardized (mean-imputed), categorical ones one-hot, dates left out; a
 *   32-16 relu MLP, Adam 0.01, batch 32, 100 epochs, shuffled, trained on the training and
 *   validation rows (it needs no validation split), scored on the same test rows. Its time
 *   is its `model.fit` alone: "a single bare fit".
 *
 * Targets (issue #14): every dataset's mean accuracy >= the baseline's - 0.01; the suite's
 * mean >= the baseline's + 0.01; edgeloop's wall time <= 3x a single bare fit. A dataset on
 * which the baseline does not beat always answering the majority class (by CHANCE_MARGIN) is
 * shown and counted in the suite, but its own delta is noise and is not scored.
 * `npx tsx bench/train.ts [seeds] [name,name]` (default: 6 seeds, every dataset); `npm run bench -- train`.
 */
import { type Dataset, parseDataset } from '../shared/dataset.ts';
import { isMissing } from '../shared/preprocess.ts';
import { TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf, tf } from '../shared/tf.ts';
import { argmaxRows } from '../shared/training/metrics.ts';
import { seededRandom, shuffleInPlace } from '../shared/training/random.ts';
import { stratifiedSplit } from '../shared/training/split.ts';
import { trainFromCsv } from '../shared/training/train.ts';
import { type BenchDataset, benchDatasets } from './datasets.ts';

/** Six seeds: with 18-60 test rows a seed on the small sets, three leave a point or two of noise. */
const SEEDS = [1, 2, 3, 4, 5, 6];
/**
 * A small dataset runs more seeds (splits), until its test rows over all seeds reach this:
 * barley's 18 test rows a seed gave run-to-run swings of 0.09 in the unseeded baseline's mean
 * over 6 seeds, far above the 0.01 target.
 */
const MIN_TEST_ROWS = 500;

interface Run {
  accuracy: number;
  ms: number;
  /** Accuracy of always answering the training rows' most frequent class (what chance gives). */
  majority: number;
}

/**
 * A dataset is at chance when the bare baseline beats always-the-majority-class by less than
 * this: both models then score noise (barley: 120 rows, 6 sites), so the per-dataset target
 * cannot tell them apart and is not scored there; the dataset still counts in the suite mean.
 */
const CHANCE_MARGIN = 0.05;

/** The bare baseline on edgeloop's split for `seed`: accuracy on the test rows and fit time. */
async function baseline(data: BenchDataset, seed: number): Promise<Run> {
  const dataset = parseDataset(data.csv, { label: data.label });
  const split = stratifiedSplit(dataset.y, { seed });
  const trainRows = [...split.train, ...split.validation];
  const encode = bareEncoder(dataset, trainRows);
  const k = dataset.labels.length;
  const order = shuffleInPlace([...trainRows], seededRandom(seed));
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
      tf.layers.dense({ units: 32, activation: 'relu', inputShape: [xs.shape[1]] }),
      tf.layers.dense({ units: 16, activation: 'relu' }),
      tf.layers.dense({ units: k, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  const started = performance.now();
  await model.fit(xs, ys, { epochs: 100, batchSize: 32, shuffle: true, verbose: 0 });
  const ms = performance.now() - started;
  const testX = tf.tensor2d(encode(split.test));
  const probabilities = (model.predict(testX) as tf.Tensor).dataSync() as Float32Array;
  const predicted = argmaxRows(probabilities, k);
  const correct = predicted.filter((p, i) => p === dataset.y[split.test[i] ?? -1]).length;
  tf.dispose([xs, ys, testX]);
  model.dispose();
  const counts = new Map<number, number>();
  for (const i of trainRows) counts.set(dataset.y[i] ?? 0, (counts.get(dataset.y[i] ?? 0) ?? 0) + 1);
  const majorityClass = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  const majority = split.test.filter((i) => dataset.y[i] === majorityClass).length / split.test.length;
  return { accuracy: correct / split.test.length, ms, majority };
}

/**
 * The bare baseline's inputs, as an ML engineer would write them: the columns edgeloop keeps,
 * numeric ones standardized on the training rows (mean-imputed), categorical ones one-hot over
 * the training rows' levels, dates left out. Returns rows (by index) as input vectors.
 */
export function bareEncoder(
  dataset: Dataset,
  trainRows: readonly number[],
): (indices: number[]) => number[][] {
  const kept = dataset.columns.filter((c) => c.kind === 'numeric' || c.kind === 'categorical');
  const encoders = kept.map((profile) => {
    const values = trainRows.map((i) => dataset.rows[i]?.[profile.column] ?? '');
    if (profile.kind === 'numeric') {
      const numbers = values.filter((v) => !isMissing(v) && Number.isFinite(Number(v))).map(Number);
      const mean = numbers.reduce((a, b) => a + b, 0) / numbers.length;
      const std = Math.sqrt(numbers.reduce((a, b) => a + (b - mean) ** 2, 0) / numbers.length) || 1;
      return (raw: string) => {
        const value = Number(raw);
        return [((isMissing(raw) || !Number.isFinite(value) ? mean : value) - mean) / std];
      };
    }
    const levels = [...new Set(values)];
    return (raw: string) => levels.map((level) => (raw === level ? 1 : 0));
  });
  return (indices) =>
    indices.map((i) => {
      const row = dataset.rows[i] ?? {};
      return kept.flatMap((profile, j) => encoders[j]?.(row[profile.column] ?? '') ?? []);
    });
}

async function edgeloop(data: BenchDataset, seed: number) {
  const config = TrainingConfigSchema.parse({ label: data.label, seed });
  const started = performance.now();
  const outcome = await trainFromCsv(data.csv, config);
  return { accuracy: outcome.metrics.accuracy, ms: performance.now() - started, outcome };
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const spread = (values: number[]) => {
  const m = mean(values);
  return Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, values.length - 1));
};
const signed = (value: number) => (value >= 0 ? `+${value.toFixed(3)}` : value.toFixed(3));

export async function main(seeds: number[] = SEEDS, only?: string[]): Promise<void> {
  const backend = await initTf();
  const datasets = benchDatasets().filter((d) => !only || only.includes(d.name));
  console.log(
    `backend: ${backend}; seeds ${seeds.join(', ')} (each: its own split and initialization), more on a small dataset until its test rows reach ${MIN_TEST_ROWS}`,
  );
  console.log('datasets (label column; source; licence):');
  for (const d of datasets) console.log(`  ${d.name} (${d.label}; ${d.source}; ${d.licence})`);
  // Warm the backend and V8 on both paths, so the first dataset is not charged for it.
  const warm = datasets[0] as BenchDataset;
  await edgeloop(warm, 0);
  await baseline(warm, 0);
  const header = [
    'dataset',
    'rows',
    'seeds',
    'edgeloop acc',
    'baseline acc',
    'delta',
    'majority class',
    'ok',
    'edgeloop s',
    'bare fit s',
    'ratio',
    'tuning s',
  ];
  console.log(header.join(' | '));
  const suite = { edgeloop: [] as number[], baseline: [] as number[], ratios: [] as number[] };
  let allOk = true;
  for (const data of datasets) {
    const ours: number[] = [];
    const theirs: number[] = [];
    const ratios: number[] = [];
    const tuningMs: number[] = [];
    const majority: number[] = [];
    const ourMs: number[] = [];
    const bareMs: number[] = [];
    let rows = 0;
    const testRows = stratifiedSplit(parseDataset(data.csv, { label: data.label }).y, { seed: 1 }).test
      .length;
    const more = Math.ceil(MIN_TEST_ROWS / Math.max(1, testRows)) - seeds.length;
    const datasetSeeds =
      more > 0 ? [...seeds, ...Array.from({ length: more }, (_, i) => Math.max(...seeds) + i + 1)] : seeds;
    for (const seed of datasetSeeds) {
      const e = await edgeloop(data, seed);
      const b = await baseline(data, seed);
      ours.push(e.accuracy ?? 0);
      theirs.push(b.accuracy);
      majority.push(b.majority);
      ratios.push(e.ms / b.ms);
      ourMs.push(e.ms);
      bareMs.push(b.ms);
      tuningMs.push(e.outcome.tuning?.ms ?? 0);
      rows = e.outcome.rows;
    }
    const delta = mean(ours) - mean(theirs);
    const atChance = mean(theirs) - mean(majority) < CHANCE_MARGIN;
    const ok = (atChance || delta >= -0.01) && mean(ratios) <= 3;
    allOk &&= ok;
    const isPublic = !data.name.startsWith('edgeloop');
    if (isPublic) {
      suite.edgeloop.push(mean(ours));
      suite.baseline.push(mean(theirs));
      suite.ratios.push(mean(ratios));
    }
    console.log(
      [
        data.name,
        rows,
        datasetSeeds.length,
        `${mean(ours).toFixed(3)} ± ${spread(ours).toFixed(3)}`,
        `${mean(theirs).toFixed(3)} ± ${spread(theirs).toFixed(3)}`,
        signed(delta),
        mean(majority).toFixed(3),
        atChance ? 'at chance: not scored' : ok ? 'yes' : 'NO',
        (mean(ourMs) / 1000).toFixed(1),
        (mean(bareMs) / 1000).toFixed(1),
        `${mean(ratios).toFixed(2)}x`,
        (mean(tuningMs) / 1000).toFixed(1),
      ].join(' | '),
    );
  }
  const suiteDelta = mean(suite.edgeloop) - mean(suite.baseline);
  console.log(
    `suite (${suite.edgeloop.length} public datasets): edgeloop ${mean(suite.edgeloop).toFixed(3)}, baseline ${mean(suite.baseline).toFixed(3)}, delta ${signed(suiteDelta)} (target >= +0.010: ${suiteDelta >= 0.01 ? 'yes' : 'NO'}); wall-time ratio mean ${mean(suite.ratios).toFixed(2)}x, max ${Math.max(...suite.ratios).toFixed(2)}x (target <= 3x: ${Math.max(...suite.ratios) <= 3 ? 'yes' : 'NO'}); every dataset above chance within -0.01: ${allOk ? 'yes' : 'NO'}`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  const count = Number(process.argv[2] ?? SEEDS.length);
  const only = process.argv[3]?.split(',');
  await main(
    Array.from({ length: count }, (_, i) => i + 1),
    only,
  );
}
