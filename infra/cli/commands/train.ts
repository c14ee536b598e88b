import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defineCommand, intOption, modelOption, UsageError } from '../../../shared/cli/command.ts';
import { localDatasetSource } from '../../../shared/dataset/local.ts';
import { generateSigningKeyPair, namedPublicKey, pemSigner, signManifest } from '../../../shared/manifest.ts';
import {
  describeZodError,
  type ModelMetrics,
  TrainingConfigSchema,
  type TuningReport,
} from '../../../shared/schemas.ts';
import { signerFromEnv } from '../../../shared/signing.ts';
import { trainWindowsFromSource } from '../../../shared/timeseries/train.ts';
import { modelFiles } from '../../../shared/topology.ts';
import { artifactFiles, buildManifest, manifestBytes } from '../../../shared/training/artifacts.ts';
import { labelledText, parseEventsCsv } from '../../../shared/training/labelled-events.ts';
import type { EpochProgress } from '../../../shared/training/model.ts';
import { type TrainingProgress, trainFromSource } from '../../../shared/training/train.ts';
import { formatBytes, type Progress, progressBar } from '../ui.ts';
import { windowFeatureKind, windowFromFlags, windowOptions } from '../window-options.ts';

/** Name of the public key written next to an offline model signed with an ephemeral key. */
export const OFFLINE_PUBLIC_KEY = 'signing-public.pem';

export const trainCommand = defineCommand({
  name: 'train',
  summary:
    'train a model offline from a dataset file or a folder of parts (CSV, CSV.gz, JSON Lines, Parquet), with the same code the training function uses',
  usage:
    'edgeloop train FILE|DIR --model NAME [--task classification|regression|anomaly] [--label COL] [--target-min N] [--target-max N] [--features A,B] [--out DIR] [--epochs N] [--seed N] [--quantize none|uint8|float16] [--max-train-rows N] [--buffer-mb N] [--key PEM] [--events FILE] [--json] [--time COL [--series COL] --window-ms N [--stride-ms N] [--frequency-hz N] [--features raw|spectral]]',
  examples: [
    'edgeloop train telemetry.csv --model pump --label condition',
    'edgeloop train engines.csv --model engine-life --task regression --label rul --target-max 125',
    'edgeloop train ./telemetry-parts/ --model pump --epochs 2 --max-train-rows 500000',
    'edgeloop train readings.csv --model pump --out ./pump-v1 --epochs 40 --json',
    'edgeloop train pumps.csv --model pumps --task anomaly --time ts --series pump --events events.csv',
    'edgeloop train vibration.csv --model fan --label state --time ts --series machine --window-ms 1000 --stride-ms 500',
  ],
  positionals: [1, 1],
  options: {
    model: { type: 'string', description: 'model name (a-z, 0-9, -)', valueName: 'NAME' },
    task: {
      type: 'string',
      description: 'what the model answers: classification (a class, the default) or regression (a number)',
      valueName: 'TASK',
    },
    label: { type: 'string', description: 'label column (default: the last column)', valueName: 'COL' },
    'target-min': {
      type: 'string',
      description: 'regression: the lowest value (targets below are capped, predictions clipped)',
      valueName: 'N',
    },
    'target-max': {
      type: 'string',
      description: 'regression: the highest value (e.g. 125 to cap remaining life)',
      valueName: 'N',
    },
    features: {
      type: 'string',
      description: 'comma-separated feature columns (default: all usable)',
      valueName: 'A,B',
    },
    out: { type: 'string', description: 'output directory (default: ./models/NAME)', valueName: 'DIR' },
    epochs: { type: 'string', description: 'maximum epochs (early stopping may end sooner)', valueName: 'N' },
    'batch-size': { type: 'string', description: 'mini-batch size', valueName: 'N' },
    seed: { type: 'string', description: 'random seed (same seed + backend = same model)', valueName: 'N' },
    'max-train-rows': {
      type: 'string',
      description: 'training rows per epoch at most: a seeded stratified sample beyond (default 1000000)',
      valueName: 'N',
    },
    'buffer-mb': {
      type: 'string',
      description: 'memory for the sampled rows, in MiB (default 256)',
      valueName: 'N',
    },
    quantize: {
      type: 'string',
      description: 'weight quantization: none, uint8 or float16',
      valueName: 'KIND',
    },
    events: {
      type: 'string',
      description:
        'anomaly: labelled event ranges (CSV series,start,end[,kind]): never trained on, they give event recall, precision and delay',
      valueName: 'FILE',
    },
    key: {
      type: 'string',
      description: 'PEM private key to sign with (default: a new key pair)',
      valueName: 'PEM',
    },
    ...windowOptions,
  },
  async run({ values, positionals, out, err }) {
    const file = positionals[0] as string;
    const model = modelOption(values, true);
    if (!existsSync(file)) throw new UsageError(`no such file: ${file}`);
    const config = parseConfig(values);
    const events = await eventsOption(values, config);
    const outDir = resolve(typeof values.out === 'string' ? values.out : join('models', model));
    const silent = values.json === true || values.quiet === true;
    const source = await localDatasetSource(file);
    const bytesTotal = source.parts.reduce((sum, part) => sum + (part.size ?? 0), 0);
    const passBar = (label: string) =>
      progressBar({ label, total: bytesTotal, format: (done) => formatBytes(done), silent });
    const bars: Partial<Record<TrainingProgress['phase'], Progress>> = {};
    const bar = progressBar({
      label: 'train',
      total: config.epochs,
      format: (epoch, epochs) => `epoch ${epoch}/${epochs}`,
      silent,
    });
    let tuneBar: Progress | undefined;
    let lastEpoch: EpochProgress | undefined;
    let rowsParsed = 0;
    const onEpoch = (progress: EpochProgress) => {
      lastEpoch = progress;
      bar.update(progress.epoch, epochDetail(progress));
    };
    // Rows parsed and bytes read while a pass streams: pass 1 profiles, pass 2 samples.
    const rowsText = () => `${rowsParsed.toLocaleString('en-US')} rows`;
    let phase: TrainingProgress['phase'] | undefined;
    const onProgress = (progress: TrainingProgress) => {
      if (progress.phase !== phase && phase) bars[phase]?.finish(rowsText());
      phase = progress.phase;
      if (progress.candidates !== undefined) {
        tuneBar ??= progressBar({
          label: 'tune',
          total: progress.candidates,
          format: (done, of) => `candidate ${done}/${of}`,
          silent,
        });
        tuneBar.update(progress.candidate ?? 0);
        return;
      }
      if (progress.phase !== 'parsing' && progress.phase !== 'sampling') return;
      const pass = bars[progress.phase] ?? passBar(progress.phase === 'parsing' ? 'parse' : 'sample');
      bars[progress.phase] = pass;
      rowsParsed = progress.rowsParsed ?? rowsParsed;
      pass.update(progress.bytesRead ?? 0, rowsText());
    };

    const started = performance.now();
    const trainer = config.window ? trainWindowsFromSource : trainFromSource;
    const outcome = await trainer(source, config, {
      source: source.name,
      onEpoch,
      onProgress,
      ...(events ? { events } : {}),
    });
    tuneBar?.finish();
    if (!tuneBar)
      bar.finish(
        lastEpoch && lastEpoch.epoch < lastEpoch.epochs
          ? `${epochDetail(lastEpoch)} (stopped early: no better validation loss)`
          : lastEpoch && epochDetail(lastEpoch),
      );
    const trainMs = Math.round(performance.now() - started);

    const manifest = buildManifest({
      model,
      version: 1,
      outcome,
      lowConfidence: config.lowConfidence,
      maxMissingFeatures: config.maxMissingFeatures,
      datasetKey: source.name,
      datasetSha256: outcome.datasetSha256 ?? '',
    });
    await mkdir(outDir, { recursive: true });
    let signer: Awaited<ReturnType<typeof signerFromEnv>>;
    if (typeof values.key === 'string') {
      signer = await signerFromEnv(values.key);
    } else {
      const pair = generateSigningKeyPair();
      signer = pemSigner(pair.privateKeyPem);
      await writeFile(join(outDir, OFFLINE_PUBLIC_KEY), namedPublicKey(signer.keyId, pair.publicKeyPem));
    }
    const signed = await signManifest(manifest, signer);
    for (const artifact of artifactFiles(outcome))
      await writeFile(join(outDir, artifact.name), artifact.bytes);
    await writeFile(join(outDir, modelFiles.manifest), manifestBytes(signed));

    const summary = {
      model,
      version: 1,
      metrics: outcome.metrics,
      rows: outcome.rows,
      parts: outcome.parts.length,
      bytes: bytesTotal,
      ...(outcome.sample ? { sample: outcome.sample } : {}),
      features: outcome.features,
      inputWidth: outcome.preprocessing.inputWidth,
      classes: outcome.classes,
      epochs: outcome.epochsRun,
      backend: outcome.backend,
      notices: outcome.notices,
      ...(outcome.window
        ? { window: outcome.window.manifest.spec, windows: outcome.window.manifest.windows }
        : {}),
      trainMs,
      outDir,
    };
    if (values.json) {
      out(JSON.stringify(summary));
      return 0;
    }
    if (!values.quiet) for (const notice of outcome.notices) err(`notice: ${notice}`);
    const heldOut = `${outcome.metrics.testRows} held-out ${outcome.window ? `windows (series the model never saw: split by ${outcome.window.manifest.split})` : 'rows'}`;
    const regression = outcome.metrics.regression;
    const anomaly = outcome.metrics.anomaly;
    if (anomaly) {
      out(
        `trained ${model}: anomaly threshold ${num(anomaly.threshold)} (score quantile ${anomaly.quantile}); over it on ${pct(anomaly.falseAlarmRate)} of ${heldOut} of normal operation${anomaly.falseAlarmsPerDay !== undefined ? ` (about ${num(anomaly.falseAlarmsPerDay)} false alarm(s) a day per series at ${Math.round(anomaly.readingsPerDay ?? 0)} readings a day)` : ''}`,
      );
      if (anomaly.labelled) out(`  labelled events: ${labelledText(anomaly.labelled)}`);
    } else if (regression) {
      out(
        `trained ${model}: RMSE ${num(regression.rmse)}, MAE ${num(regression.mae)}, R² ${regression.r2.toFixed(3)} on ${heldOut}`,
      );
      out(`  always predicting the training mean: RMSE ${num(regression.meanRmse)}`);
    } else {
      out(
        `trained ${model}: accuracy ${pct(outcome.metrics.accuracy ?? 0)}, macro-F1 ${pct(outcome.metrics.macroF1 ?? 0)} on ${heldOut}`,
      );
      out(`  recall per class: ${perClassRecall(outcome.metrics)}`);
    }
    const target = outcome.preprocessing.target;
    out(
      `  ${outcome.rows} rows${outcome.parts.length > 1 ? ` in ${outcome.parts.length} parts` : ''}${outcome.sample ? ` (trained on a sample of ${outcome.sample.trainRows})` : ''}, ${outcome.features.length} features (${outcome.features.join(', ')}), ${target ? `target '${outcome.preprocessing.label}' (mean ${num(target.mean)}, std ${num(target.std)})` : outcome.classes.length ? `classes: ${outcome.classes.join(', ')}` : 'no labels (normal operation)'}`,
    );
    // A PCA anomaly model and a ridge regression have no epochs.
    const fit =
      outcome.metrics.anomaly?.model === 'pca' || outcome.metrics.anomaly?.model === 'ppca'
        ? 'PCA fitted in one pass'
        : outcome.metrics.regression?.model === 'ridge'
          ? 'ridge regression fitted in closed form'
          : `${outcome.epochsRun} epochs`;
    out(`  ${fit} on ${outcome.backend} in ${(trainMs / 1000).toFixed(1)} s`);
    if (outcome.tuning) for (const line of tuningTable(outcome.tuning)) out(`  ${line}`);
    out(`  wrote ${outDir}/{${[modelFiles.topology, modelFiles.weights, modelFiles.manifest].join(',')}}`);
    return 0;
  },
});

function parseConfig(values: Record<string, string | boolean | undefined>) {
  // An anomaly model on rows: --time names the time column (never a feature), without a window.
  const rowsTime = values.task === 'anomaly' && values['window-ms'] === undefined ? values.time : undefined;
  const window = rowsTime === undefined ? windowFromFlags(values) : undefined;
  const features =
    typeof values.features === 'string' && !windowFeatureKind(values)
      ? values.features.split(',').map((f) => f.trim())
      : undefined;
  const target = {
    ...optional('min', numberOption(values, 'target-min')),
    ...optional('max', numberOption(values, 'target-max')),
  };
  const parsed = TrainingConfigSchema.safeParse({
    ...(typeof values.task === 'string' ? { task: values.task } : {}),
    ...(typeof rowsTime === 'string' ? { time: rowsTime } : {}),
    ...(typeof rowsTime === 'string' && typeof values.series === 'string' ? { series: values.series } : {}),
    ...(Object.keys(target).length ? { target } : {}),
    ...(typeof values.label === 'string' ? { label: values.label } : {}),
    ...(features ? { features: features.filter(Boolean) } : {}),
    ...optional('epochs', intOption(values, 'epochs')),
    ...optional('batchSize', intOption(values, 'batch-size')),
    ...optional('seed', intOption(values, 'seed', 0)),
    ...sampleOptions(values),
    ...(typeof values.quantize === 'string' ? { quantize: values.quantize } : {}),
    ...(window ? { window } : {}),
  });
  if (!parsed.success) throw new UsageError(describeZodError(parsed.error));
  return parsed.data;
}

/** --events FILE: the labelled event ranges of an anomaly run (parse errors name the file and line). */
async function eventsOption(
  values: Record<string, string | boolean | undefined>,
  config: ReturnType<typeof parseConfig>,
) {
  const file = values.events;
  if (typeof file !== 'string') return undefined;
  if (config.task !== 'anomaly') throw new UsageError('--events is for anomaly models: add --task anomaly');
  if (!existsSync(file)) throw new UsageError(`no such file: ${file}`);
  return parseEventsCsv(await readFile(file, 'utf8'), `${file}: `, config.window?.timeUnit ?? 'ms');
}

function sampleOptions(values: Record<string, string | boolean | undefined>) {
  const sample = {
    ...optional('maxTrainRows', intOption(values, 'max-train-rows')),
    ...optional('bufferMb', intOption(values, 'buffer-mb')),
  };
  return Object.keys(sample).length ? { sample } : {};
}

function numberOption(
  values: Record<string, string | boolean | undefined>,
  name: string,
): number | undefined {
  const raw = values[name];
  if (typeof raw !== 'string') return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value))
    throw new UsageError(`--${name} must be a number, got '${raw}'`);
  return value;
}

function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** The tuner's candidates, one line each, the chosen one marked. */
function tuningTable(report: TuningReport): string[] {
  const refit = report.refit ? `, refitted on training + validation rows (${report.refit.steps} steps)` : '';
  const leader = report.continued === undefined ? undefined : report.candidates[report.continued];
  const rounds = leader?.firstSteps
    ? `; each raced ${leader.firstSteps} steps, the best trained on to ${leader.steps ?? leader.maxSteps}`
    : '';
  const lines = [
    `tuning: ${report.candidates.length} candidates in ${(report.ms / 1000).toFixed(1)} s${rounds}${refit}`,
  ];
  const members = new Set(report.ensemble?.members ?? [report.chosen]);
  // Regression candidates are scored by validation RMSE (target units), classifiers by accuracy.
  const regression = report.candidates.some((c) => c.validationRmse !== undefined);
  const validationScore = (score: { validationAccuracy?: number; validationRmse?: number }) =>
    regression ? num(score.validationRmse ?? Number.NaN) : pct(score.validationAccuracy ?? 0);
  if (report.ensemble)
    lines.push(
      `  ships the mean of ${members.size} candidates (* the winner, + the others): val ${regression ? 'RMSE' : 'acc'} ${validationScore(report.ensemble)}`,
    );
  lines.push(
    `    hidden    lr      batch  l2      weighted  steps  ${regression ? 'val RMSE' : 'val acc '} val loss`,
  );
  report.candidates.forEach((c, i) => {
    const scores = c.skipped
      ? `skipped: ${c.skipped}`
      : `${String(c.steps ?? 0).padEnd(6)} ${validationScore(c).padEnd(8)} ${(c.validationLoss ?? 0).toFixed(4)}`;
    lines.push(
      `  ${i === report.chosen ? '*' : members.has(i) ? '+' : ' '} ${c.hidden.join('-').padEnd(9)} ${String(c.learningRate).padEnd(7)} ${String(c.batchSize).padEnd(6)} ${String(c.l2).padEnd(7)} ${(c.classWeighted ? 'yes' : 'no').padEnd(9)} ${scores}`,
    );
  });
  return lines;
}

/** "normal 97.1% (n=35), fault 60.0% (n=5)": each class's recall and held-out rows. */
function perClassRecall(metrics: ModelMetrics): string {
  return Object.entries(metrics.perClass ?? {})
    .map(([name, m]) => `${name} ${pct(m.recall)} (n=${m.support})`)
    .join(', ');
}

function pct(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

/** A value in target units, to 4 significant digits. */
function num(value: number): string {
  return Number(value.toPrecision(4)).toString();
}

/** Loss and accuracy of one epoch, as the progress bar shows them (regression and anomaly fits have no accuracy). */
function epochDetail(progress: EpochProgress): string {
  const accuracy = Number.isNaN(progress.valAccuracy)
    ? ''
    : ` val_acc ${(progress.valAccuracy * 100).toFixed(1)}%`;
  return `loss ${progress.loss.toFixed(4)} val_loss ${progress.valLoss.toFixed(4)}${accuracy}`;
}
