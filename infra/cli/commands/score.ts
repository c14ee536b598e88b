/**
 * `edgeloop score`: what a model would have answered for a file of readings, computed by the
 * gateway's own code (device/score.ts). The model comes from what `edgeloop train --out` wrote,
 * or from the local stack's registry and models bucket.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { type LoadedModel, loadModelFromBytes, probationFailure } from '../../../device/model/model.ts';
import { digestMismatch } from '../../../device/model/model-store.ts';
import { anomalyEvents, type ScoreOutcome, scoreReadings } from '../../../device/score.ts';
import { listRegistry } from '../../../functions/training/registry.ts';
import type { AnomalyEvent } from '../../../shared/anomaly.ts';
import { dynamoClient, s3Client } from '../../../shared/aws.ts';
import { dataDirOption, defineCommand, UsageError } from '../../../shared/cli/command.ts';
import { localReadings } from '../../../shared/dataset/local.ts';
import { EdgeloopError, errorMessage } from '../../../shared/errors.ts';
import { type InferenceResult, type Manifest, ManifestSchema, ModelName } from '../../../shared/schemas.ts';
import { targetNumber } from '../../../shared/target.ts';
import { buckets, modelFiles, modelKeys, tables } from '../../../shared/topology.ts';
import { attachToLocalStack } from '../../local/attach.ts';

export const scoreCommand = defineCommand({
  name: 'score',
  summary: "backtest: what a model answers for a file of readings, by the gateway's own code",
  usage:
    'edgeloop score DIR FILE [--jsonl] | edgeloop score --model NAME[@VERSION] FILE [--jsonl] [--data-dir DIR]',
  examples: [
    'edgeloop score models/pump last-month.csv',
    'edgeloop score --model pump@3 last-month.parquet --jsonl > scored.jsonl',
  ],
  positionals: [1, 2],
  options: {
    model: {
      type: 'string',
      description: "a model in the local stack's registry: NAME (its release) or NAME@VERSION",
      valueName: 'NAME[@VERSION]',
    },
    jsonl: { type: 'boolean', description: 'one JSON line per result instead of the summary' },
    'data-dir': dataDirOption,
  },
  async run({ values, positionals, out, err }) {
    const wanted = typeof values.model === 'string' ? values.model : undefined;
    if (wanted ? positionals.length !== 1 : positionals.length !== 2)
      throw new UsageError(
        wanted
          ? 'with --model, give only the readings file: edgeloop score --model NAME[@VERSION] FILE'
          : 'give the model directory and the readings file: edgeloop score DIR FILE (or --model NAME FILE)',
      );
    const file = positionals[positionals.length - 1] as string;
    const model = wanted
      ? await registryModel(wanted, String(values['data-dir']))
      : await directoryModel(positionals[0] as string);
    const failure = probationFailure(model);
    if (failure) {
      model.dispose();
      throw new EdgeloopError(
        `model v${model.version} fails its golden check (${failure}): a gateway would not serve it`,
      );
    }
    const readings = await localReadings(file);
    const { manifest } = model;
    const outcome = await scoreReadings(model, readings);
    const found = manifest.anomaly ? anomalyEvents(outcome.results, manifest) : undefined;
    if (values.jsonl) {
      outcome.results.forEach((result, i) => {
        const event = found?.eventOf[i];
        out(
          JSON.stringify({
            ...(found ? { time: found.times[i] } : {}),
            ...(found?.series[i] ? { series: found.series[i] } : {}),
            ...scoreLine(result),
            ...(event ? { event } : {}),
          }),
        );
      });
    } else {
      for (const line of scoreSummary(outcome, manifest, file)) out(line);
      for (const line of found ? eventLines(found.events) : []) out(line);
    }
    const refused = Object.values(outcome.refused).reduce((a, b) => a + (b ?? 0), 0);
    if (values.jsonl && refused > 0) err(`refused ${refused} reading(s): ${refusedText(outcome)}`);
    return 0;
  },
});

/** A model saved by `edgeloop train --out DIR`: its manifest and the files it lists, digests checked. */
async function directoryModel(dir: string): Promise<LoadedModel> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name));
    } catch (error) {
      throw new UsageError(
        `${dir} is not a model directory (${name}: ${errorMessage(error)}): pass what edgeloop train --out wrote`,
      );
    }
  };
  const manifest = parseManifest(await read(modelFiles.manifest), join(dir, modelFiles.manifest));
  const files = new Map(
    await Promise.all(manifest.files.map(async (f) => [f.name, await read(f.name)] as const)),
  );
  return loadChecked(manifest, files, dir);
}

/** NAME (the current release) or NAME@VERSION from the local stack, digests checked. */
async function registryModel(wanted: string, dataDir: string): Promise<LoadedModel> {
  const [name = '', versionText] = wanted.split('@');
  if (!ModelName.safeParse(name).success) throw new UsageError(`--model: '${name}' is not a model name`);
  const version = versionText === undefined ? undefined : Number(versionText);
  if (version !== undefined && !(Number.isInteger(version) && version >= 1))
    throw new UsageError(`--model: '${versionText}' is not a version number (NAME@3)`);
  attachToLocalStack(dataDir);
  const items = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, name);
  const item =
    version === undefined
      ? items.filter((i) => i.status === 'released').sort((a, b) => b.version - a.version)[0]
      : items.find((i) => i.version === version);
  if (!item?.manifestKey)
    throw new UsageError(
      version === undefined
        ? `model ${name} has no release in the registry: see edgeloop models --model ${name}`
        : `model ${name} has no published v${version}: see edgeloop models --model ${name}`,
    );
  const s3 = s3Client();
  const get = async (key: string) => {
    const object = await s3.send(new GetObjectCommand({ Bucket: buckets.models.localName, Key: key }));
    return Buffer.from(
      await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  };
  const manifest = parseManifest(await get(item.manifestKey), item.manifestKey);
  const files = new Map(
    await Promise.all(
      manifest.files.map(
        async (f) => [f.name, await get(modelKeys.file(name, item.version, f.name))] as const,
      ),
    ),
  );
  return loadChecked(manifest, files, `${name} v${item.version}`);
}

function parseManifest(bytes: Buffer, where: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new EdgeloopError(`${where} is not JSON: ${errorMessage(error)}`);
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success)
    throw new EdgeloopError(`${where} is not an edgeloop manifest: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

async function loadChecked(
  manifest: Manifest,
  files: Map<string, Buffer>,
  where: string,
): Promise<LoadedModel> {
  const mismatch = digestMismatch(manifest, files);
  if (mismatch) throw new EdgeloopError(`${where}: ${mismatch}`);
  return loadModelFromBytes(
    files.get(modelFiles.topology) as Buffer,
    files.get(modelFiles.weights) as Buffer,
    manifest,
  );
}

/**
 * One result as `--jsonl` prints it: `time` (epoch ms: a window's last reading, or a live
 * reading's time) and `series` when there is one, then the answer (label and confidence, or
 * value) and the truth the reading carried.
 */
export function scoreLine(result: InferenceResult): Record<string, unknown> {
  const time = result.window?.end ?? result.time;
  return {
    ...(time !== undefined ? { time } : {}),
    ...(result.window ? { series: result.window.series } : {}),
    ...(result.value !== undefined
      ? { value: result.value }
      : result.score !== undefined
        ? {
            score: result.score,
            threshold: result.threshold,
            anomaly: result.anomaly,
            channels: result.channels,
          }
        : { label: result.label, confidence: result.confidence }),
    ...(result.truth !== undefined ? { truth: result.truth } : {}),
  };
}

/** The summary: how many readings were answered and refused, and what the answers look like. */
export function scoreSummary(outcome: ScoreOutcome, manifest: Manifest, file: string): string[] {
  const { results } = outcome;
  const lines = [
    `${manifest.model} v${manifest.version} on ${file}: ${outcome.readings} readings, ${results.length} ${manifest.window ? 'windows' : 'results'}, ${refusedText(outcome) || 'none refused'}`,
  ];
  if (results.length === 0) return lines;
  if (manifest.preprocessing.task === 'anomaly') {
    const flagged = results.filter((r) => r.anomaly).length;
    lines.push(
      `  anomalous: ${pct(flagged / results.length)} (${flagged}) at threshold ${manifest.anomaly?.threshold}`,
    );
    return lines;
  }
  if (manifest.preprocessing.task === 'regression') {
    const values = results.map((r) => r.value ?? Number.NaN).sort((a, b) => a - b);
    const at = (q: number) =>
      num(values[Math.min(values.length - 1, Math.floor(q * values.length))] ?? Number.NaN);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    lines.push(
      `  ${manifest.preprocessing.label}: mean ${num(mean)}, p10 ${at(0.1)}, p50 ${at(0.5)}, p90 ${at(0.9)}, min ${num(values[0] ?? Number.NaN)}, max ${num(values[values.length - 1] ?? Number.NaN)}`,
    );
    const labelled = results.filter((r) => r.truth !== undefined && !Number.isNaN(targetNumber(r.truth)));
    if (labelled.length > 0) {
      const errors = labelled.map((r) => (r.value ?? 0) - targetNumber(r.truth));
      const rmse = Math.sqrt(errors.reduce((a, e) => a + e * e, 0) / errors.length);
      const mae = errors.reduce((a, e) => a + Math.abs(e), 0) / errors.length;
      lines.push(
        `  against the file's ${manifest.preprocessing.label}: RMSE ${num(rmse)}, MAE ${num(mae)} (${labelled.length} results)`,
      );
    }
    return lines;
  }
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.label ?? '', (counts.get(r.label ?? '') ?? 0) + 1);
  const mix = [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label} ${pct(n / results.length)} (${n})`);
  lines.push(`  answers: ${mix.join(', ')}`);
  const labelled = results.filter((r) => r.truth !== undefined);
  if (labelled.length > 0) {
    const right = labelled.filter((r) => r.truth === r.label).length;
    lines.push(
      `  against the file's ${manifest.preprocessing.label}: accuracy ${pct(right / labelled.length)} (${labelled.length} results)`,
    );
  }
  return lines;
}

/** The events found, one line each: series, start and end, peak score, the channels that drove it. */
function eventLines(events: readonly AnomalyEvent[]): string[] {
  if (events.length === 0) return ['  events: none'];
  const when = (t: number) => (t > 1e11 ? new Date(t).toISOString() : `#${t}`);
  return [
    `  events: ${events.length}`,
    ...events.map(
      (e) =>
        `    ${e.series || '-'} ${when(e.start)} .. ${when(e.end)}: ${e.results} anomalous results, peak ${num(e.peakScore)}; ${e.channels.map((c) => `${c.name} ${pct(c.share)}`).join(', ')}`,
    ),
  ];
}

function refusedText(outcome: ScoreOutcome): string {
  const parts = Object.entries(outcome.refused).map(([reason, n]) => `${reason} ${n}`);
  return parts.length ? `refused: ${parts.join(', ')}` : '';
}

function num(value: number): string {
  return Number(value.toPrecision(4)).toString();
}

function pct(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}
