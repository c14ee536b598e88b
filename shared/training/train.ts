/**
 * Dataset + config -> a trained, evaluated model (a classifier, or regression with `task`) and its artifacts. Pure of AWS: the
 * training function and `edgeloop train` both call `trainFromSource` (or `trainFromCsv` for
 * bytes in memory).
 *
 * Memory stays bounded whatever the dataset's size: pass 1 streams every part through the
 * profiler (types, classes, rejections, digests); pass 2 streams them again, splits each row
 * as it passes (stratified selection sampling, seeded), fits the preprocessing on the
 * training rows, and keeps only the sampled rows in a compact RowStore; tfjs is then fed
 * from a generator, one batch of tensors at a time.
 */

import type { LayersModel } from '@tensorflow/tfjs';
import type { Histogram } from '../aggregation/histogram.ts';
import { addValueToHistogram, histogramPairs } from '../aggregation/value-histogram.ts';
import { type EventRuleSpec, residualScale } from '../anomaly.ts';
import { fitToHeader, placeText } from '../dataset/profile.ts';
import { type DatasetSource, datasetDigest, type PassProgress, readPass } from '../dataset/read.ts';
import { bytesPart } from '../dataset/source.ts';
import {
  DATASET_LIMITS,
  type Dataset,
  type DatasetProfile,
  type PartLineage,
  profileDataset,
} from '../dataset.ts';
import { InputError } from '../errors.ts';
import { noveltyScore, UNKNOWN_CLASS } from '../novelty.ts';
import { isMissing, type RawRow, transformInto, transformRows } from '../preprocess.ts';
import {
  type Alarm,
  AlarmSchema,
  type AnomalyCandidate,
  type AnomalyModel,
  EventRuleSchema,
  type LabelledMetrics,
  type Manifest,
  type ModelMetrics,
  type Preprocessing,
  SAMPLE_DEFAULTS,
  type TrainingConfig,
  type TrainingSampleLineage,
  TuningConfigSchema,
  type TuningReport,
} from '../schemas.ts';
import {
  clipTarget,
  outputUnits,
  standardizeTarget,
  TargetScaleFitter,
  targetNumber,
  targetValue,
} from '../target.ts';
import { initTf, tf } from '../tf.ts';
import type { SeriesReadings } from '../timeseries/long-format.ts';
import { parseTime } from '../timeseries/long-format.ts';
import type { WindowManifest } from '../timeseries/spec.ts';
import {
  anomalyCandidates,
  autoencoderHidden,
  buildAutoencoder,
  buildPcaModel,
  type Calibration,
  COMPARED_QUANTILE,
  calibrateThreshold,
  chooseAnomalyModel,
  departures,
  falseAlarms,
  heldOutAlarms,
  ReadingRate,
  reconstructionScores,
  reconstructions,
} from './anomaly.ts';
import {
  EventRanges,
  evaluateLabelled,
  type LabelledRange,
  type LabelledResults,
  LabelledRows,
  labelledText,
  scoreRatio,
} from './labelled-events.ts';
import { argmaxRows, classificationMetrics, regressionMetrics } from './metrics.ts';
import {
  type Batch,
  buildMlp,
  type EpochProgress,
  type FitOptions,
  fitMlp,
  fitMlpBatches,
  loadModelFromArtifacts,
  type MlpShape,
  type ModelArtifactBytes,
  mlpShape,
  predictProbabilities,
  saveModelArtifacts,
} from './model.ts';
import { DEFAULT_NOVELTY_QUANTILE, fitNovelty, unknownRate } from './novelty.ts';
import { anomalyObjective, type Objective, objectiveFor } from './objective.ts';
import { PreprocessingFitter } from './preprocessing.ts';
import { seededRandom } from './random.ts';
import { type MutableRow, RowStore } from './row-store.ts';
import { planSplit, StratifiedSplitter } from './split.ts';
import { tuneMlp } from './tune.ts';

/** Where a long run is: the registry and the CLI show it. */
export type TrainingPhase = 'parsing' | 'sampling' | 'training' | 'evaluating';

export interface TrainingProgress extends Partial<PassProgress> {
  phase: TrainingPhase;
  epoch?: number;
  epochs?: number;
  /** The tuner's candidates done, and how many it tries. */
  candidate?: number;
  candidates?: number;
}

export interface TrainRunOptions {
  /** File name or S3 key, used in rejection messages. */
  source?: string;
  maxBytes?: number;
  onEpoch?: (progress: EpochProgress) => void;
  /** Phases, rows parsed and bytes read (every 50,000 rows while a pass streams). */
  onProgress?: (progress: TrainingProgress) => void;
  /** Epochs without a better validation loss before stopping. */
  patience?: number;
  /** Anomaly: labelled event ranges (events.csv), never trained on; they score the candidate. */
  events?: readonly LabelledRange[];
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
  /** Every part read, with its version and digest (empty for an in-memory dataset). */
  parts: PartLineage[];
  /** sha256 of the one part, or over the parts' digests. */
  datasetSha256?: string;
  /** The sample trained on, when the caps left rows out. */
  sample?: TrainingSampleLineage;
  /** Labelled feedback rows that followed the parts. */
  extraRows: number;
  /** A windowed run (config `window`): what the manifest carries, and the test readings for the gate. */
  window?: { manifest: WindowManifest; testSeries: SeriesReadings[] };
  /** The tuner's search, when the dataset was small enough for one. */
  tuning?: TuningReport;
  /** An anomaly model's threshold and event rule (the manifest's `anomaly`). */
  anomaly?: NonNullable<Manifest['anomaly']>;
  /** A classifier's novelty score (the manifest's `novelty`). */
  novelty?: NonNullable<Manifest['novelty']>;
}

export const GOLDEN_ROWS = 5;
export const GOLDEN_TOLERANCE = 1e-3;

export async function trainFromCsv(
  csv: Uint8Array | string,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  const name = options.source ?? 'dataset.csv';
  return trainFromSource({ name, parts: [bytesPart(name, csv)] }, config, options);
}

/** Trains on a dataset of one or more parts, streaming it twice (see the module comment). */
export async function trainFromSource(
  source: DatasetSource,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  const where = options.source ? `${options.source}: ` : '';
  const report = (phase: TrainingPhase) => (progress: PassProgress) =>
    options.onProgress?.({ phase, ...progress });
  const { profile, parts, extraRows } = await profileDataset(
    source,
    {
      task: config.task,
      ...(config.label ? { label: config.label } : {}),
      ...(config.time ? { time: config.time } : {}),
      ...(config.series ? { series: config.series } : {}),
      ...(config.features ? { features: config.features } : {}),
      minRowsPerClass: config.minRowsPerClass,
      ...(config.columns ? { columnKinds: config.columns } : {}),
      ...(options.maxBytes ? { maxBytes: options.maxBytes } : {}),
      ...(options.source ? { source: options.source } : {}),
    },
    report('parsing'),
  );
  const outcome = await trainOnProfile(
    profile,
    async (visit) => {
      const again = await readPass(source, where, (cells, place) => visit(cells, placeText(place)), {
        onProgress: report('sampling'),
      });
      again.parts.forEach((part, i) => {
        if (part.sha256 !== parts[i]?.sha256) {
          throw new Error(
            `${where}${part.key} changed while the run was reading it (sha256 ${parts[i]?.sha256} then ${part.sha256}): upload datasets under a new key`,
          );
        }
      });
    },
    config,
    options,
  );
  return { ...outcome, parts, datasetSha256: datasetDigest(parts), extraRows };
}

/** Trains on a dataset parsed in memory (`parseDataset`), through the same pipeline. */
export async function trainOnDataset(
  dataset: Dataset,
  config: TrainingConfig,
  options: TrainRunOptions = {},
): Promise<TrainingOutcome> {
  return trainOnProfile(
    dataset,
    async (visit) => {
      dataset.rows.forEach((row, i) => {
        visit(
          dataset.header.map((column) => row[column] ?? ''),
          `data row ${dataset.rowNumbers[i] ?? i + 1}`,
        );
      });
    },
    config,
    options,
  );
}

/** Pass 2 and training: `reread` streams the dataset's records again, in the same order. */
async function trainOnProfile(
  profile: DatasetProfile,
  reread: (visit: (cells: string[], place: string) => void) => Promise<void>,
  config: TrainingConfig,
  options: TrainRunOptions,
): Promise<Omit<TrainingOutcome, 'parts' | 'extraRows'> & { parts: PartLineage[]; extraRows: number }> {
  const backend = await initTf();
  const { header, labels } = profile;
  const regression = profile.task === 'regression';
  const k = regression ? 1 : labels.length;
  const limits = { ...SAMPLE_DEFAULTS, ...config.sample };
  // A training row is held twice at the peak: compactly while sampling, then as its vector.
  const bytesPerRow = RowStore.bytesPerRow(profile.columns) + 4 * maxInputWidth(profile) + 4;
  const bufferRows = Math.floor((limits.bufferMb * 1024 * 1024) / bytesPerRow);
  const plan = planSplit(profile.classCounts, {
    seed: config.seed,
    maxTrainRows: Math.min(limits.maxTrainRows, bufferRows),
    maxEvalRows: limits.maxEvalRows,
  });
  const splitter = new StratifiedSplitter(plan, config.seed);
  const fitter = new PreprocessingFitter(profile.columns, header);
  let trainStore: RowStore | undefined = new RowStore(profile.columns, header, plan.kept.train);
  const validationStore = new RowStore(profile.columns, header, plan.kept.validation);
  const testRows: Record<string, string>[] = [];
  const testTruth: number[] = [];
  const classIndex = new Map(labels.map((name, i) => [name, i]));
  const labelAt = header.indexOf(profile.label);
  // Regression: the training targets' scale, and the targets the config's bounds capped.
  const targetFitter = new TargetScaleFitter();
  const bounds = regression ? (config.target ?? {}) : {};
  let capped = 0;
  /** A row's class index, or its target (capped to the bounds); undefined to skip the row. */
  const yOf = (label: string, place: string): number | undefined => {
    if (regression) {
      const value = targetNumber(label);
      if (Number.isNaN(value)) return undefined;
      const kept = clipTarget(value, bounds);
      if (kept !== value) capped++;
      return kept;
    }
    const cls = classIndex.get(label.trim());
    if (cls === undefined) throw new Error(`${place}: class '${label}' was not seen by the profiling pass`);
    return cls;
  };

  // Anomaly: no label; the time column gives the reading rate the false-alarm budget needs.
  const anomaly = profile.task === 'anomaly';
  const rates = new Map<string, ReadingRate>();
  const timeAt = config.time ? header.indexOf(config.time) : -1;
  const seriesAt = config.series ? header.indexOf(config.series) : -1;
  const labelled = anomaly
    ? labelledRowsOf(options.events, header, timeAt, seriesAt, config.time)
    : undefined;

  options.onProgress?.({ phase: 'sampling', rowsParsed: 0 });
  await reread((raw, place) => {
    const cells = fitToHeader(raw, header.length);
    if (cells && timeAt >= 0) {
      const series = cells[seriesAt] ?? '';
      let rate = rates.get(series);
      if (!rate) {
        rate = new ReadingRate();
        rates.set(series, rate);
      }
      rate.add(parseTime(cells[timeAt] ?? '', 'ms'));
    }
    // A row inside a labelled event range is never trained on (nor calibrated or tested on).
    if (cells && labelled?.take(cells)) return;
    const label = anomaly ? '' : cells?.[labelAt];
    if (!cells || label === undefined || (!anomaly && isMissing(label))) return;
    const y = anomaly ? 0 : yOf(label, place);
    if (y === undefined) return;
    const role = splitter.assign(regression ? 0 : y);
    if (role === 'train') {
      fitter.add(cells);
      if (regression) targetFitter.add(y);
      trainStore?.push(cells, y);
    } else if (role === 'validation') {
      validationStore.push(cells, y);
    } else if (role === 'test') {
      testRows.push(Object.fromEntries(header.map((column, j) => [column, cells[j] ?? ''])));
      // The test rows are scored against their own targets, not the capped ones.
      testTruth.push(regression ? targetNumber(label) : y);
    }
  });
  const preprocessing = regression
    ? {
        ...fitter.finish(profile.label, []),
        task: 'regression' as const,
        target: targetFitter.finish(bounds),
      }
    : anomaly
      ? { ...fitter.finish('', []), task: 'anomaly' as const }
      : fitter.finish(profile.label, labels);
  if (anomaly) {
    const kept = labelled?.finish();
    const resultsPerDay = perSeriesRate(rates);
    const train = vectorsOf(trainStore, preprocessing, seededOrder(trainStore.size, config.seed));
    trainStore = undefined;
    const validation = vectorsOf(
      validationStore,
      preprocessing,
      seededOrder(validationStore.size, config.seed),
    ).x;
    const fitted = await fitAnomaly(
      {
        width: preprocessing.inputWidth,
        train: train.x,
        validation,
        test: transformRows(preprocessing, testRows),
        resultsPerDay,
        ...(kept && labelled
          ? {
              labelled: {
                x: transformRows(preprocessing, kept.rows),
                series: kept.series,
                times: kept.times,
                ranges: kept.ranges.ranges,
                excluded: labelled.excluded,
                notices: kept.notices,
                spanMs: 0,
              },
            }
          : {}),
        ...(config.time ? { time: config.time } : {}),
        ...(config.series ? { series: config.series } : {}),
        unit: 'reading',
      },
      config,
      options,
      (shipped) =>
        goldenVectors(
          shipped,
          preprocessing,
          testRows,
          preprocessing.features.map((f) => f.column),
        ),
    );
    return {
      ...fitted,
      preprocessing,
      classDistribution: {},
      rows: profile.stats.rowsKept,
      features: profile.features,
      classes: [],
      notices: [...profile.notices, ...fitter.notices, ...fitted.notices],
      backend,
      seed: config.seed,
      testSet: { rows: testRows, labels: [] },
      parts: [],
      extraRows: 0,
    };
  }
  const order = seededOrder(trainStore.size, config.seed);
  // The training vectors, in the seeded order; the compact rows can go.
  const train = vectorsOf(trainStore, preprocessing, order);
  trainStore = undefined;
  const fitted =
    train.labels.length <= TUNE_MAX_ROWS
      ? await fitTuned(train, validationStore, preprocessing, config, options)
      : await fitStreaming(train, validationStore, preprocessing, config, options);
  const { model, shape } = fitted;
  options.onProgress?.({ phase: 'evaluating' });
  const testX = transformRows(preprocessing, testRows);
  const artifacts = await saveModelArtifacts(model, config.quantize);
  const score = (m: LayersModel): ModelMetrics => {
    const outputs = predictProbabilities(m, testX, preprocessing.inputWidth);
    const scale = preprocessing.target;
    return scale
      ? {
          regression: regressionMetrics(
            testTruth,
            outputs.map((o) => targetValue(o, scale)),
            scale.mean,
          ),
          testRows: testTruth.length,
        }
      : classificationMetrics(testTruth, argmaxRows(outputs, k), labels);
  };
  // The float model's scores, to report what quantization costs.
  const floatMetrics = config.quantize === 'none' ? undefined : score(model);
  const floatBytes = model.getWeights().reduce((sum, w) => sum + w.size * 4, 0);
  model.dispose();

  // Evaluate what ships: the model as loaded back from its artifact bytes.
  const shipped = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    const metrics = score(shipped);
    if (config.quantize !== 'none' && floatMetrics) {
      const delta = (a: number | undefined, b: number | undefined) =>
        Math.round(((a ?? 0) - (b ?? 0)) * 1e6) / 1e6;
      metrics.quantization = {
        dtype: config.quantize,
        sizeRatio: Math.round((artifacts.weights.byteLength / floatBytes) * 1e4) / 1e4,
        ...(regression
          ? { rmseDelta: delta(metrics.regression?.rmse, floatMetrics.regression?.rmse) }
          : { accuracyDelta: delta(metrics.accuracy, floatMetrics.accuracy) }),
      };
    }
    const golden = goldenVectors(shipped, preprocessing, testRows, profile.features);
    const novelty = regression
      ? undefined
      : classifierNovelty(config, labels, preprocessing.inputWidth, {
          train: train.x,
          validation: vectorsOf(
            validationStore,
            preprocessing,
            seededOrder(validationStore.size, config.seed),
          ).x,
          test: testX,
          golden: transformRows(preprocessing, golden.rows),
        });
    if (novelty?.spec) metrics.novelty = novelty.metrics;
    const sampled =
      plan.kept.train < plan.planned.train ||
      plan.kept.validation < plan.planned.validation ||
      plan.kept.test < plan.planned.test;
    return {
      preprocessing,
      metrics,
      classDistribution: regression ? {} : classDistribution(profile),
      golden,
      ...(novelty?.spec ? { novelty: novelty.spec } : {}),
      artifacts,
      shape,
      rows: profile.stats.rowsKept,
      features: profile.features,
      classes: labels,
      notices: [
        ...profile.notices,
        ...fitter.notices,
        ...(novelty ? [novelty.notice] : []),
        ...(capped > 0
          ? [
              `capped ${capped} target(s) of '${profile.label}' to ${boundsText(bounds)} for training (config "target"); predictions are clipped the same way, and test rows are scored against their own values`,
            ]
          : []),
        ...(sampled
          ? [
              `trained on a seeded ${regression ? 'random' : 'stratified'} sample: ${plan.kept.train} of ${plan.planned.train} training rows, scored on ${plan.kept.test} of ${plan.planned.test} test rows (config "sample")`,
            ]
          : []),
      ],
      backend,
      seed: config.seed,
      epochsRun: fitted.epochsRun,
      bestEpoch: fitted.bestEpoch,
      ...(fitted.tuning ? { tuning: fitted.tuning } : {}),
      testSet: {
        rows: testRows,
        labels: testTruth.map((y) => (regression ? String(y) : (labels[y] ?? ''))),
      },
      parts: [],
      extraRows: 0,
      ...(sampled
        ? {
            sample: {
              seed: config.seed,
              trainRows: plan.kept.train,
              validationRows: plan.kept.validation,
              testRows: plan.kept.test,
              of: {
                trainRows: plan.planned.train,
                validationRows: plan.planned.validation,
                testRows: plan.planned.test,
              },
            },
          }
        : {}),
    };
  } finally {
    shipped.dispose();
  }
}

/** What an anomaly fit learns from: vectors of `width` (rows' or windows' inputs), all normal operation. */
export interface AnomalyVectors {
  width: number;
  train: Float32Array;
  validation: Float32Array;
  test: Float32Array;
  /** Results a day per series (readings, or windows), when the time column gives it. */
  resultsPerDay: number | undefined;
  /** The columns results and events take their time and series from. */
  time?: string;
  series?: string;
  /** What one result is, for the notices: 'reading' or 'window'. */
  unit: 'reading' | 'window';
  /**
   * Each validation and test vector's series, when the vectors are results in time order
   * (windows): the threshold is then set by the events the rule opens on them.
   */
  sequences?: { validation: string[]; test: string[] };
  /** With labelled event ranges: the labelled series' vectors in time order, scored after the fit. */
  labelled?: LabelledVectors;
}

export interface LabelledVectors {
  x: Float32Array;
  /** Each vector's series and time (a row's time, a window's end). */
  series: string[];
  times: number[];
  ranges: readonly LabelledRange[];
  /** Rows (or windows) left out of the fit for lying in a range, and notices about the ranges. */
  excluded: number;
  notices: string[];
  /** How long one result spans (a window's length; 0 for a reading): a fault shows that much after it ends. */
  spanMs: number;
}

/**
 * An anomaly model: each candidate (`anomalyCandidates`: a PCA and a dense autoencoder, or the
 * one the config pins) fitted on the training vectors, the one with the fewest false alarms on
 * held-out normal data chosen (`chooseCandidate`), its threshold calibrated on the validation
 * vectors' scores, and its false-alarm rate measured on the test vectors, all normal
 * operation. `golden` gives the probation vectors from the model that ships.
 */
export async function fitAnomaly<G>(
  data: AnomalyVectors,
  config: TrainingConfig,
  options: TrainRunOptions,
  golden: (shipped: LayersModel) => G,
) {
  const { width, resultsPerDay } = data;
  const alarm = AlarmSchema.parse(config.alarm ?? {});
  const rule = EventRuleSchema.parse(config.eventRule ?? {});
  const fitted: AnomalyCandidateFit[] = [];
  try {
    for (const model of anomalyCandidates(config.anomalyModel, width))
      fitted.push(await fitCandidate(model, data, config, options));
    options.onProgress?.({ phase: 'evaluating' });
    const choice = chooseCandidate(fitted, data, alarm, rule, config.seed);
    const { shipped, scale, validationScores } = choice.chosen;
    const { sequences } = data;
    const calibration = calibrateThreshold(
      validationScores,
      sequences?.validation,
      resultsPerDay,
      alarm,
      rule,
    );
    const { threshold, quantile, from } = calibration;
    const testScores = reconstructionScores(shipped, data.test, width, scale);
    const { falseAlarmRate, falseAlarmsPerDay } = falseAlarms(
      testScores,
      sequences?.test,
      threshold,
      rule,
      resultsPerDay,
    );
    // Judged by the threshold the manifest carries, as the gateway judges.
    const labelled = data.labelled?.ranges.length
      ? labelledFigures(labelledScores(choice.chosen, data), data, round6(threshold), rule)
      : undefined;
    const metrics: ModelMetrics = {
      anomaly: {
        threshold: round6(threshold),
        quantile,
        falseAlarmRate: round6(falseAlarmRate),
        ...(resultsPerDay !== undefined && falseAlarmsPerDay !== undefined
          ? { readingsPerDay: round6(resultsPerDay), falseAlarmsPerDay: round6(falseAlarmsPerDay) }
          : {}),
        ...(labelled ? { labelled } : {}),
        model: choice.chosen.model,
        ...(choice.candidates ? { candidates: choice.candidates } : {}),
      },
      testRows: testScores.length,
    };
    const notices = [
      choice.notice,
      from === 'events'
        ? `threshold ${Number(threshold.toPrecision(6))} (the ${Number(quantile.toPrecision(6))} score quantile): ${alarm.falseAlarmsPerDay} false alarm(s) a day per series under the event rule (${rule.k} of ${rule.n} results over it), from the ${Number(calibration.eventsPerDayAtTail?.toPrecision(3))} events a day it opens on held-out normal ${data.unit}s at their 90th percentile`
        : from === 'budget'
          ? `threshold at the ${Number(quantile.toPrecision(6))} score quantile: ${alarm.falseAlarmsPerDay} false alarm(s) a day per series at ${Math.round(resultsPerDay ?? 0)} ${data.unit}s a day (time column '${data.time}'), an event being ${rule.k} of ${rule.n} results over it`
          : from === 'config'
            ? `threshold at the configured score quantile ${quantile}`
            : `threshold at the ${quantile} score quantile: without a time column ("time") the false-alarm budget cannot be turned into a rate`,
    ];
    if (data.labelled) notices.push(...data.labelled.notices);
    if (data.labelled && labelled) {
      notices.push(
        `${data.labelled.excluded} ${data.unit}(s) in or overlapping ${labelled.ranges} labelled event range(s) (events.csv) left out of training and threshold calibration`,
        `labelled events: ${labelledText(labelled)}`,
      );
    } else if (config.gateMinEventRecall !== undefined) {
      notices.push(
        `gateMinEventRecall ${config.gateMinEventRecall} is not applied: there are no labelled event ranges (upload events.csv beside the dataset, or --events)`,
      );
    }
    return {
      metrics,
      golden: golden(shipped),
      artifacts: choice.chosen.artifacts,
      shape: { inputWidth: width, hidden: choice.chosen.hidden, classes: width },
      epochsRun: choice.chosen.epochsRun,
      bestEpoch: choice.chosen.bestEpoch,
      anomaly: {
        threshold: round6(threshold),
        eventRule: { k: rule.k, n: rule.n, m: rule.m },
        ...(data.time ? { time: data.time } : {}),
        ...(data.series ? { series: data.series } : {}),
        residualScale: scale,
        // Held-out normal scores as the gateway rounds them: the fleet's score drift reference.
        ...(testScores.length ? { scoreHistogram: scoreHistogram(testScores) } : {}),
      },
      notices,
    };
  } finally {
    for (const candidate of fitted) candidate.shipped.dispose();
  }
}

const round6 = (v: number) => Number(v.toPrecision(6));

/** A fitted candidate as it ships: its saved artifacts reloaded, its residual scales and validation scores. */
interface AnomalyCandidateFit {
  model: AnomalyModel;
  artifacts: ModelArtifactBytes;
  shipped: LayersModel;
  hidden: number[];
  epochsRun: number;
  bestEpoch: number;
  scale: number[];
  validationScores: Float32Array;
}

/**
 * One candidate fitted on the training vectors: the autoencoder with early stopping on the
 * validation vectors' reconstruction loss, the PCA in one pass. Both are scored as shipped
 * (saved, quantized as configured, and loaded back), residual scales from the training vectors.
 */
async function fitCandidate(
  model: AnomalyModel,
  data: AnomalyVectors,
  config: TrainingConfig,
  options: TrainRunOptions,
): Promise<AnomalyCandidateFit> {
  const { width } = data;
  let built: { model: LayersModel; hidden: number[]; epochsRun: number; bestEpoch: number };
  if (model === 'pca' || model === 'ppca') {
    const pca = buildPcaModel(data.train, width, model === 'ppca');
    built = { model: pca.model, hidden: [pca.axes], epochsRun: 0, bestEpoch: 0 };
  } else {
    const autoencoder = buildAutoencoder(width, config.seed);
    const tensors = {
      train: tf.tensor2d(data.train, [data.train.length / width, width]),
      validation: tf.tensor2d(data.validation, [data.validation.length / width, width]),
    };
    try {
      const fitted = await fitMlp(
        autoencoder,
        { x: tensors.train, y: tensors.train },
        { x: tensors.validation, y: tensors.validation },
        fitOptions(config, options, anomalyObjective(width), []),
      );
      built = { model: autoencoder, hidden: autoencoderHidden(width), ...fitted };
    } catch (error) {
      autoencoder.dispose();
      throw error;
    } finally {
      tf.dispose([tensors.train, tensors.validation]);
    }
  }
  const artifacts = await saveModelArtifacts(built.model, config.quantize);
  built.model.dispose();
  const shipped = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  const scale = residualScale(data.train, reconstructions(shipped, data.train, width), width);
  return {
    model,
    artifacts,
    shipped,
    hidden: built.hidden,
    epochsRun: built.epochsRun,
    bestEpoch: built.bestEpoch,
    scale,
    validationScores: reconstructionScores(shipped, data.validation, width, scale),
  };
}

/**
 * The candidate that ships, and what its choice rests on: each candidate's false alarms on one
 * half of the validation results at thresholds calibrated on the other
 * (`heldOutAlarms`; the test results, which the metrics report, take no part), and with
 * labelled ranges its separation of them at its threshold from all validation results
 * (`chooseAnomalyModel` weighs them).
 */
function chooseCandidate(
  fitted: readonly AnomalyCandidateFit[],
  data: AnomalyVectors,
  alarm: Alarm,
  rule: EventRuleSpec,
  seed: number,
): { chosen: AnomalyCandidateFit; candidates?: AnomalyCandidate[]; notice: string } {
  const only = fitted[0] as AnomalyCandidateFit;
  if (fitted.length === 1)
    return {
      chosen: only,
      notice: `anomaly model: ${describeCandidate(only)}, as "anomalyModel" pins it`,
    };
  const series = data.sequences?.validation;
  const departed = departures(data.validation, data.width, seed);
  const figures = fitted.map((candidate) => {
    const scores = candidate.validationScores;
    const heldOut = heldOutAlarms(scores, series, data.resultsPerDay, alarm, rule);
    // Its threshold from all its held-out scores, as the shipped one is set.
    const calibration = calibrateThreshold(scores, series, data.resultsPerDay, alarm, rule);
    const departedScores = reconstructionScores(candidate.shipped, departed, data.width, candidate.scale);
    const departuresMissed = departedScores.filter((s) => s <= calibration.threshold).length;
    const separation = data.labelled?.ranges.length ? separationOf(candidate, data, calibration, rule) : {};
    return {
      fit: candidate,
      model: candidate.model,
      overThreshold: heldOut.overThreshold,
      overQuantile: heldOut.overQuantile,
      departuresMissed,
      // What the metrics keep of it.
      figures: {
        model: candidate.model,
        falseAlarmRate: round6(heldOut.falseAlarmRate),
        departuresFound: round6(1 - departuresMissed / Math.max(1, departedScores.length)),
        ...(heldOut.falseAlarmsPerDay !== undefined
          ? { falseAlarmsPerDay: round6(heldOut.falseAlarmsPerDay) }
          : {}),
        overQuantile: round6(heldOut.overQuantileShare),
        ...separation,
      },
      ...separation,
    };
  });
  const { chosen, tied } = chooseAnomalyModel(figures);
  const percent = (share: number) => `${(share * 100).toFixed(1)}%`;
  const shares = figures
    .map(
      (f) =>
        `${f.model} ${percent(f.figures.falseAlarmRate)} and ${percent(f.figures.overQuantile)}, ${percent(f.figures.departuresFound)} of departures found`,
    )
    .join(', ');
  const by =
    tied.length === 1
      ? 'the fewest'
      : chosen.eventRecall !== undefined
        ? `as few within noise; it separates the labelled events best (event recall ${chosen.eventRecall}, score ratio ${chosen.scoreRatio})`
        : 'as few within noise; it sees a change in any direction, where a PCA is blind along its own axes';
  return {
    chosen: chosen.fit,
    candidates: figures.map((f) => f.figures),
    notice: `anomaly model: ${describeCandidate(chosen.fit)}, chosen by half of the held-out normal ${data.unit}s over thresholds from the other half, the calibrated one and the ${COMPARED_QUANTILE} score quantile (${shares}): ${by} ("anomalyModel" pins one)`,
  };
}

/** "pca (3 principal axes)" or "autoencoder (hidden 16-4-16)". */
function describeCandidate(candidate: AnomalyCandidateFit): string {
  return candidate.model !== 'autoencoder'
    ? `${candidate.model} (${candidate.hidden[0]} principal axes)`
    : `autoencoder (hidden ${candidate.hidden.join('-')})`;
}

/** A candidate's labelled event recall at a threshold and its score ratio (labelled-events.ts). */
function separationOf(
  candidate: AnomalyCandidateFit,
  data: AnomalyVectors,
  calibration: Calibration,
  rule: EventRuleSpec,
): { eventRecall?: number; scoreRatio?: number } {
  const labelled = data.labelled;
  if (!labelled) return {};
  const results = labelledScores(candidate, data);
  const ratio = scoreRatio(results, labelled.ranges, labelled.spanMs);
  return {
    eventRecall: labelledFigures(results, data, round6(calibration.threshold), rule).recall,
    ...(ratio !== undefined ? { scoreRatio: round6(ratio) } : {}),
  };
}

/** Training rows the novelty PCA reads at most (every n-th row above): its cost grows with rows x width². */
const NOVELTY_MAX_ROWS = 50_000;

/**
 * A classifier's novelty score (shared/training/novelty.ts) and what it says of the test rows,
 * unless the config turns it off or a class is already called `unknown`.
 */
/** The inputs a novelty fit reads: training, held-out and test rows (or windows), and the golden ones. */
export function classifierNovelty(
  config: TrainingConfig,
  labels: readonly string[],
  width: number,
  x: { train: Float32Array; validation: Float32Array; test: Float32Array; golden: Float32Array },
):
  | { spec?: NonNullable<Manifest['novelty']>; metrics: NonNullable<ModelMetrics['novelty']>; notice: string }
  | undefined {
  if (config.novelty === false) return undefined;
  const quantile = config.novelty?.quantile ?? DEFAULT_NOVELTY_QUANTILE;
  if (labels.includes(UNKNOWN_CLASS))
    return {
      metrics: { threshold: 0, quantile, unknownRate: 0 },
      notice: `no novelty score: a class is already called '${UNKNOWN_CLASS}', the answer it would give readings far from the training data`,
    };
  const rows = x.train.length / width;
  const step = Math.max(1, Math.ceil(rows / NOVELTY_MAX_ROWS));
  const sample =
    step === 1
      ? x.train
      : Float32Array.from(
          { length: Math.floor(rows / step) * width },
          (_, k) => x.train[Math.floor(k / width) * step * width + (k % width)] as number,
        );
  // Held-out rows set the threshold; without enough of them, the training rows do.
  const heldOut = x.validation.length / width >= 30 ? x.validation : sample;
  const fitted = fitNovelty(sample, heldOut, width, quantile);
  const spec = {
    ...fitted,
    golden: Array.from({ length: x.golden.length / width }, (_, i) =>
      Number(noveltyScore(x.golden, width, i, fitted).toPrecision(7)),
    ),
  };
  const rate = unknownRate(x.test, width, fitted);
  return {
    spec,
    metrics: { threshold: fitted.threshold, quantile, unknownRate: Number(rate.toPrecision(4)) },
    notice: `novelty: a reading whose input is further from the training inputs than the ${quantile} quantile of held-out rows (score ${fitted.threshold}, ${fitted.components.length} principal directions) is answered '${UNKNOWN_CLASS}' with the class it would have been; ${(rate * 100).toFixed(2)}% of test rows were (config "novelty": false turns it off)`,
  };
}

/** Scores as results carry them (7 digits), in the fleet's scale-free value histogram. */
function scoreHistogram(scores: ArrayLike<number>): [number, number][] {
  const histogram: Histogram = {};
  for (let i = 0; i < scores.length; i++)
    addValueToHistogram(histogram, Number((scores[i] as number).toPrecision(7)));
  return histogramPairs(histogram);
}

/**
 * The shipped model over the labelled series' results in time order, by the event rule, against
 * the ranges. A fault shows up to a result's span and the rule's n results after it ends: the slack.
 */
function labelledFigures(
  results: LabelledResults,
  data: AnomalyVectors,
  threshold: number,
  rule: EventRuleSpec,
): LabelledMetrics {
  const labelled = data.labelled as LabelledVectors;
  const slackMs = labelled.spanMs + (data.resultsPerDay ? (rule.n * 86_400_000) / data.resultsPerDay : 0);
  return evaluateLabelled(results, threshold, rule, labelled.ranges, slackMs);
}

/** A candidate's scores of the labelled series' results, in time order. */
function labelledScores(candidate: AnomalyCandidateFit, data: AnomalyVectors): LabelledResults {
  const labelled = data.labelled as LabelledVectors;
  return {
    scores: reconstructionScores(candidate.shipped, labelled.x, data.width, candidate.scale),
    series: labelled.series,
    times: labelled.times,
  };
}

/** The labelled-range bookkeeping of a row model's pass, or undefined without ranges. */
function labelledRowsOf(
  events: readonly LabelledRange[] | undefined,
  header: readonly string[],
  timeAt: number,
  seriesAt: number,
  time: string | undefined,
): LabelledRows | undefined {
  if (!events?.length) return undefined;
  if (timeAt < 0)
    throw new InputError(
      `labelled event ranges (events.csv) need the rows' time column${time ? `, but '${time}' is not in the header` : ': set "time" in the config (or --time)'}`,
    );
  return new LabelledRows(new EventRanges(events), header, timeAt, seriesAt);
}

/** A series' readings a day (the median over series: the budget is per series). */
function perSeriesRate(rates: ReadonlyMap<string, ReadingRate>): number | undefined {
  const known = [...rates.values()].flatMap((r) => r.perDay() ?? []).sort((a, b) => a - b);
  return known.length ? known[Math.floor(known.length / 2)] : undefined;
}

/** Training rows the tuner searches on (in memory); above, one recipe trains streaming. */
export const TUNE_MAX_ROWS = 50_000;

type TrainVectors = ReturnType<typeof vectorsOf>;

interface Fitted {
  model: LayersModel;
  shape: MlpShape;
  epochsRun: number;
  bestEpoch: number;
  tuning?: TuningReport;
}

/** The tuner's search on the held rows (shared/training/tune.ts); the winner is returned. */
async function fitTuned(
  train: TrainVectors,
  validationStore: RowStore,
  preprocessing: Preprocessing,
  config: TrainingConfig,
  options: TrainRunOptions,
): Promise<Fitted> {
  const tuning = TuningConfigSchema.parse(config.tuning ?? {});
  const classes = outputUnits(preprocessing);
  const regression = preprocessing.target !== undefined;
  const { model, shape, report } = await tuneMlp(
    {
      x: train.x,
      labels: train.labels,
      width: preprocessing.inputWidth,
      classes,
      validation: vectorsOf(validationStore, preprocessing, seededOrder(validationStore.size, config.seed)),
      classWeight: regression ? {} : classWeights(train.labels, classes),
      objective: objectiveFor(preprocessing.task, classes),
      ...(preprocessing.target ? { targetStd: preprocessing.target.std } : {}),
    },
    {
      seed: config.seed,
      candidates: tuning.candidates,
      maxEpochs: config.epochs,
      maxMs: tuning.maxSeconds * 1000,
      refit: tuning.refit,
      ensemble: tuning.ensemble,
      onCandidate: (done, of) => options.onProgress?.({ phase: 'training', candidate: done, candidates: of }),
    },
  );
  const winner = report.candidates[report.chosen];
  const epochSteps = Math.ceil(train.labels.length / (winner?.batchSize ?? config.batchSize));
  return {
    model,
    shape,
    epochsRun: Math.ceil((winner?.steps ?? 0) / epochSteps),
    bestEpoch: Math.ceil((winner?.bestStep ?? 0) / epochSteps),
    tuning: report,
  };
}

/** One recipe, fed batch by batch from the held vectors (large datasets). */
async function fitStreaming(
  train: TrainVectors,
  validationStore: RowStore,
  preprocessing: Preprocessing,
  config: TrainingConfig,
  options: TrainRunOptions,
): Promise<Fitted> {
  const k = outputUnits(preprocessing);
  const objective = objectiveFor(preprocessing.task, k);
  const shape = mlpShape(preprocessing.inputWidth, k, train.labels.length);
  const model = buildMlp(shape, config.seed, undefined, objective);
  const validation = tf.tidy(() => {
    const stored = vectorsOf(validationStore, preprocessing, seededOrder(validationStore.size, config.seed));
    return {
      x: tf.tensor2d(stored.x, [stored.labels.length, preprocessing.inputWidth]),
      y: tf.tensor2d(objective.targets(stored.labels), [stored.labels.length, k]),
    };
  });
  try {
    options.onProgress?.({ phase: 'training', epoch: 0, epochs: config.epochs });
    const fitted = await fitMlpBatches(
      model,
      () => batchesOf(train, preprocessing.inputWidth, objective, config.batchSize),
      validation,
      fitOptions(config, options, objective, train.labels),
    );
    return { model, shape, epochsRun: fitted.epochsRun, bestEpoch: fitted.bestEpoch };
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    tf.dispose([validation.x, validation.y]);
  }
}

function boundsText(bounds: { min?: number; max?: number }): string {
  return `[${bounds.min ?? '-inf'}, ${bounds.max ?? 'inf'}]`;
}

/**
 * One early-stopped fit's options: the config's epochs and batch size, patience, class
 * weights for a classifier, and progress reports (the row and window trainers share them).
 */
export function fitOptions(
  config: TrainingConfig,
  options: TrainRunOptions,
  objective: Objective,
  labels: ArrayLike<number> & Iterable<number>,
): FitOptions {
  return {
    epochs: config.epochs,
    batchSize: config.batchSize,
    patience: options.patience ?? Math.max(5, Math.round(config.epochs / 6)),
    ...(objective.task === 'classification' ? { classWeight: classWeights(labels, objective.units) } : {}),
    onEpoch: (progress) => {
      options.onEpoch?.(progress);
      options.onProgress?.({ phase: 'training', epoch: progress.epoch, epochs: progress.epochs });
    },
  };
}

/** A seeded permutation of 0..n-1 (Fisher-Yates), as compact as the rows it orders. */
function seededOrder(n: number, seed: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const random = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = order[i] as number;
    order[i] = order[j] as number;
    order[j] = a;
  }
  return order;
}

/**
 * The rows of a store as vectors (the device's transform) in `order`, with their labels:
 * class indices, or standardized targets for regression.
 */
function vectorsOf(store: RowStore, preprocessing: Preprocessing, order: Uint32Array) {
  const width = preprocessing.inputWidth;
  const scale = preprocessing.target;
  const x = new Float32Array(order.length * width);
  const labels = scale ? new Float32Array(order.length) : new Uint8Array(order.length);
  const row: MutableRow = {};
  for (let j = 0; j < order.length; j++) {
    const i = order[j] as number;
    transformInto(preprocessing, store.rowAt(i, row), x, j * width);
    labels[j] = scale ? standardizeTarget(store.labelAt(i), scale) : store.labelAt(i);
  }
  return { x, labels };
}

/** The widest vector the profiled columns can give (categoricals capped at maxCategories + 1). */
function maxInputWidth(profile: DatasetProfile): number {
  return profile.columns.reduce((sum, column) => {
    if (column.kind === 'numeric') return sum + 1;
    if (column.kind === 'date') return sum + 4;
    if (column.kind === 'categorical')
      return sum + Math.min(column.distinct, DATASET_LIMITS.maxCategories) + 1;
    return sum;
  }, 0);
}

/** One epoch's batches, made as they are asked for: one batch of tensors exists at a time. */
function* batchesOf(
  train: TrainVectors,
  width: number,
  objective: Objective,
  batchSize: number,
): Generator<Batch> {
  const n = train.labels.length;
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    yield {
      xs: tf.tensor2d(train.x.subarray(start * width, (start + size) * width), [size, width]),
      ys: tf.tensor2d(objective.targets(train.labels.subarray(start, start + size)), [size, objective.units]),
    };
  }
}

/**
 * Tempered balanced class weights, (n / (k * count))^0.25: rare classes weigh more, but not
 * so much that accuracy on the common ones is traded away (the fourth root measured best
 * on the bench datasets; full balancing cost up to 16 points of accuracy on seattle-weather).
 */
export const CLASS_WEIGHT_POWER = 0.25;

export function classWeights(
  y: ArrayLike<number> & Iterable<number>,
  classes: number,
): Record<number, number> {
  const counts = new Array<number>(classes).fill(0);
  for (const c of y) counts[c] = (counts[c] ?? 0) + 1;
  const weights: Record<number, number> = {};
  counts.forEach((count, c) => {
    weights[c] = count ? (y.length / (classes * count)) ** CLASS_WEIGHT_POWER : 1;
  });
  return weights;
}

function classDistribution(profile: DatasetProfile): Record<string, number> {
  const total = profile.stats.rowsKept;
  return Object.fromEntries(
    profile.labels.map((name, c) => [name, Math.round(((profile.classCounts[c] ?? 0) / total) * 1e6) / 1e6]),
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
  const k = outputUnits(preprocessing);
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

/** RMSE of an already released regression model on new held-out rows and their targets. */
export async function rmseOnRows(
  artifacts: ModelArtifactBytes,
  preprocessing: Preprocessing,
  rows: readonly RawRow[],
  truth: readonly string[],
): Promise<number> {
  const scale = preprocessing.target;
  if (!scale) throw new Error('the release is not a regression model: it has no target scale');
  await initTf();
  const model = await loadModelFromArtifacts(artifacts.modelJson, artifacts.weights);
  try {
    const outputs = predictProbabilities(model, transformRows(preprocessing, rows), preprocessing.inputWidth);
    const values = Array.from(outputs, (o) => targetValue(o, scale));
    return regressionMetrics(truth.map(targetNumber), values, scale.mean).rmse;
  } finally {
    model.dispose();
  }
}
