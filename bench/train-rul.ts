/**
 * Remaining useful life on windows (#32), all figures measured in this run on the same data:
 *
 * - The data: generated run-to-failure machines (shared/timeseries/run-to-failure.ts), one
 *   reading per cycle; machines wear along their own noisy paths under switching operating
 *   regimes. Training machines run to failure; test machines are others, cut off at a random
 *   30-90% of their life, and each is scored on its last window (what an operator asks: how
 *   long has this machine left, now).
 * - edgeloop: `trainWindowsFromCsv` with `"task": "regression"`, a 30-cycle window every 5
 *   cycles, `"target": {"max": 125}` (the usual piecewise-linear cap), spectral features; the
 *   test machines go through `scoreReadings`, the gateway's own replay, and the last window's
 *   value per machine is taken.
 * - bare: ridge regression on each window's per-channel mean and least-squares slope,
 *   standardized, fitted on every training window (targets capped the same way), scored on
 *   the same last windows.
 * - Both are scored against the true remaining life capped at 125.
 *
 * Target: edgeloop's RMSE at least 10% below the ridge's. `npx tsx bench/train-rul.ts [seeds]`.
 */
import { loadModelFromBytes } from '../device/model/model.ts';
import { scoreReadings } from '../device/score.ts';
import { parseCsvReadings } from '../shared/dataset/readings.ts';
import { TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf } from '../shared/tf.ts';
import { collectCsv } from '../shared/timeseries/long-format.ts';
import { generateRunToFailureCsv, RUL_CHANNELS, RUL_LABEL } from '../shared/timeseries/run-to-failure.ts';
import type { ResolvedWindow } from '../shared/timeseries/spec.ts';
import { trainWindowsFromCsv } from '../shared/timeseries/train.ts';
import { type Window, windowsOf } from '../shared/timeseries/windower.ts';
import { columnScale, solve } from './support/linear.ts';
import { releasedManifest } from './support/released-manifest.ts';

const CAP = 125;
const WINDOW = {
  time: 'cycle',
  series: 'machine',
  sizeMs: 30_000,
  strideMs: 5_000,
};
const TRAIN_MACHINES = 40;
const TEST_MACHINES = 30;
/** edgeloop's RMSE must be at most this share of the ridge's. */
const TARGET_RATIO = 0.9;

const capped = (value: number) => Math.min(CAP, value);
const rmse = (errors: number[]) => Math.sqrt(errors.reduce((a, e) => a + e * e, 0) / errors.length);

/** Every window of a file's machines, cut with the trained spec. */
function windowsOfFile(csv: string, spec: ResolvedWindow): Window[][] {
  return collectCsv(csv, { ...WINDOW, timeUnit: 'ms' }, RUL_LABEL, RUL_CHANNELS).series.map((s) =>
    windowsOf(s.name, spec, s.times, s.values, s.labels).filter((w) => w.label !== undefined),
  );
}

/** Per channel: the window's mean and least-squares slope per sample. */
function meansAndSlopes(window: Window, channels: number): number[] {
  const samples = window.values.length / channels;
  const tMean = (samples - 1) / 2;
  const tVar = (samples * (samples * samples - 1)) / 12;
  return Array.from({ length: channels }, (_, c) => {
    let sum = 0;
    let cross = 0;
    for (let i = 0; i < samples; i++) sum += window.values[i * channels + c] as number;
    const mean = sum / samples;
    for (let i = 0; i < samples; i++)
      cross += (i - tMean) * ((window.values[i * channels + c] as number) - mean);
    return [mean, cross / tVar];
  }).flat();
}

/** Ridge regression (standardized inputs, intercept unpenalized) by the normal equations. */
function ridge(x: number[][], y: number[], lambda = 1): (row: number[]) => number {
  const d = x[0]?.length ?? 0;
  const { mean, std } = columnScale(x);
  const z = (row: number[]) => row.map((v, j) => (v - (mean[j] as number)) / (std[j] as number));
  const yMean = y.reduce((a, b) => a + b, 0) / y.length;
  // (Z'Z + lambda I) w = Z'(y - mean)
  const a = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? lambda : 0)));
  const b = new Array<number>(d).fill(0);
  x.forEach((row, n) => {
    const zr = z(row);
    for (let i = 0; i < d; i++) {
      b[i] = (b[i] as number) + (zr[i] as number) * ((y[n] as number) - yMean);
      for (let j = 0; j < d; j++)
        (a[i] as number[])[j] = ((a[i] as number[])[j] as number) + (zr[i] as number) * (zr[j] as number);
    }
  });
  const w = solve(a, b);
  return (row) => yMean + z(row).reduce((s, v, j) => s + v * (w[j] as number), 0);
}

async function run(seed: number) {
  const trainCsv = generateRunToFailureCsv({ machines: TRAIN_MACHINES, seed });
  const testCsv = generateRunToFailureCsv({
    machines: TEST_MACHINES,
    seed: seed + 1000,
    firstMachine: TRAIN_MACHINES,
    truncate: true,
  });
  const config = TrainingConfigSchema.parse({
    task: 'regression',
    label: RUL_LABEL,
    window: WINDOW,
    target: { max: CAP },
    seed,
  });
  const started = performance.now();
  const outcome = await trainWindowsFromCsv(trainCsv, config);
  const trainMs = performance.now() - started;
  const manifest = releasedManifest(outcome, { model: 'rul' });
  const model = await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
  // The gateway's replay over the test machines; the last window of each machine.
  const { results } = await scoreReadings(model, parseCsvReadings(testCsv, 'test: ').rows);
  const last = new Map<string, { end: number; value: number; truth: number }>();
  for (const r of results) {
    if (!r.window || r.value === undefined) continue;
    const seen = last.get(r.window.series);
    if (!seen || r.window.end > seen.end)
      last.set(r.window.series, { end: r.window.end, value: r.value, truth: Number(r.truth) });
  }
  const ours = rmse([...last.values()].map((l) => l.value - capped(l.truth)));

  // The ridge on means and slopes, on every training window and the same last windows.
  const spec = manifest.window?.spec as ResolvedWindow;
  const channels = spec.channels.length;
  const trainWindows = windowsOfFile(trainCsv, spec).flat();
  const predict = ridge(
    trainWindows.map((w) => meansAndSlopes(w, channels)),
    trainWindows.map((w) => capped(Number(w.label))),
  );
  const lastWindows = windowsOfFile(testCsv, spec)
    .map((ws) => ws[ws.length - 1])
    .filter((w): w is Window => w !== undefined);
  const theirs = rmse(
    lastWindows.map(
      (w) => Math.min(CAP, Math.max(0, predict(meansAndSlopes(w, channels)))) - capped(Number(w.label)),
    ),
  );
  return {
    ours,
    theirs,
    machines: last.size,
    ridgeMachines: lastWindows.length,
    trainMs,
    heldOut: outcome.metrics.regression?.rmse,
  };
}

export async function main(seeds: number[] = [1, 2, 3]): Promise<boolean> {
  const backend = await initTf();
  console.log(
    `remaining useful life: backend ${backend}; ${TRAIN_MACHINES} machines run to failure to train, ${TEST_MACHINES} others cut off at 30-90% of life to test; 30-cycle windows every 5 cycles; RUL capped at ${CAP}`,
  );
  console.log(
    [
      'seed',
      'edgeloop RMSE',
      'ridge RMSE',
      'ratio',
      'ok (<= 0.9)',
      'test machines',
      'held-out windows RMSE',
      'train s',
    ].join(' | '),
  );
  const ratios: number[] = [];
  for (const seed of seeds) {
    const r = await run(seed);
    const ratio = r.ours / r.theirs;
    ratios.push(ratio);
    console.log(
      [
        seed,
        r.ours.toFixed(2),
        r.theirs.toFixed(2),
        ratio.toFixed(3),
        ratio <= TARGET_RATIO ? 'yes' : 'NO',
        `${r.machines}/${r.ridgeMachines}`,
        r.heldOut?.toFixed(2),
        (r.trainMs / 1000).toFixed(1),
      ].join(' | '),
    );
  }
  const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
  console.log(
    `mean ratio ${mean.toFixed(3)} (target <= ${TARGET_RATIO}): ${mean <= TARGET_RATIO ? 'yes' : 'NO'}`,
  );
  return mean <= TARGET_RATIO;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  const count = Number(process.argv[2] ?? 3);
  await main(Array.from({ length: count }, (_, i) => i + 1));
}
