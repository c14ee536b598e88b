import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { generateSigningKeyPair, pemSigner, sha256Hex, signManifest } from '../../../shared/manifest.ts';
import { describeZodError, TrainingConfigSchema } from '../../../shared/schemas.ts';
import { signerFromEnv } from '../../../shared/signing.ts';
import { modelFiles } from '../../../shared/topology.ts';
import { artifactFiles, buildManifest, manifestBytes } from '../../../shared/training/artifacts.ts';
import type { EpochProgress } from '../../../shared/training/model.ts';
import { trainFromCsv } from '../../../shared/training/train.ts';
import { defineCommand, intOption, modelOption, UsageError } from '../command.ts';
import { progressBar } from '../ui.ts';

/** Name of the public key written next to an offline model signed with an ephemeral key. */
export const OFFLINE_PUBLIC_KEY = 'signing-public.pem';

export const trainCommand = defineCommand({
  name: 'train',
  summary: 'train a model from a CSV offline, with the same code the training function uses',
  usage:
    'edgeloop train FILE --model NAME [--label COL] [--features A,B] [--out DIR] [--epochs N] [--seed N] [--quantize none|uint8|float16] [--key PEM] [--json]',
  examples: [
    'edgeloop train telemetry.csv --model pump --label condition',
    'edgeloop train readings.csv --model pump --out ./pump-v1 --epochs 40 --json',
  ],
  positionals: [1, 1],
  options: {
    model: { type: 'string', description: 'model name (a-z, 0-9, -)', valueName: 'NAME' },
    label: { type: 'string', description: 'label column (default: the last column)', valueName: 'COL' },
    features: {
      type: 'string',
      description: 'comma-separated feature columns (default: all usable)',
      valueName: 'A,B',
    },
    out: { type: 'string', description: 'output directory (default: ./models/NAME)', valueName: 'DIR' },
    epochs: { type: 'string', description: 'maximum epochs (early stopping may end sooner)', valueName: 'N' },
    'batch-size': { type: 'string', description: 'mini-batch size', valueName: 'N' },
    seed: { type: 'string', description: 'random seed (same seed + backend = same model)', valueName: 'N' },
    quantize: {
      type: 'string',
      description: 'weight quantization: none, uint8 or float16',
      valueName: 'KIND',
    },
    key: {
      type: 'string',
      description: 'PEM private key to sign with (default: a new key pair)',
      valueName: 'PEM',
    },
  },
  async run({ values, positionals, out, err }) {
    const file = positionals[0] as string;
    const model = modelOption(values, true);
    if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`no such file: ${file}`);
    const config = parseConfig(values);
    const outDir = resolve(typeof values.out === 'string' ? values.out : join('models', model));
    const bar = progressBar({
      label: 'train',
      total: config.epochs,
      format: (epoch, epochs) => `epoch ${epoch}/${epochs}`,
      silent: values.json === true || values.quiet === true,
    });
    let lastEpoch: EpochProgress | undefined;
    const onEpoch = (progress: EpochProgress) => {
      lastEpoch = progress;
      bar.update(progress.epoch, epochDetail(progress));
    };

    const bytes = await readFile(file);
    const started = performance.now();
    const outcome = await trainFromCsv(bytes, config, {
      source: basename(file),
      onEpoch,
    });
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
      datasetKey: basename(file),
      datasetSha256: sha256Hex(bytes),
    });
    await mkdir(outDir, { recursive: true });
    let signer: Awaited<ReturnType<typeof signerFromEnv>>;
    if (typeof values.key === 'string') {
      signer = await signerFromEnv(values.key);
    } else {
      const pair = generateSigningKeyPair();
      signer = pemSigner(pair.privateKeyPem, 'ephemeral');
      await writeFile(join(outDir, OFFLINE_PUBLIC_KEY), pair.publicKeyPem);
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
      features: outcome.features,
      inputWidth: outcome.preprocessing.inputWidth,
      classes: outcome.classes,
      epochs: outcome.epochsRun,
      backend: outcome.backend,
      notices: outcome.notices,
      trainMs,
      outDir,
    };
    if (values.json) {
      out(JSON.stringify(summary));
      return 0;
    }
    if (!values.quiet) for (const notice of outcome.notices) err(`notice: ${notice}`);
    out(
      `trained ${model}: accuracy ${pct(outcome.metrics.accuracy)}, macro-F1 ${pct(outcome.metrics.macroF1 ?? 0)} on ${outcome.metrics.testRows} held-out rows`,
    );
    out(
      `  ${outcome.rows} rows, ${outcome.features.length} features (${outcome.features.join(', ')}), classes: ${outcome.classes.join(', ')}`,
    );
    out(`  ${outcome.epochsRun} epochs on ${outcome.backend} in ${(trainMs / 1000).toFixed(1)} s`);
    out(`  wrote ${outDir}/{${[modelFiles.topology, modelFiles.weights, modelFiles.manifest].join(',')}}`);
    return 0;
  },
});

function parseConfig(values: Record<string, string | boolean | undefined>) {
  const features =
    typeof values.features === 'string' ? values.features.split(',').map((f) => f.trim()) : undefined;
  const parsed = TrainingConfigSchema.safeParse({
    ...(typeof values.label === 'string' ? { label: values.label } : {}),
    ...(features ? { features: features.filter(Boolean) } : {}),
    ...optional('epochs', intOption(values, 'epochs')),
    ...optional('batchSize', intOption(values, 'batch-size')),
    ...optional('seed', intOption(values, 'seed', 0)),
    ...(typeof values.quantize === 'string' ? { quantize: values.quantize } : {}),
  });
  if (!parsed.success) throw new UsageError(describeZodError(parsed.error));
  return parsed.data;
}

function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

function pct(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

/** Loss and accuracy of one epoch, as the progress bar shows them. */
function epochDetail(progress: EpochProgress): string {
  return `loss ${progress.loss.toFixed(4)} val_loss ${progress.valLoss.toFixed(4)} val_acc ${(progress.valAccuracy * 100).toFixed(1)}%`;
}
