/**
 * Long-format dataset + a `window` config -> a trained, evaluated windowed classifier and
 * its artifacts, as the same TrainingOutcome the tabular trainer gives (so the gate, the
 * manifest and the registry treat both alike). One pass collects the readings per series
 * (readings are small next to their windows: 96k readings of 3 channels are 1.5 MB), the
 * split is made by series or time block, windows are cut with the gateway's windower, the
 * feature scaling is fitted on the training windows only, and the model that ships is
 * scored as loaded back from its bytes.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { fitToHeader, placeText } from '../dataset/profile.ts';
import { type DatasetSource, datasetDigest, readPass } from '../dataset/read.ts';
import { bytesPart } from '../dataset/source.ts';
import type { PartLineage } from '../dataset.ts';
import { InputError } from '../errors.ts';
import {
  type Manifest,
  type ModelMetrics,
  type Preprocessing,
  SAMPLE_DEFAULTS,
  type TrainingConfig,
} from '../schemas.ts';
import { clipTarget, standardizeTarget, TargetScaleFitter, targetNumber, targetValue } from '../target.ts';
import { initTf, tf } from '../tf.ts';
import { seriesRows } from '../training/anomaly.ts';
import { EventRanges } from '../training/labelled-events.ts';
import { argmaxRows, classificationMetrics, regressionMetrics } from '../training/metrics.ts';
import {
  buildMlp,
  fitMlp,
  loadModelFromArtifacts,
  type MlpShape,
  type ModelArtifactBytes,
  mlpShape,
  saveModelArtifacts,
} from '../training/model.ts';
import { type Objective, objectiveFor } from '../training/objective.ts';
import { seededRandom, shuffleInPlace } from '../training/random.ts';
import {
  fitRidge,
  meanSquaredError,
  type Ridge,
  ridgeModel,
  ridgePredict,
  ridgeSums,
  selectColumnKinds,
  selectColumns,
} from '../training/ridge.ts';
import {
  classifierNovelty,
  fitAnomaly,
  fitOptions,
  GOLDEN_ROWS,
  GOLDEN_TOLERANCE,
  type LabelledVectors,
  type TrainingOutcome,
  type TrainRunOptions,
} from '../training/train.ts';
import {
  fitWindowFeatures,
  type WindowInput,
  windowFromSamples,
  windowInput,
  windowInputs,
} from './features.ts';
import {
  type CollectedReadings,
  LongFormatCollector,
  parseTime,
  type SeriesReadings,
} from './long-format.ts';
import { buildRecurrent, inputTensor, predictWindows, RECURRENT_UNITS } from './model.ts';
import { type PreparedWindows, prepareWindows } from './prepare.ts';
import { bandsFor, type WindowFeatures, type WindowManifest, type WindowSpec } from './spec.ts';
import { type Window, windowsOf } from './windower.ts';

/** Values (samples x channels) kept over all golden windows, beyond one window. */
export const GOLDEN_WINDOW_VALUES = 8_000;

export async function trainWindowsFromCsv(
  csv: Uint8Array | string,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  const name = options.source ?? 'dataset.csv';
  return trainWindowsFromSource({ name, parts: [bytesPart(name, csv)] }, config, options);
}

/** The label column: the config's, else the last column that is not the time or the series. */
function labelColumn(header: readonly string[], spec: WindowSpec, label: string | undefined): string {
  if (label) return label;
  const candidates = header.filter((column) => column !== spec.time && column !== spec.series);
  return candidates[candidates.length - 1] ?? '';
}

export async function trainWindowsFromSource(
  source: DatasetSource,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  const spec = config.window;
  if (!spec) throw new Error('trainWindowsFromSource needs a config with "window"');
  if (config.task === 'anomaly' && config.label)
    throw new InputError(
      `an anomaly model trains on normal operation without labels, but "label" names '${config.label}': remove it`,
    );
  const where = options.source ? `${options.source}: ` : '';
  const backend = await initTf();
  let collector: LongFormatCollector | undefined;
  let label = '';
  let width = 0;
  let header: string[] = [];
  // Labelled hard examples follow the parts, newest first: each is one window of its own
  // series, so they are put back in time order before they are collected.
  const feedback: { cells: string[]; place: string }[] = [];
  const pass = await readPass(
    source,
    where,
    (raw, place) => {
      const cells = fitToHeader(raw, width);
      if (!cells)
        throw new InputError(
          `${where}${placeText(place)}: ${raw.length} cells, the header has ${width}: every reading needs every column`,
        );
      if (place.part === 'feedback') feedback.push({ cells, place: placeText(place) });
      else collector?.add(cells, placeText(place));
    },
    {
      onHeader: (names) => {
        header = names;
        width = header.length;
        label = config.task === 'anomaly' ? '' : labelColumn(header, spec, config.label);
        collector = new LongFormatCollector(header, spec, label, config.features, where);
      },
      onProgress: (progress) => options.onProgress?.({ phase: 'parsing', ...progress }),
    },
  );
  if (!collector) throw new InputError(`${where}the dataset has no header`);
  const timeAt = header.indexOf(spec.time);
  const seriesAt = spec.series ? header.indexOf(spec.series) : -1;
  const timeOf = (cells: string[]) => parseTime(cells[timeAt] ?? '', spec.timeUnit);
  feedback.sort(
    (a, b) =>
      (a.cells[seriesAt] ?? '').localeCompare(b.cells[seriesAt] ?? '') || timeOf(a.cells) - timeOf(b.cells),
  );
  for (const { cells, place } of feedback) collector.add(cells, place);
  const collected = collector.finish();
  options.onProgress?.({ phase: 'sampling' });
  const prepared = prepareWindows(collected, spec, config.seed, where, config.task);
  const { labels, windows } = prepared;
  const regression = config.task === 'regression';
  const k = regression ? 1 : labels.length;
  const objective = objectiveFor(config.task, k);
  const classIndex = new Map(labels.map((name, i) => [name, i]));
  // Regression: each window's target (its last reading's), capped to the config's bounds for
  // training, and the scale fitted on the training windows' targets.
  const bounds = regression ? (config.target ?? {}) : {};
  const targetOf = (w: Window) => targetNumber(w.label);
  const scaleFitter = new TargetScaleFitter();
  let capped = 0;
  for (const w of regression ? windows.train : []) {
    const kept = clipTarget(targetOf(w), bounds);
    if (kept !== targetOf(w)) capped++;
    scaleFitter.add(kept);
  }
  const scale = regression ? scaleFitter.finish(bounds) : undefined;
  /** Fit targets: class indices, or standardized (capped) values. */
  const truthOf = (list: readonly Window[]) =>
    list.map((w) =>
      scale
        ? standardizeTarget(clipTarget(targetOf(w), bounds), scale)
        : (classIndex.get(w.label as string) as number),
    );

  const bands = bandsFor(config.task, prepared.spec.samples, spec.bands);
  if (spec.features === 'spectral' && bands > Math.floor(prepared.spec.samples / 2))
    throw new InputError(
      `${where}${bands} FFT bands need windows of at least ${bands * 2} samples (these have ${prepared.spec.samples}): lower "bands" or lengthen the window`,
    );
  const features = fitWindowFeatures(prepared.spec, spec.features, bands, windows.train, regression);
  const input = windowInput(prepared.spec, features);
  const train = shuffleInPlace([...windows.train], seededRandom(config.seed));
  if (config.task === 'anomaly')
    return anomalyOnWindows({ prepared, features, input, train, collected, pass, backend }, config, options);
  const trainX = windowInputs(input, train);
  const trainY = truthOf(train);
  const validationX = windowInputs(input, windows.validation);
  const validationY = truthOf(windows.validation);
  const fitted = await fitWindowModel(
    { x: trainX, y: trainY, series: train.map((w) => w.series) },
    { x: validationX, y: validationY, series: windows.validation.map((w) => w.series) },
    input,
    features,
    k,
    config,
    options,
    objective,
  );
  const { model, shape } = fitted;
  options.onProgress?.({ phase: 'evaluating' });
  const artifacts = await saveModelArtifacts(model, config.quantize);
  model.dispose();
  const shipped = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    const testX = windowInputs(input, windows.test);
    const probabilities = predictWindows(shipped, testX, windows.test.length, input.shape);
    const metrics: ModelMetrics = scale
      ? {
          regression: {
            ...regressionMetrics(
              windows.test.map(targetOf),
              Array.from(probabilities, (o) => targetValue(o, scale)),
              scale.mean,
            ),
            ...(fitted.kind ? { model: fitted.kind } : {}),
          },
          testRows: windows.test.length,
        }
      : classificationMetrics(truthOf(windows.test), argmaxRows(probabilities, k), labels);
    const golden = goldenWindows(shipped, input, windows.test, prepared.spec.channels.length);
    // A classifier's windows far from its training windows are answered `unknown`, as rows are.
    const novelty = scale
      ? undefined
      : classifierNovelty(config, labels, input.width, {
          train: trainX,
          validation: validationX,
          test: testX,
          golden: goldenInputs(input, golden.windows),
        });
    if (novelty?.spec) metrics.novelty = novelty.metrics;
    const window: WindowManifest = {
      spec: prepared.spec,
      features,
      golden,
      windows: { train: train.length, validation: windows.validation.length, test: windows.test.length },
      split: prepared.split,
    };
    const all = [...windows.train, ...windows.validation, ...windows.test];
    const distribution: Record<string, number> = Object.fromEntries(
      labels.map((name) => [
        name,
        Math.round((all.filter((w) => w.label === name).length / all.length) * 1e6) / 1e6,
      ]),
    );
    const channelScale = fitWindowFeatures(prepared.spec, 'raw', 1, windows.train).scale;
    const preprocessing: Preprocessing = {
      label,
      labels,
      ...(scale ? { task: 'regression' as const, target: scale } : {}),
      features: channelFeatures(prepared.spec.channels, channelScale),
      inputWidth: input.width,
    };
    return {
      preprocessing,
      metrics,
      classDistribution: distribution,
      // Golden rows do not apply: probation runs the golden windows (window.golden).
      golden: { rows: [], outputs: [], tolerance: GOLDEN_TOLERANCE },
      ...(novelty?.spec ? { novelty: novelty.spec } : {}),
      artifacts,
      shape,
      rows: collected.readings,
      features: prepared.spec.channels,
      classes: labels,
      notices: [
        ...prepared.notices,
        ...(novelty ? [novelty.notice] : []),
        ...(fitted.notice ? [fitted.notice] : []),
        ...(capped > 0
          ? [`capped ${capped} training window target(s) of '${label}' to the config's "target" bounds`]
          : []),
      ],
      backend,
      seed: config.seed,
      epochsRun: fitted.epochsRun,
      bestEpoch: fitted.bestEpoch,
      testSet: { rows: [], labels: [] },
      parts: pass.parts,
      datasetSha256: datasetDigest(pass.parts),
      extraRows: pass.extraRows,
      window: { manifest: window, testSeries: prepared.testSeries },
    };
  } finally {
    shipped.dispose();
  }
}

/**
 * An anomaly model on windows: the autoencoder learns the training windows' feature vectors,
 * the threshold comes from the validation windows (series or time blocks the fit never saw),
 * and a result is one window, at the windows' own rate a day per series.
 */
async function anomalyOnWindows(
  run: {
    prepared: PreparedWindows;
    features: WindowFeatures;
    input: WindowInput;
    train: Window[];
    collected: CollectedReadings;
    pass: { parts: PartLineage[]; extraRows: number };
    backend: string;
  },
  config: TrainingConfig,
  options: TrainRunOptions,
): Promise<TrainingOutcome> {
  const { prepared, features, collected, pass } = run;
  // The autoencoder is dense: a raw window goes in as one vector of its samples.
  const input = { ...run.input, shape: [run.input.width] };
  const { spec } = prepared;
  // Windows overlapping a labelled event range are never trained, calibrated or tested on.
  const ranges = options.events?.length ? new EventRanges(options.events) : undefined;
  const normal = (list: readonly Window[]) =>
    ranges ? list.filter((w) => !ranges.overlaps(w.series, w.start, w.end)) : [...list];
  const train = normal(run.train);
  const windows = { validation: normal(prepared.windows.validation), test: normal(prepared.windows.test) };
  const excluded =
    run.train.length +
    prepared.windows.validation.length +
    prepared.windows.test.length -
    (train.length + windows.validation.length + windows.test.length);
  const fitted = await fitAnomaly(
    {
      width: input.width,
      train: windowInputs(input, train),
      validation: windowInputs(input, windows.validation),
      test: windowInputs(input, windows.test),
      ...(ranges ? { labelled: labelledWindows(ranges, collected, spec, input, excluded) } : {}),
      // One result a stride per series.
      resultsPerDay: (86_400 * spec.frequencyHz) / spec.stride,
      time: spec.time,
      ...(spec.series ? { series: spec.series } : {}),
      unit: 'window',
      sequences: {
        validation: windows.validation.map((w) => w.series),
        test: windows.test.map((w) => w.series),
      },
    },
    config,
    options,
    (shipped) => goldenWindows(shipped, input, windows.test, spec.channels.length),
  );
  const channelScale = fitWindowFeatures(spec, 'raw', 1, train).scale;
  const window: WindowManifest = {
    spec,
    features,
    golden: fitted.golden,
    windows: { train: train.length, validation: windows.validation.length, test: windows.test.length },
    split: prepared.split,
  };
  return {
    preprocessing: {
      label: '',
      labels: [],
      task: 'anomaly',
      features: channelFeatures(spec.channels, channelScale),
      inputWidth: input.width,
    },
    metrics: fitted.metrics,
    classDistribution: {},
    golden: { rows: [], outputs: [], tolerance: GOLDEN_TOLERANCE },
    artifacts: fitted.artifacts,
    shape: fitted.shape,
    rows: collected.readings,
    features: spec.channels,
    classes: [],
    notices: [...prepared.notices, ...fitted.notices],
    backend: run.backend,
    seed: config.seed,
    epochsRun: fitted.epochsRun,
    bestEpoch: fitted.bestEpoch,
    // The gate scores the current release on these readings (falseAlarmRateOnRows), those in
    // labelled ranges left out as the candidate's test windows are.
    testSet: {
      rows: seriesRows(prepared.testSeries, spec, SAMPLE_DEFAULTS.maxEvalRows).filter(
        (row) =>
          !ranges?.overlaps(
            spec.series ? (row[spec.series] ?? '') : '',
            parseTime(row[spec.time] ?? '', spec.timeUnit),
          ),
      ),
      labels: [],
    },
    parts: pass.parts,
    datasetSha256: datasetDigest(pass.parts),
    extraRows: pass.extraRows,
    window: { manifest: window, testSeries: prepared.testSeries },
    anomaly: fitted.anomaly,
  };
}

/**
 * The labelled series' windows in time order, cut from all their readings with the gateway's
 * windower (a result per window, at its end), for the evaluation against the ranges.
 */
function labelledWindows(
  ranges: EventRanges,
  collected: CollectedReadings,
  spec: PreparedWindows['spec'],
  input: WindowInput,
  excluded: number,
): LabelledVectors {
  const cut = collected.series
    .filter((s) => ranges.has(s.name))
    .flatMap((s) => windowsOf(s.name, spec, s.times, s.values));
  const unknown = ranges.unknownSeriesNotice(collected.series.map((s) => s.name));
  return {
    x: windowInputs(input, cut),
    series: cut.map((w) => w.series),
    times: cut.map((w) => w.end),
    ranges: ranges.of(collected.series.map((s) => s.name)).ranges,
    excluded,
    notices: unknown ? [unknown] : [],
    spanMs: ((spec.samples - 1) * 1000) / spec.frequencyHz,
  };
}

/** The channels as the device reads them; the window block says what the model sees of them. */
function channelFeatures(channels: readonly string[], scale: { mean: number[]; std: number[] }) {
  return channels.map((column, c) => ({
    kind: 'numeric' as const,
    column,
    mean: scale.mean[c] as number,
    std: scale.std[c] as number,
    fill: scale.mean[c] as number,
  }));
}

interface FittedWindows {
  model: LayersModel;
  shape: MlpShape;
  epochsRun: number;
  bestEpoch: number;
  /** Regression on spectral windows: which candidate ships, and why. */
  kind?: 'mlp' | 'ridge';
  notice?: string;
}

/** One fit with early stopping: the MLP on spectral windows, or the GRU on raw ones. */
/** Model inputs of windows, their fit targets, and the series each window was cut from. */
interface WindowSet {
  x: Float32Array;
  y: number[];
  series: string[];
}

async function fitWindowModel(
  train: WindowSet,
  validation: WindowSet,
  input: WindowInput,
  features: WindowFeatures,
  k: number,
  config: TrainingConfig,
  options: TrainRunOptions,
  objective: Objective,
): Promise<FittedWindows> {
  const candidates = objective.task === 'regression' && features.kind === 'spectral';
  const pinned = candidates ? (config.regressionModel ?? 'auto') : 'mlp';
  const ridge = candidates && pinned !== 'mlp' ? windowRidge(train, validation, input, features) : undefined;
  if (ridge && pinned === 'ridge') return ridge.shipped('as "regressionModel" pins it');
  const model =
    features.kind === 'raw'
      ? buildRecurrent(
          input.shape[0] as number,
          input.shape[1] as number,
          k,
          config.seed,
          undefined,
          objective,
        )
      : buildMlp(mlpShape(input.width, k, train.y.length), config.seed, undefined, objective);
  const shape =
    features.kind === 'raw'
      ? { inputWidth: input.width, hidden: [RECURRENT_UNITS], classes: k }
      : mlpShape(input.width, k, train.y.length);
  const targets = (y: number[]) => tf.tensor2d(objective.targets(y), [y.length, k]);
  const tensors = {
    train: { x: inputTensor(train.x, train.y.length, input.shape), y: targets(train.y) },
    validation: { x: inputTensor(validation.x, validation.y.length, input.shape), y: targets(validation.y) },
  };
  try {
    options.onProgress?.({ phase: 'training', epoch: 0, epochs: config.epochs });
    const fitted = await fitMlp(
      model,
      tensors.train,
      tensors.validation,
      fitOptions(config, options, objective, train.y),
    );
    const mlp = { model, shape, epochsRun: fitted.epochsRun, bestEpoch: fitted.bestEpoch };
    if (!candidates) return mlp;
    if (!ridge)
      return { ...mlp, kind: 'mlp', notice: 'regression model: the MLP, as "regressionModel" pins it' };
    // The two on the validation series, which neither fit saw (the MLP only stopped on them).
    const mlpError = meanSquaredError(
      predictWindows(model, validation.x, validation.y.length, input.shape),
      validation.y,
    );
    const versus = `validation MSE ${ridge.validationMse.toFixed(4)} against the MLP's ${mlpError.toFixed(4)}, standardized; "regressionModel" pins one`;
    if (mlpError <= ridge.validationMse)
      return { ...mlp, kind: 'mlp', notice: `regression model: the MLP (the ridge's ${versus})` };
    model.dispose();
    return ridge.shipped(`it predicts the validation series better (${versus})`);
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    tf.dispose([tensors.train.x, tensors.train.y, tensors.validation.x, tensors.validation.y]);
  }
}

/**
 * The ridge candidate for regression on spectral windows. Its feature kinds (every channel's
 * mean, every channel's slope, ...) and penalty are chosen by cross-validation over whole
 * series of the training and validation windows (a machine's overlapping windows would vouch
 * for each other); it is scored on the validation series fitted on the training ones alone,
 * as the MLP is, and if it ships it is refitted on both: a closed form needs no early stopping.
 */
function windowRidge(
  train: WindowSet,
  validation: WindowSet,
  input: WindowInput,
  features: Extract<WindowFeatures, { kind: 'spectral' }>,
): { validationMse: number; shipped(why: string): FittedWindows } {
  const all = new Float32Array(train.x.length + validation.x.length);
  all.set(train.x);
  all.set(validation.x, train.x.length);
  const y = [...train.y, ...validation.y];
  const kinds = features.names.map((name) => name.replace(/^.*:/, '').replace(/\d+$/, ''));
  const { columns, penalty } = selectColumnKinds(
    all,
    y,
    [...train.series, ...validation.series],
    input.width,
    kinds,
  );
  // Unchosen columns weigh 0: the shipped layer reads the same input as the MLP would.
  const fit = (x: Float32Array, values: number[]): Ridge => {
    const ridge = fitRidge(
      ridgeSums(selectColumns(x, input.width, columns), values, columns.length),
      penalty,
    );
    const weights = new Float64Array(input.width);
    columns.forEach((c, j) => {
      weights[c] = ridge.weights[j] as number;
    });
    return { ...ridge, weights };
  };
  const kept = [...new Set(columns.map((c) => kinds[c]))].join(', ');
  return {
    validationMse: meanSquaredError(ridgePredict(fit(train.x, train.y), validation.x), validation.y),
    shipped: (why) => ({
      model: ridgeModel(fit(all, y)),
      shape: { inputWidth: input.width, hidden: [], classes: 1 },
      epochsRun: 0,
      bestEpoch: 0,
      kind: 'ridge',
      notice: `regression model: a ridge regression on ${columns.length} of ${input.width} features (${kept}; penalty ${penalty}), ${why}`,
    }),
  };
}

/** A few test windows spread over the test set, and what the shipped model says of them. */
function goldenWindows(model: LayersModel, input: WindowInput, test: readonly Window[], channels: number) {
  // Few enough values that the manifest stays small (it also rides in the Step Functions state).
  const perWindow = (test[0]?.values.length ?? 1) || 1;
  const n = Math.max(1, Math.min(GOLDEN_ROWS, test.length, Math.floor(GOLDEN_WINDOW_VALUES / perWindow)));
  const picks = Array.from({ length: n }, (_, i) => test[Math.floor((i * test.length) / n)] as Window);
  // Stored rounded to float32's precision; outputs are computed on exactly the stored values.
  const windows = picks.map((window) => {
    const samples = window.values.length / channels;
    return Array.from({ length: samples }, (_, i) =>
      Array.from(window.values.subarray(i * channels, (i + 1) * channels), (v) =>
        Number.isNaN(v) ? null : Number(v.toPrecision(7)),
      ),
    );
  });
  return { windows, outputs: goldenOutputs(model, input, windows), tolerance: GOLDEN_TOLERANCE };
}

/** The model inputs of windows given as samples x channels arrays (the golden windows). */
function goldenInputs(
  input: WindowInput,
  windows: readonly (readonly (readonly (number | null)[])[])[],
): Float32Array {
  const x = new Float32Array(windows.length * input.width);
  windows.forEach((samples, i) => {
    input.into(windowFromSamples(samples), x, i * input.width);
  });
  return x;
}

/** Probabilities (rounded to 6 places) for windows given as samples x channels arrays. */
export function goldenOutputs(
  model: LayersModel,
  input: WindowInput,
  windows: readonly (readonly (readonly (number | null)[])[])[],
): number[][] {
  const x = goldenInputs(input, windows);
  const probabilities = predictWindows(model, x, windows.length, input.shape);
  const k = probabilities.length / Math.max(1, windows.length);
  return windows.map((_, i) =>
    Array.from(probabilities.subarray(i * k, (i + 1) * k), (p) => Number(p.toFixed(6))),
  );
}

/**
 * Accuracy of an already released windowed model on this run's test readings, re-cut with
 * that model's own window spec (by label name; a class it does not know counts as a miss).
 */
export async function accuracyOnWindows(
  artifacts: ModelArtifactBytes,
  manifest: Manifest,
  testSeries: readonly SeriesReadings[],
  channels: readonly string[],
): Promise<number> {
  const scored = await releaseOnWindows(artifacts, manifest, testSeries, channels);
  if (!scored) return 0;
  const predicted = argmaxRows(scored.outputs, manifest.preprocessing.labels.length);
  const correct = predicted.filter(
    (p, i) => manifest.preprocessing.labels[p] === scored.cut[i]?.label,
  ).length;
  return correct / scored.cut.length;
}

/** RMSE of an already released windowed regression model on this run's test readings (re-cut as above). */
export async function rmseOnWindows(
  artifacts: ModelArtifactBytes,
  manifest: Manifest,
  testSeries: readonly SeriesReadings[],
  channels: readonly string[],
): Promise<number> {
  const scale = manifest.preprocessing.target;
  if (!scale) throw new Error('the current release is not a regression model: it has no target scale');
  const scored = await releaseOnWindows(artifacts, manifest, testSeries, channels);
  if (!scored) return Number.POSITIVE_INFINITY;
  const kept = scored.cut.flatMap((w, i) => {
    const truth = targetNumber(w.label);
    return Number.isNaN(truth) ? [] : [{ truth, value: targetValue(scored.outputs[i] as number, scale) }];
  });
  return regressionMetrics(
    kept.map((k) => k.truth),
    kept.map((k) => k.value),
    scale.mean,
  ).rmse;
}

/** The release's outputs on this run's test readings, re-cut with its own window spec. */
async function releaseOnWindows(
  artifacts: ModelArtifactBytes,
  manifest: Manifest,
  testSeries: readonly SeriesReadings[],
  channels: readonly string[],
): Promise<{ cut: Window[]; outputs: Float32Array } | undefined> {
  const window = manifest.window;
  if (!window) throw new Error('the current release is a row model: it cannot score windows');
  const at = window.spec.channels.map((channel) => channels.indexOf(channel));
  if (at.some((i) => i < 0))
    throw new Error(
      `the current release reads channels ${window.spec.channels.join(', ')}, not all in this dataset`,
    );
  await initTf();
  const input = windowInput(window.spec, window.features);
  const cut: Window[] = [];
  for (const series of testSeries) {
    const n = series.times.length;
    const values = new Float32Array(n * at.length);
    for (let i = 0; i < n; i++)
      at.forEach((c, j) => {
        values[i * at.length + j] = series.values[i * channels.length + c] as number;
      });
    for (const w of windowsOf(series.name, window.spec, series.times, values, series.labels))
      if (w.label !== undefined) cut.push(w);
  }
  if (cut.length === 0) return undefined;
  const model = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    return { cut, outputs: predictWindows(model, windowInputs(input, cut), cut.length, input.shape) };
  } finally {
    model.dispose();
  }
}
