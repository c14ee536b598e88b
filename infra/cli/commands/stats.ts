import { ManifestCache } from '../../../functions/aggregation/manifests.ts';
import {
  type ErrorsView,
  localStatsSource,
  type ModelStats,
  readErrors,
  readModelStats,
  type StatsSource,
} from '../../../functions/aggregation/queries.ts';
import { dynamoClient, s3Client } from '../../../shared/aws.ts';
import { EdgeloopError } from '../../../shared/errors.ts';
import { ModelName } from '../../../shared/schemas.ts';
import { buckets, envVars, type TableKey, tables } from '../../../shared/topology.ts';
import { attachToLocalStack, DEFAULT_DATA_DIR } from '../../local/attach.ts';
import { defineCommand, type OptionSpec, UsageError } from '../command.ts';

/** Options shared by stats and fleet: where the tables are. */
export const targetOptions = {
  'data-dir': {
    type: 'string',
    description: 'data dir of the local stack',
    default: DEFAULT_DATA_DIR,
    valueName: 'DIR',
  },
  aws: { type: 'boolean', description: 'read the tables in AWS (default credential chain) instead' },
  stage: {
    type: 'string',
    description: `with --aws: table names are <local name>-<stage> unless ${envVars.aggregatesTable} etc. are set`,
    valueName: 'STAGE',
  },
} as const satisfies Record<string, OptionSpec>;

function awsName(key: TableKey, env: NodeJS.ProcessEnv, stage: string | undefined): string {
  const variable = {
    aggregates: envVars.aggregatesTable,
    fleet: envVars.fleetTable,
    errors: envVars.errorsTable,
    registry: envVars.registryTable,
    idempotency: envVars.idempotencyTable,
  }[key];
  const fromEnv = env[variable];
  if (fromEnv) return fromEnv;
  if (stage) return `${tables[key].localName}-${stage}`;
  throw new EdgeloopError(
    `with --aws, set ${variable} (a stack output) or pass --stage to derive the table names`,
  );
}

/** The tables (and manifests) the command reads: the local stack's, or AWS's with --aws. */
export async function statsSourceFor(
  values: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<StatsSource & { where: string }> {
  const stage = typeof values.stage === 'string' ? values.stage : undefined;
  if (values.aws) {
    const bucket = env[envVars.modelsBucket] ?? (stage ? `${buckets.models.localName}-${stage}` : undefined);
    return {
      where: 'aws',
      ddb: dynamoClient(),
      tables: {
        aggregates: awsName('aggregates', env, stage),
        fleet: awsName('fleet', env, stage),
        errors: awsName('errors', env, stage),
      },
      ...(bucket ? { manifests: new ManifestCache(s3Client, bucket) } : {}),
    };
  }
  if (stage) throw new UsageError('--stage only applies with --aws');
  // The one place this command learns where the local stack is (endpoints in the data dir).
  const endpoints = attachToLocalStack(String(values['data-dir'] ?? DEFAULT_DATA_DIR));
  return { where: `local stack (${endpoints.dynamodb})`, ...localStatsSource() };
}

/** Runs a read, turning "nothing listens there" into a message that says what to do. */
export async function reading<T>(where: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    const text = `${(error as Error).name} ${(error as Error).message} ${String((error as { code?: string }).code ?? '')}`;
    if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/.test(text))
      throw new EdgeloopError(
        `cannot reach the tables of the ${where}: is 'edgeloop up' running for that data dir?`,
        {
          cause: error,
        },
      );
    if (/ResourceNotFound/.test(text))
      throw new EdgeloopError(`a table is missing in the ${where}: ${(error as Error).message}`, {
        cause: error,
      });
    throw error;
  }
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** '15m', '2h', '30s', '7d' -> milliseconds. */
export function parseDuration(text: string, flag = 'since'): number {
  const match = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  const unit = match?.[2] ? UNITS[match[2]] : undefined;
  if (!match || unit === undefined || Number(match[1]) <= 0)
    throw new UsageError(`--${flag} takes a duration like 30s, 15m, 2h or 7d, got '${text}'`);
  return Number(match[1]) * unit;
}

const pct = (value: number | null) => (value === null ? '-' : `${(value * 100).toFixed(1)}%`);
const ms = (value: number | null) =>
  value === null ? '-' : `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms`;

export function formatModelStats(stats: ModelStats): string[] {
  const lines = [`${stats.model}: ${stats.inferences} inferences since ${stats.since}`];
  if (stats.versions.length === 0) lines.push('  no results aggregated in this window');
  for (const v of stats.versions) {
    const mix = Object.entries(v.classMix)
      .map(([name, share]) => `${name} ${pct(share)}`)
      .join(', ');
    lines.push(
      `  v${v.version}: ${v.inferences} inferences (${v.firstMinute} .. ${v.lastMinute})`,
      `    class mix     ${mix}`,
      `    confidence    mean ${v.confidenceMean?.toFixed(3) ?? '-'}, low-confidence ${pct(v.lowConfidenceRate)}`,
      `    latency       p50 ${ms(v.latencyP50Ms)}, p99 ${ms(v.latencyP99Ms)}`,
      `    live accuracy ${v.labelled > 0 ? `${pct(v.liveAccuracy)} of ${v.labelled} labelled` : 'no ground truth in results'}`,
      `    drift (PSI)   ${v.drift ? `${v.drift.psi.toFixed(4)} (${v.drift.level})` : 'unknown (no manifest)'}`,
    );
  }
  return lines;
}

export function formatErrors(errors: ErrorsView): string[] {
  const lines = [`${errors.count} messages set aside since ${errors.since}`];
  for (const error of errors.latest)
    lines.push(`  ${new Date(error.at).toISOString()} ${error.thing} (${error.source}): ${error.reason}`);
  return lines;
}

export const statsCommand = defineCommand({
  name: 'stats',
  summary: 'aggregated results of a model per version (or the errors set aside)',
  usage:
    'edgeloop stats (--model NAME | --errors) [--since 15m] [--data-dir DIR | --aws [--stage S]] [--json]',
  examples: [
    'edgeloop stats --model sensors --since 1h',
    'edgeloop stats --errors --json',
    'edgeloop stats --model sensors --aws --stage prod',
  ],
  options: {
    model: { type: 'string', description: 'model name', valueName: 'NAME' },
    errors: { type: 'boolean', description: 'show messages the aggregators set aside, with reasons' },
    since: { type: 'string', description: 'window to aggregate over', default: '15m', valueName: 'DURATION' },
    limit: {
      type: 'string',
      description: 'with --errors: how many latest errors to list',
      default: '10',
      valueName: 'N',
    },
    ...targetOptions,
  },
  async run({ values, out }) {
    const sinceMs = Date.now() - parseDuration(String(values.since));
    const model = values.model;
    if (values.errors && model !== undefined)
      throw new UsageError('use either --model or --errors, not both');
    if (!values.errors) {
      if (typeof model !== 'string') throw new UsageError('--model is required (or --errors)');
      const name = ModelName.safeParse(model);
      if (!name.success) throw new UsageError(`--model '${model}': ${name.error.issues[0]?.message}`);
    }
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new UsageError(`--limit must be an integer >= 1, got '${values.limit}'`);
    const source = await statsSourceFor(values);
    if (values.errors) {
      const errors = await reading(source.where, () => readErrors(source, sinceMs, limit));
      if (values.json) out(JSON.stringify({ errors }));
      else for (const line of formatErrors(errors)) out(line);
      return 0;
    }
    const stats = await reading(source.where, () => readModelStats(source, String(model), sinceMs));
    if (values.json) out(JSON.stringify(stats));
    else for (const line of formatModelStats(stats)) out(line);
    return 0;
  },
});
