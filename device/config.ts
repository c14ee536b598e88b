/**
 * Device configuration from three places, later ones winning: a JSON config file, then
 * EDGELOOP_DEVICE_* environment variables, then command-line flags. The merged result is
 * validated with zod and every problem gets a specific message (a missing cert file, a bad
 * endpoint, an unknown option).
 */

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { EdgeloopError, errorMessage } from '../shared/errors.ts';
import { LocalEndpointsSchema } from '../shared/local-endpoints.ts';
import { describeZodError, ModelName, ThingName } from '../shared/schemas.ts';
import { LOCAL_STAGE, localStackFiles } from '../shared/topology.ts';
import { parseEndpoint } from './platform/connection.ts';
import type { DeviceOptions } from './service.ts';
import { parseSourceSpec } from './sources/sources.ts';
import { DEFAULT_SERIES_LIMITS } from './sources/window-stream.ts';

const positiveInt = z.coerce.number().int().min(1);

export const DeviceConfigSchema = z
  .object({
    thing: ThingName,
    model: ModelName,
    stateDir: z.string().min(1),
    mqttEndpoint: z.string().min(1),
    s3Endpoint: z.string().url().optional(),
    region: z.string().min(1).optional(),
    publicKeyFile: z.string().min(1),
    /** csv:FILE, stdin, a live input's URL (mqtt://...), or its settings block (docs/connect-sensors.md). */
    source: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
    rate: positiveInt.optional(),
    limit: positiveInt.optional(),
    httpPort: z.coerce.number().int().min(0).max(65535).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    caFile: z.string().min(1).optional(),
    credentialsEndpoint: z.string().min(1).optional(),
    roleAlias: z.string().min(1).optional(),
    statusIntervalMs: positiveInt.optional(),
    outboxMaxBatches: positiveInt.optional(),
    outboxMaxMB: positiveInt.optional(),
    outboxOverflow: z.enum(['drop-oldest', 'reject']).optional(),
    /** Free space kept on the state dir's disk (default min(5%, 20 MiB)); see device/platform/disk.ts. */
    diskReserveMB: z.coerce.number().min(0).optional(),
    /** The datasets bucket: set it to upload low-confidence readings as hard examples. */
    feedbackBucket: z.string().min(1).optional(),
    feedbackPerMinute: positiveInt.optional(),
    /** `detail` (default): every result; `summary`: per-minute cells (needs basic-ingest). */
    resultsMode: z.enum(['detail', 'summary']).optional(),
    /** Summary mode: one batch per this long (default 10,000 ms). */
    summaryIntervalMs: positiveInt.optional(),
    /** `broker` (the results topic) or `basic-ingest` (the results stream rule of `stage`). */
    resultsRoute: z.enum(['broker', 'basic-ingest']).optional(),
    /** The deployed stage (provision writes it; the local stack's is 'local'). */
    stage: z.string().min(1).optional(),
    /**
     * A result waits at most this long in an open batch before the batch is cut and sent
     * (default 500): lower means fresher results in the cloud, and more, smaller messages at
     * low rates.
     */
    batchMaxAgeMs: positiveInt.optional(),
    /**
     * A result is durable on disk at most this long after it is made (default 20), journalled
     * while its batch is open; 0 leaves it to the batch (up to batchMaxAgeMs).
     */
    durableWithinMs: z.coerce.number().int().min(0).optional(),
    /** Windowed models, live sources: open series kept at most (default 10,000). */
    maxSeries: positiveInt.optional(),
    /** Windowed models, live sources: a series without readings this long is closed (default 600). */
    seriesIdleSeconds: positiveInt.optional(),
  })
  .strict();
export type DeviceConfig = z.infer<typeof DeviceConfigSchema>;
type RawConfig = Partial<Record<keyof DeviceConfig, unknown>>;

const KEYS = Object.keys(DeviceConfigSchema.shape) as (keyof DeviceConfig)[];

/** EDGELOOP_DEVICE_THING, EDGELOOP_DEVICE_MQTT_ENDPOINT, ... for each config key. */
export function envName(key: string): string {
  return `EDGELOOP_DEVICE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RawConfig {
  const out: RawConfig = {};
  for (const key of KEYS) {
    const value = env[envName(key)];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

export function configFromFile(file: string): RawConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new EdgeloopError(`cannot read the device config file ${file}: ${errorMessage(error)}`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new EdgeloopError(`the device config file ${file} must hold a JSON object`);
  const unknown = Object.keys(json).filter((key) => !KEYS.includes(key as keyof DeviceConfig));
  if (unknown.length > 0)
    throw new EdgeloopError(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} in ${file} (known: ${KEYS.join(', ')})`,
    );
  return json as RawConfig;
}

/** Merges file < env < flags (undefined values do not override) and validates. */
export function resolveConfig(...layers: RawConfig[]): DeviceConfig {
  const merged: RawConfig = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer))
      if (value !== undefined) merged[key as keyof DeviceConfig] = value;
  }
  const parsed = DeviceConfigSchema.safeParse(merged);
  if (!parsed.success) throw new EdgeloopError(`device config: ${describeZodError(parsed.error)}`);
  const config = parsed.data;
  const endpoint = parseEndpoint(config.mqttEndpoint);
  if (endpoint.tls && (!config.certFile || !config.keyFile))
    throw new EdgeloopError(
      `the MQTT endpoint ${config.mqttEndpoint} uses TLS: set certFile and keyFile (--cert/--key or ${envName('certFile')}/${envName('keyFile')})`,
    );
  for (const key of ['certFile', 'keyFile', 'caFile', 'publicKeyFile'] as const) {
    const file = config[key];
    if (file && !existsSync(file))
      throw new EdgeloopError(
        `${key} ${resolve(file)} does not exist: check the path (or provision the gateway first)`,
      );
  }
  if (config.resultsMode === 'summary' && config.resultsRoute === 'broker')
    throw new EdgeloopError(
      `resultsMode 'summary' cannot go by the broker: summary batches are read by the results stream rule only; set resultsRoute 'basic-ingest' (--results-route basic-ingest) or resultsMode 'detail'`,
    );
  if (chosenRoute(config) === 'basic-ingest' && !config.stage)
    throw new EdgeloopError(
      `resultsRoute 'basic-ingest' needs the deployed stage whose rule it publishes to: set stage (--stage or ${envName('stage')}; 'edgeloop provision' writes it, the local stack's is '${LOCAL_STAGE}')`,
    );
  if (config.credentialsEndpoint && !config.roleAlias)
    throw new EdgeloopError(
      'credentialsEndpoint is set but roleAlias is not: give both to fetch S3 credentials',
    );
  return config;
}

/** Where results go: as set, else by Basic Ingest in summary mode and by the broker otherwise. */
function chosenRoute(config: DeviceConfig): 'broker' | 'basic-ingest' {
  return config.resultsRoute ?? (config.resultsMode === 'summary' ? 'basic-ingest' : 'broker');
}

/** The DeviceOptions startDevice takes, from a validated config. */
export function deviceOptionsFrom(config: DeviceConfig, log?: (line: string) => void): DeviceOptions {
  const source = config.source
    ? parseSourceSpec(config.source, {
        ...(config.rate ? { rate: config.rate } : {}),
        ...(config.limit ? { limit: config.limit } : {}),
      })
    : undefined;
  return {
    thing: config.thing,
    model: config.model,
    stateDir: config.stateDir,
    mqttEndpoint: config.mqttEndpoint,
    ...(config.s3Endpoint ? { s3Endpoint: config.s3Endpoint } : {}),
    ...(config.region ? { region: config.region } : {}),
    publicKeyPem: readFileSync(config.publicKeyFile, 'utf8'),
    ...(source ? { source } : {}),
    ...(config.certFile && config.keyFile
      ? {
          tls: {
            certFile: config.certFile,
            keyFile: config.keyFile,
            ...(config.caFile ? { caFile: config.caFile } : {}),
          },
        }
      : {}),
    ...(config.credentialsEndpoint && config.roleAlias
      ? { credentialsProvider: { endpoint: config.credentialsEndpoint, roleAlias: config.roleAlias } }
      : {}),
    ...(config.httpPort !== undefined ? { httpPort: config.httpPort } : {}),
    ...(config.statusIntervalMs ? { statusIntervalMs: config.statusIntervalMs } : {}),
    results: {
      mode: config.resultsMode ?? 'detail',
      ...(config.summaryIntervalMs ? { summaryIntervalMs: config.summaryIntervalMs } : {}),
      ...(chosenRoute(config) === 'basic-ingest' && config.stage ? { basicIngestStage: config.stage } : {}),
    },
    outbox: {
      ...(config.outboxMaxBatches ? { maxBatches: config.outboxMaxBatches } : {}),
      ...(config.outboxMaxMB ? { maxBytes: config.outboxMaxMB * 2 ** 20 } : {}),
      ...(config.outboxOverflow ? { overflow: config.outboxOverflow } : {}),
    },
    ...(config.diskReserveMB !== undefined
      ? { diskReserveBytes: Math.round(config.diskReserveMB * 2 ** 20) }
      : {}),
    ...(config.feedbackBucket
      ? {
          hardExamples: {
            bucket: config.feedbackBucket,
            ...(config.feedbackPerMinute ? { maxPerMinute: config.feedbackPerMinute } : {}),
          },
        }
      : {}),
    ...(config.batchMaxAgeMs !== undefined || config.durableWithinMs !== undefined
      ? {
          batch: {
            ...(config.batchMaxAgeMs ? { maxAgeMs: config.batchMaxAgeMs } : {}),
            ...(config.durableWithinMs !== undefined ? { durableWithinMs: config.durableWithinMs } : {}),
          },
        }
      : {}),
    ...(config.maxSeries || config.seriesIdleSeconds
      ? {
          series: {
            maxSeries: config.maxSeries ?? DEFAULT_SERIES_LIMITS.maxSeries,
            idleMs: config.seriesIdleSeconds ? config.seriesIdleSeconds * 1000 : DEFAULT_SERIES_LIMITS.idleMs,
          },
        }
      : {}),
    ...(log ? { log } : {}),
  };
}

// ---------------------------------------------------------------------------------------
// The local stack's data dir (localStackFiles in the topology, written by `edgeloop up`).
// ---------------------------------------------------------------------------------------

/** What the device needs of the local stack's endpoints file (shared/local-endpoints.ts). */
const DeviceEndpointsSchema = LocalEndpointsSchema.pick({ s3: true, mqtt: true });
export type DeviceEndpoints = z.infer<typeof DeviceEndpointsSchema>;

/** The local stack's S3 and MQTT endpoints and signing key, from its data dir. */
export function readLocalStack(dataDir: string): { endpoints: DeviceEndpoints; publicKeyFile: string } {
  const file = join(dataDir, localStackFiles.endpoints);
  if (!existsSync(file))
    throw new EdgeloopError(
      `no local stack endpoints at ${resolve(file)}: start one with 'edgeloop up --data-dir ${dataDir}' (or pass --mqtt-endpoint and --public-key)`,
    );
  let parsed: ReturnType<typeof DeviceEndpointsSchema.safeParse>;
  try {
    parsed = DeviceEndpointsSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (error) {
    throw new EdgeloopError(`${file} is not JSON: ${errorMessage(error)}`);
  }
  if (!parsed.success) throw new EdgeloopError(`${file}: ${describeZodError(parsed.error)}`);
  return { endpoints: parsed.data, publicKeyFile: join(dataDir, localStackFiles.signingPublicKey) };
}
