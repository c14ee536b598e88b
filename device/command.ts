import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CommandContext,
  dataDirOption,
  defineCommand,
  intOption,
  type OptionSpec,
  UsageError,
} from '../shared/cli/command.ts';
import { EdgeloopError } from '../shared/errors.ts';
import { credentialPath, readLocalCredential } from '../shared/local-credential.ts';
import { DEFAULT_DATA_DIR } from '../shared/local-data-dir.ts';
import { LOCAL_STAGE, localStackFiles } from '../shared/topology.ts';
import {
  configFromEnv,
  configFromFile,
  type DeviceConfig,
  deviceOptionsFrom,
  readLocalStack,
  resolveConfig,
} from './config.ts';
import { loadTfWithoutItsCrashHandlers, ownCrashes } from './platform/crash.ts';
import { type Device, type DeviceSnapshot, startDevice } from './service.ts';

type Values = Record<string, string | boolean | undefined>;

/** Options shared by `device` and `fleet-sim`. */
export const deviceRunOptions = {
  model: { type: 'string', description: 'model name whose releases to follow', valueName: 'NAME' },
  source: {
    type: 'string',
    description:
      'readings: csv:FILE, stdin, or a live input such as mqtt://host:port?topic=F (docs/connect-sensors.md)',
    valueName: 'SPEC',
  },
  rate: {
    type: 'string',
    description: 'readings per second from the source (default: as fast as possible)',
    valueName: 'N',
  },
  limit: {
    type: 'string',
    description: 'stop after N readings (looping over the CSV), once all are acknowledged',
    valueName: 'N',
  },
  'data-dir': dataDirOption,
  config: {
    type: 'string',
    description: 'JSON config file (flags and EDGELOOP_DEVICE_* env override it)',
    valueName: 'FILE',
  },
  'mqtt-endpoint': {
    type: 'string',
    description: 'mqtt://host:port, or the IoT endpoint host (AWS mode)',
    valueName: 'URL',
  },
  's3-endpoint': { type: 'string', description: 'S3 endpoint override (local stack)', valueName: 'URL' },
  'public-key': {
    type: 'string',
    description: 'PEM public key that verifies manifest signatures',
    valueName: 'FILE',
  },
  cert: { type: 'string', description: 'thing certificate (AWS mode, mTLS)', valueName: 'FILE' },
  key: { type: 'string', description: 'thing private key (AWS mode, mTLS)', valueName: 'FILE' },
  ca: { type: 'string', description: 'CA bundle (AWS mode)', valueName: 'FILE' },
  'results-mode': {
    type: 'string',
    description: 'detail (every result, default) or summary (per-minute cells; goes by Basic Ingest)',
    valueName: 'MODE',
  },
  'summary-interval-ms': {
    type: 'string',
    description: 'summary mode: one batch per N ms (default 10000)',
    valueName: 'N',
  },
  'results-route': {
    type: 'string',
    description: 'broker (the results topic) or basic-ingest (the results stream rule, no messaging charge)',
    valueName: 'ROUTE',
  },
  stage: {
    type: 'string',
    description: "deployed stage whose Basic Ingest rule to publish to (local stack: 'local')",
    valueName: 'S',
  },
} as const satisfies Record<string, OptionSpec>;

/**
 * Layers, later winning: defaults (state dir from the thing) < local stack data dir < config
 * file < EDGELOOP_DEVICE_* env < flags; then validated.
 */
export function deviceConfigFromArgs(values: Values, overrides: Record<string, unknown>): DeviceConfig {
  const str = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const fileLayer = str('config') ? configFromFile(str('config') as string) : {};
  const envLayer = configFromEnv();
  const flagLayer: Record<string, unknown> = {
    model: str('model'),
    source: str('source'),
    rate: intOption(values, 'rate'),
    limit: intOption(values, 'limit'),
    mqttEndpoint: str('mqtt-endpoint'),
    s3Endpoint: str('s3-endpoint'),
    publicKeyFile: str('public-key'),
    certFile: str('cert'),
    keyFile: str('key'),
    caFile: str('ca'),
    resultsMode: str('results-mode'),
    summaryIntervalMs: intOption(values, 'summary-interval-ms'),
    resultsRoute: str('results-route'),
    stage: str('stage'),
    ...overrides,
  };
  const layers = [fileLayer, envLayer, flagLayer];
  if (!layers.some((layer) => layer.model !== undefined)) throw new UsageError('--model is required');
  const explicitEndpoint = layers.some((layer) => layer.mqttEndpoint !== undefined);
  const dataDir = str('data-dir') ?? DEFAULT_DATA_DIR;
  let localLayer = {};
  if (!explicitEndpoint || existsSync(join(dataDir, localStackFiles.endpoints))) {
    const local = readLocalStack(dataDir);
    // The local S3 takes only the data dir's credential; the device's S3 client reads the env.
    const credential = credentialPath(dataDir);
    if (existsSync(credential)) {
      const { accessKeyId, secretAccessKey } = readLocalCredential(credential);
      process.env.AWS_ACCESS_KEY_ID = accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = secretAccessKey;
    }
    localLayer = {
      mqttEndpoint: local.endpoints.mqtt,
      s3Endpoint: local.endpoints.s3,
      publicKeyFile: local.publicKeyFile,
      stage: LOCAL_STAGE,
    };
  }
  const thing = [flagLayer, envLayer, fileLayer]
    .map((layer) => layer.thing)
    .find((value) => value !== undefined);
  const defaults = typeof thing === 'string' ? { stateDir: join(dataDir, 'devices', thing) } : {};
  return resolveConfig(defaults, localLayer, fileLayer, envLayer, flagLayer);
}

export function summary(snapshot: DeviceSnapshot) {
  return {
    thing: snapshot.thing,
    modelVersion: snapshot.version,
    produced: snapshot.produced,
    published: snapshot.published,
    position: snapshot.position,
    outboxDepth: snapshot.outboxDepth,
    dropped: snapshot.dropped,
    lastError: snapshot.lastError,
    durableLatencyP50Ms: snapshot.durableLatencyP50 ?? null,
    durableLatencyP99Ms: snapshot.durableLatencyP99 ?? null,
    ...(snapshot.refused ? { refused: snapshot.refused } : {}),
  };
}

/**
 * Runs devices until they finish (limited source) or SIGINT/SIGTERM, then stops them
 * cleanly: the source stops, the partial batch and the checkpoint are persisted, in-flight
 * publishes get a moment for their PUBACK. Returns the signal's name when one stopped it.
 */
export async function runUntilDone(
  devices: Device[],
  limited: boolean,
  err: (line: string) => void,
): Promise<string | undefined> {
  let received: string | undefined;
  let wake: (() => void) | undefined;
  const signal = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (name: string) => {
    err(`${name}: stopping (persisting the outbox and checkpoint)`);
    received = name;
    wake?.();
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  try {
    await Promise.race([
      limited ? Promise.all(devices.map((device) => device.finished)) : new Promise(() => {}),
      signal,
    ]);
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await Promise.all(devices.map((device) => device.stop()));
  }
  return received;
}

export const deviceCommand = defineCommand({
  name: 'device',
  summary: 'run the gateway device service: model updates, local inference, batched results',
  usage:
    'edgeloop device --thing NAME --model NAME [--data-dir DIR] [--state-dir DIR] --source csv:FILE [--rate N] [--limit N] [--http-port N]',
  examples: [
    'edgeloop device --thing gw-1 --model sensors --source csv:data/sensors.csv --limit 10000',
    'edgeloop device --thing gw-1 --model sensors --http-port 8080   # POST /infer only',
    'edgeloop device --config /etc/edgeloop/device.json            # AWS mode, see device/packaging',
  ],
  options: {
    thing: { type: 'string', description: 'thing name (also the MQTT client id)', valueName: 'NAME' },
    'state-dir': {
      type: 'string',
      description: 'models, outbox and checkpoint (default: DATA_DIR/devices/THING)',
      valueName: 'DIR',
    },
    'http-port': {
      type: 'string',
      description: 'serve POST /infer on 127.0.0.1:N (0 = any free port)',
      valueName: 'N',
    },
    ...deviceRunOptions,
  },
  async run(ctx: CommandContext<Values>) {
    const { values, out, err } = ctx;
    const thing = typeof values.thing === 'string' ? values.thing : undefined;
    const overrides: Record<string, unknown> = {
      thing,
      httpPort: intOption(values, 'http-port', 0),
      stateDir: values['state-dir'],
    };
    if (!thing && !process.env.EDGELOOP_DEVICE_THING && !values.config)
      throw new UsageError('--thing is required');
    const config = deviceConfigFromArgs(values, overrides);
    const log = values.quiet ? undefined : (line: string) => err(line);
    const options = deviceOptionsFrom(config, log);
    if (options.source?.kind === 'stdin') options.stdout = out;
    // This process decides how it dies (device/platform/crash.ts), not the wasm glue tfjs loads.
    await loadTfWithoutItsCrashHandlers();
    let device: Device | undefined;
    ownCrashes({ log: err, save: () => device?.saveState() ?? Promise.resolve() });
    device = await startDevice(options);
    if (device.httpPort !== undefined && !values.quiet)
      err(`POST readings to http://127.0.0.1:${device.httpPort}/infer`);
    // A limited CSV replay ends at its limit and stdin at EOF; other runs go on until a signal.
    const limited =
      options.source?.kind === 'stdin' ||
      (options.source?.kind === 'csv' && options.source.limit !== undefined);
    const signal = await runUntilDone([device], limited, err);
    const snapshot = device.status();
    if (values.json) out(JSON.stringify(summary(snapshot)));
    else
      out(
        `${snapshot.thing}: model v${snapshot.version ?? '-'}, ${snapshot.produced} produced, ${snapshot.published} acknowledged, outbox ${snapshot.outboxDepth}`,
      );
    // A signal is a requested stop (systemd, Ctrl-C): the state is saved, so exit 0.
    if (limited && !snapshot.finished && !signal)
      throw new EdgeloopError(
        'stopped before every result was acknowledged; run again with the same --state-dir to continue',
      );
    if (limited && !snapshot.finished)
      err(
        `${signal}: ${snapshot.position} of the readings done; run again with the same --state-dir to continue`,
      );
    return 0;
  },
});
