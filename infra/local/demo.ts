/**
 * The whole loop in one process: local stack, dataset upload, training via the real S3
 * event, N simulated gateways that pick up the retained release notice, replay readings
 * through the model and publish results, and the aggregator counting them.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { type Device, type DeviceSnapshot, type SourceSpec, startDevice } from '../../device/service.ts';
import { validateMqttSettings } from '../../device/sources/mqtt/settings.ts';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import { readEvents } from '../../functions/events/queries.ts';
import { listRegistry } from '../../functions/training/registry.ts';
import { generatePumpCsv } from '../../shared/anomaly-dataset.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import {
  DEMO_LABEL,
  ENERGY_LABEL,
  generateDemoDataset,
  generateEnergyDataset,
} from '../../shared/demo-dataset.ts';
import { EdgeloopError } from '../../shared/errors.ts';
import {
  ManifestSchema,
  type RegistryItem,
  type Task,
  type TrainingConfigInput,
  type WindowManifest,
} from '../../shared/schemas.ts';
import type { WindowSpecInput } from '../../shared/timeseries/spec.ts';
import { generateVibrationCsv, VIBRATION_LABEL } from '../../shared/timeseries/vibration-dataset.ts';
import { buckets, datasetKeys, tables } from '../../shared/topology.ts';
import { type SiteBroker, simulateMachines, startSiteBroker } from './site.ts';
import { type LocalStack, startLocalStack } from './stack.ts';
import { putWithProgress } from './upload.ts';

export interface DemoOptions {
  devices: number;
  /** A CSV of your own; the generated sensor dataset otherwise. */
  datasetFile?: string;
  label?: string;
  model?: string;
  /**
   * `regression`: train a model that answers a number (edgeloop.json `task`). Without a
   * dataset file the demo generates machines' energy per cycle, and the gateways replay cycles
   * the model never saw. `anomaly`: no labels; the demo generates pumps' normal operation to
   * train a window model on (PUMPS_DEMO), and the gateways replay other pumps' day with
   * injected faults and report events.
   */
  task?: Task;
  /** Readings each gateway replays (default 500; with a window, every reading of the replay file). */
  readingsPerDevice?: number;
  /**
   * Long-format readings: train on windows (edgeloop.json `window`). Without a dataset file
   * the demo generates 3-axis vibration readings, and the gateways replay machines the model
   * never saw.
   */
  window?: WindowSpecInput;
  /**
   * Live readings instead of a replay: simulated machines publish the readings to a site
   * broker at this rate per gateway, and each gateway reads them with its MQTT input.
   */
  live?: { ratePerSec: number };
  /** Keep the stack (and its dashboard) running after the summary, until stop() is called. */
  keep?: boolean;
  dataDir?: string;
  onPhase?: (phase: DemoPhase, detail: string) => void;
  /** Progress within the upload, train and rollout phases. */
  onProgress?: (progress: DemoProgress) => void;
  /** Serve the dashboard on the demo's data (its URL is in the summary and stack.endpoints). */
  dashboard?: boolean;
  timeoutMs?: number;
}

export type DemoPhase = 'stack' | 'upload' | 'train' | 'rollout' | 'results' | 'done';

export type DemoProgress =
  | { phase: 'upload'; sent: number; total: number }
  /** The newest registry run while the training function works; `status` as in the registry. */
  | { phase: 'train'; elapsedMs: number; version?: number; status?: string; accuracy?: number }
  | { phase: 'rollout'; version: number; serving: number; total: number };

export interface DemoSummary {
  model: string;
  version: number;
  /**
   * A classifier's accuracy and macro-F1, a regression model's held-out RMSE and R², or an
   * anomaly model's false alarms a day per series on held-out normal data (NaN accuracy then).
   */
  metrics: { accuracy: number; macroF1?: number; rmse?: number; r2?: number; falseAlarmsPerDay?: number };
  devices: { thing: string; modelVersion: number | null }[];
  results: { published: number; aggregated: number };
  /** Share of labelled results the released version got right, as the aggregator counts it. */
  liveAccuracy?: number | null;
  /** Regression: live RMSE over the results that carried their true value, as the aggregator counts it. */
  liveRmse?: number | null;
  /** With a window: the spec the model was trained with. */
  window?: WindowManifest['spec'];
  /**
   * An anomaly model: the events the gateways found and the events store holds (one per
   * gateway, series and start), those still open, and the share of results over the threshold.
   */
  anomaly?: { events: number; open: number; anomalyRate: number | null };
  timings: { trainMs: number; rolloutMs: number; totalMs: number };
  dataDir: string;
  /** The dashboard's URL, when it was served. */
  dashboard?: string;
}

export interface DemoRun {
  summary: DemoSummary;
  stack: LocalStack;
  /** Stops devices and the stack and removes a temporary data dir. */
  stop(): Promise<void>;
}

const POLL_MS = 100;

export async function runDemo(options: DemoOptions): Promise<DemoRun> {
  const started = Date.now();
  const model = options.model ?? 'demo-sensors';
  const timeoutMs = options.timeoutMs ?? 150_000;
  const phase = options.onPhase ?? (() => {});
  const progress = options.onProgress ?? (() => {});
  const workDir = await mkdtemp(join(tmpdir(), 'edgeloop-demo-'));
  const dataDir = options.dataDir ?? join(workDir, 'stack');
  const devices: Device[] = [];
  let stack: LocalStack | undefined;
  let site: SiteBroker | undefined;

  const stop = async () => {
    await Promise.allSettled(devices.map((device) => device.stop()));
    await site?.close();
    await stack?.stop();
    await rm(workDir, { recursive: true, force: true });
  };

  try {
    phase('stack', 'starting the local stack (S3, MQTT broker, DynamoDB)');
    stack = await startLocalStack({ dataDir, ...(options.dashboard ? { dashboard: true } : {}) });
    const localStack = stack;
    if (stack.endpoints.dashboard) phase('stack', `dashboard at ${stack.endpoints.dashboard}`);

    const { csvPath, label, replayPath, config } = await prepareDataset(workDir, options);
    const readings =
      options.readingsPerDevice ??
      (options.window || options.task === 'anomaly'
        ? (await readFile(replayPath, 'utf8')).trim().split('\n').length - 1
        : 500);

    if (options.live) {
      site = await startSiteBroker();
      phase('stack', `site broker (the gateways' local MQTT) at ${site.url}`);
    }
    const siteUrl = site?.url;
    const sourceOf = (thing: string): SourceSpec =>
      siteUrl
        ? {
            kind: 'mqtt',
            settings: validateMqttSettings(
              { kind: 'mqtt', url: siteUrl, topics: [`site/${thing}/#`], protocolVersion: 4 },
              'the demo site',
            ),
          }
        : { kind: 'csv', file: replayPath, limit: readings };

    // Gateways start first and wait for the release notice, as a fleet in the field would.
    const servingSince = new Map<string, { version: number; at: number }>();
    let rollingOut: number | undefined;
    const reportRollout = () => {
      if (rollingOut === undefined) return;
      const version = rollingOut;
      const serving = [...servingSince.values()].filter((s) => s.version === version).length;
      progress({ phase: 'rollout', version, serving, total: options.devices });
    };
    for (let i = 1; i <= options.devices; i++) {
      const thing = `gw-${i}`;
      const device = await startDevice({
        thing,
        model,
        stateDir: join(workDir, 'devices', thing),
        mqttEndpoint: localStack.endpoints.mqtt,
        s3Endpoint: localStack.endpoints.s3,
        publicKeyPem: localStack.publicKeyPem,
        source: sourceOf(thing),
      });
      device.events.on('model', ({ version }: { version: number }) => {
        servingSince.set(thing, { version, at: Date.now() });
        reportRollout();
      });
      devices.push(device);
    }

    phase('upload', `uploading ${basename(csvPath)} to s3://${buckets.datasets.localName}`);
    if (label || options.window || options.task)
      await putConfig(model, {
        ...config,
        ...(options.task ? { task: options.task } : {}),
        ...(label ? { label } : {}),
        ...(options.window ? { window: options.window } : {}),
      });
    const uploadedAt = Date.now();
    await putWithProgress({
      bucket: buckets.datasets.localName,
      key: datasetKeys.dataset(model, basename(csvPath)),
      body: await readFile(csvPath),
      contentType: 'text/csv',
      onProgress: ({ sent, total }) => progress({ phase: 'upload', sent, total }),
    });

    phase('train', 'training, evaluating and gating the model');
    const release = await waitFor(
      async () => {
        const latest = await latestRun(model);
        if (latest && latest.status !== 'training') return latest;
        progress({
          phase: 'train',
          elapsedMs: Date.now() - uploadedAt,
          ...(latest ? { version: latest.version, status: latest.status } : {}),
        });
        return undefined;
      },
      timeoutMs,
      'the training run to finish',
    );
    progress({
      phase: 'train',
      elapsedMs: Date.parse(release.updatedAt) - uploadedAt,
      version: release.version,
      status: release.status,
      ...(release.metrics ? { accuracy: release.metrics.accuracy } : {}),
    });
    if (release.status !== 'released') {
      throw new EdgeloopError(
        `the training run ended '${release.status}': ${release.reason ?? 'no reason recorded'}`,
      );
    }
    const releasedAt = Date.parse(release.updatedAt);

    phase('rollout', `v${release.version} released; waiting for ${devices.length} gateways to serve it`);
    rollingOut = release.version;
    reportRollout();
    await Promise.all(
      devices.map((device) => device.waitFor((snapshot) => snapshot.version === release.version, timeoutMs)),
    );
    const rolledOutAt = Math.max(
      ...devices.map((device) => servingSince.get(device.thing)?.at ?? Date.now()),
    );

    if (siteUrl && options.live) {
      const { ratePerSec } = options.live;
      phase(
        'results',
        `machines publish ${readings} readings per gateway at ${ratePerSec}/s; gateways read them live`,
      );
      await liveReadings(siteUrl, devices, replayPath, readings, ratePerSec, timeoutMs);
    } else {
      phase('results', 'gateways replay readings and publish results; the aggregator counts them');
      await Promise.all(devices.map((device) => device.finished));
    }
    const published = devices.reduce((sum, device) => sum + device.status().published, 0);
    const statsSource = localStatsSource();
    const stats = await waitFor(
      async () => {
        await localStack.idle();
        const stats = await readModelStats(statsSource, model, uploadedAt - 60_000);
        return stats.inferences >= published ? stats : undefined;
      },
      timeoutMs,
      'the aggregator to count every published result',
    );
    const aggregated = stats.inferences;
    const anomaly = release.metrics?.anomaly ? await storedEvents(model, devices, timeoutMs) : undefined;
    const window = release.manifestKey ? await releasedWindow(release.manifestKey) : undefined;

    const summary: DemoSummary = {
      model,
      version: release.version,
      metrics: {
        accuracy: release.metrics?.accuracy ?? Number.NaN,
        ...(release.metrics?.macroF1 !== undefined ? { macroF1: release.metrics.macroF1 } : {}),
        ...(release.metrics?.regression
          ? { rmse: release.metrics.regression.rmse, r2: release.metrics.regression.r2 }
          : {}),
        ...(release.metrics?.anomaly?.falseAlarmsPerDay !== undefined
          ? { falseAlarmsPerDay: release.metrics.anomaly.falseAlarmsPerDay }
          : {}),
      },
      devices: devices.map((device) => ({ thing: device.thing, modelVersion: device.status().version })),
      results: { published, aggregated },
      liveAccuracy: stats.versions.find((v) => v.version === release.version)?.liveAccuracy ?? null,
      ...(release.metrics?.regression
        ? { liveRmse: stats.versions.find((v) => v.version === release.version)?.liveRmse ?? null }
        : {}),
      ...(window ? { window } : {}),
      ...(anomaly
        ? {
            anomaly: {
              ...anomaly,
              anomalyRate: stats.versions.find((v) => v.version === release.version)?.anomalyRate ?? null,
            },
          }
        : {}),
      timings: {
        trainMs: releasedAt - uploadedAt,
        rolloutMs: rolledOutAt - releasedAt,
        totalMs: Date.now() - started,
      },
      dataDir,
      ...(localStack.endpoints.dashboard ? { dashboard: localStack.endpoints.dashboard } : {}),
    };
    phase('done', 'done');
    return { summary, stack, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Waits until the events store holds every event the gateways opened; its count and those still open. */
async function storedEvents(
  model: string,
  devices: readonly Device[],
  timeoutMs: number,
): Promise<{ events: number; open: number }> {
  const opened = devices.reduce((sum, device) => sum + (device.status().events?.opened ?? 0), 0);
  const source = { ddb: dynamoClient(), tables: { events: tables.events.localName } };
  const events = await waitFor(
    async () => {
      const stored = await readEvents(source, { model, sinceMs: 0, limit: 10_000 });
      return stored.length >= opened ? stored : undefined;
    },
    timeoutMs,
    `the events store to hold the ${opened} events the gateways opened`,
  );
  return { events: events.length, open: events.filter((e) => e.state === 'open').length };
}

/**
 * Each gateway's machines publish the first `count` readings of the replay file to the site
 * broker (topic site/<gateway>/<machine>); resolves once every gateway has answered all of them
 * and its results left the outbox.
 */
async function liveReadings(
  url: string,
  devices: readonly Device[],
  replayPath: string,
  count: number,
  ratePerSec: number,
  timeoutMs: number,
): Promise<void> {
  const rows = parseCsvReadings(await readFile(replayPath, 'utf8'), `${replayPath}: `).rows.slice(0, count);
  const subscribed = (s: DeviceSnapshot) => s.sources?.[0]?.state === 'connected';
  await Promise.all(devices.map((device) => device.waitFor(subscribed, timeoutMs)));
  await Promise.all(
    devices.map((device) =>
      simulateMachines(
        url,
        rows,
        ratePerSec,
        (row) => `site/${device.thing}/${row.machine ?? 'machine-1'}`,
        `${device.thing}-machines`,
      ),
    ),
  );
  // Every reading taken, then answered: nothing waits in the outbox twice in a row.
  const drained = (s: DeviceSnapshot) =>
    (s.sources?.[0]?.readings ?? 0) >= rows.length && s.outboxResults === 0 && s.published >= s.produced;
  for (let settle = 0; settle < 2; settle++) {
    await Promise.all(devices.map((device) => device.waitFor(drained, timeoutMs)));
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The regression demo's data: 2,000 cycles to train on; the gateways replay 500 others. */
export const ENERGY_DEMO = {
  train: { rows: 2000, seed: 11 },
  replay: { rows: 500, seed: 12 },
} as const;

/**
 * The anomaly demo's data: six pumps' two normal days to train on, no labels; the gateways
 * replay a day of four other pumps, into which faults were injected (one an hour long per
 * pump). The model reads 30-minute windows every 5 minutes (readings come once a minute): a
 * window sees a stuck sensor, a noise burst and a slow drift that a single reading hides.
 */
export const PUMPS_DEMO = {
  train: { pumps: 6, minutes: 2880, seed: 1 },
  replay: {
    pumps: 4,
    firstPump: 6,
    minutes: 1440,
    seed: 2,
    startMs: Date.UTC(2026, 10, 3),
    faults: { perPump: 1, minutes: 60 },
  },
  config: {
    task: 'anomaly',
    window: { time: 'ts', series: 'pump', sizeMs: 30 * 60_000, strideMs: 5 * 60_000, frequencyHz: 1 / 60 },
  },
} as const;

/** The windowed demo's data: machines m01-m16 train; the gateways replay m17-m19, which training never saw. */
export const VIBRATION_DEMO = {
  train: { machines: 16, readings: 2000, seed: 7 },
  replay: { machines: 3, readings: 2000, seed: 8, firstMachine: 16 },
} as const;

async function prepareDataset(
  workDir: string,
  options: DemoOptions,
): Promise<{ csvPath: string; label?: string; replayPath: string; config?: TrainingConfigInput }> {
  if (options.datasetFile)
    return {
      csvPath: options.datasetFile,
      replayPath: options.datasetFile,
      ...(options.label ? { label: options.label } : {}),
    };
  if (options.task === 'anomaly') {
    const csvPath = join(workDir, 'pumps.csv');
    const replayPath = join(workDir, 'pumps-next-day.csv');
    await writeFile(csvPath, generatePumpCsv(PUMPS_DEMO.train).csv);
    await writeFile(replayPath, generatePumpCsv(PUMPS_DEMO.replay).csv);
    return { csvPath, replayPath, config: { ...PUMPS_DEMO.config } };
  }
  if (options.task === 'regression') {
    const csvPath = join(workDir, 'energy.csv');
    const replayPath = join(workDir, 'energy-unseen.csv');
    await writeFile(csvPath, generateEnergyDataset(ENERGY_DEMO.train));
    await writeFile(replayPath, generateEnergyDataset(ENERGY_DEMO.replay));
    return { csvPath, replayPath, label: options.label ?? ENERGY_LABEL };
  }
  if (options.window) {
    const csvPath = join(workDir, 'vibration.csv');
    const replayPath = join(workDir, 'vibration-unseen.csv');
    await writeFile(csvPath, generateVibrationCsv(VIBRATION_DEMO.train));
    await writeFile(replayPath, generateVibrationCsv(VIBRATION_DEMO.replay));
    return { csvPath, replayPath, label: options.label ?? VIBRATION_LABEL };
  }
  const csvPath = join(workDir, 'sensors.csv');
  await writeFile(csvPath, generateDemoDataset());
  return { csvPath, replayPath: csvPath, label: options.label ?? DEMO_LABEL };
}

/** The window block of a released manifest (the registry names its key). */
async function releasedWindow(manifestKey: string): Promise<WindowManifest['spec'] | undefined> {
  const object = await s3Client().send(
    new GetObjectCommand({ Bucket: buckets.models.localName, Key: manifestKey }),
  );
  const manifest = ManifestSchema.parse(JSON.parse((await object.Body?.transformToString()) ?? '{}'));
  return manifest.window?.spec;
}

async function putConfig(model: string, config: TrainingConfigInput): Promise<void> {
  await s3Client().send(
    new PutObjectCommand({
      Bucket: buckets.datasets.localName,
      Key: datasetKeys.config(model),
      Body: JSON.stringify(config),
      ContentType: 'application/json',
    }),
  );
}

/** The newest registry run of a model, if any. */
async function latestRun(model: string): Promise<RegistryItem | undefined> {
  const [latest] = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, model);
  return latest;
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new EdgeloopError(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
