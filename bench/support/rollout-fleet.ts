/**
 * A fleet-sim style fixture for the rollout tests and bench: the real local stack, N device
 * services in this process, and a log of every model each gateway installed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type Device, type DeviceOptions, startDevice } from '../../device/service.ts';
import { listRegistry } from '../../functions/training/registry.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { DEMO_CONDITIONS, generateDemoDataset } from '../../shared/demo-dataset.ts';
import type { RegistryItem, TrainingConfigInput } from '../../shared/schemas.ts';
import { buckets, datasetKeys, tables } from '../../shared/topology.ts';

export interface Installed {
  thing: string;
  version: number;
  at: number;
}

export interface Fleet {
  stack: LocalStack;
  devices: Device[];
  /** Every 'model' event of every gateway, in order. */
  installs: Installed[];
  /** The readings (400 labelled rows); each gateway replays it from its own row, see staggered(). */
  readingsFile: string;
  dir: string;
  startDevices(count: number, extra?: Partial<DeviceOptions>): Promise<void>;
  upload(model: string, fileName: string, csv: string): Promise<number>;
  putConfig(model: string, config: TrainingConfigInput): Promise<void>;
  registry(model: string): Promise<RegistryItem[]>;
  stop(): Promise<void>;
}

export async function startFleet(options: { model: string; rolloutIntervalMs?: number }): Promise<Fleet> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-rollout-'));
  const stack = await startLocalStack({
    dataDir: join(dir, 'stack'),
    rolloutIntervalMs: options.rolloutIntervalMs ?? 250,
  });
  const readingsFile = join(dir, 'readings.csv');
  const readings = generateDemoDataset({ rows: 400, seed: 99 });
  await writeFile(readingsFile, readings);
  const devices: Device[] = [];
  const installs: Installed[] = [];
  const fleet: Fleet = {
    stack,
    devices,
    installs,
    readingsFile,
    dir,
    async startDevices(count, extra = {}) {
      const first = devices.length + 1;
      const started = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const thing = `gw-${first + i}`;
          const file = join(dir, `readings-${thing}.csv`);
          if (!extra.source) await writeFile(file, staggered(readings, first + i));
          return startDevice({
            thing,
            model: options.model,
            stateDir: join(dir, 'devices', thing),
            mqttEndpoint: stack.endpoints.mqtt,
            s3Endpoint: stack.endpoints.s3,
            publicKeyPem: stack.publicKeyPem,
            source: { kind: 'csv', file, rate: 20 },
            batch: { maxAgeMs: 1_000 },
            statusIntervalMs: 60_000,
            hardExamples: { bucket: buckets.datasets.localName, flushMs: 1_000, maxPerMinute: 300 },
            ...extra,
          });
        }),
      );
      for (const device of started) {
        device.events.on('model', ({ version }: { version: number }) =>
          installs.push({ thing: device.thing, version, at: Date.now() }),
        );
        devices.push(device);
      }
    },
    async upload(model, fileName, csv) {
      const at = Date.now();
      await s3Client().send(
        new PutObjectCommand({
          Bucket: buckets.datasets.localName,
          Key: datasetKeys.dataset(model, fileName),
          Body: csv,
          ContentType: 'text/csv',
        }),
      );
      return at;
    },
    async putConfig(model, config) {
      await s3Client().send(
        new PutObjectCommand({
          Bucket: buckets.datasets.localName,
          Key: datasetKeys.config(model),
          Body: JSON.stringify(config),
        }),
      );
    },
    registry: (model) => listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, model),
    async stop() {
      await Promise.allSettled(devices.map((device) => device.stop()));
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}

/**
 * The readings as gateway n replays them: from row 20 n on, wrapping around. Gateways started
 * together would otherwise read the same row at the same moment, so a canary cohort's first
 * 150 results would be some 25 rows (seen by every canary at once), and on some stretches of
 * the file a good model trails the current one there by 20 points: a rollback by chance.
 * Staggered, they are rows from all over the file: measured for this fixture's v2 against
 * v1, the worst start costs 7.5 points (20 with every gateway in step; rollback at 10).
 */
function staggered(csv: string, n: number): string {
  const [header = '', ...rows] = csv.trimEnd().split('\n');
  const from = (n * 20) % rows.length;
  return `${[header, ...rows.slice(from), ...rows.slice(0, from)].join('\n')}\n`;
}

/** The demo dataset with every label moved to the next class: fits its own split, wrong live. */
export function mislabelledDataset(seed: number, rows = 600): string {
  const shift = new Map(DEMO_CONDITIONS.map((name, i) => [name, DEMO_CONDITIONS[(i + 1) % 4] ?? name]));
  const [header = '', ...lines] = generateDemoDataset({ rows, seed }).trimEnd().split('\n');
  return `${[header, ...lines.map((line) => line.replace(/[^,]+$/, (label) => shift.get(label as never) ?? label))].join('\n')}\n`;
}

export async function waitUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The newest run of a model once it left `training` (and `canary` when settled is asked). */
export async function finishedRun(
  fleet: Fleet,
  model: string,
  version: number,
  accept: readonly RegistryItem['status'][],
): Promise<RegistryItem | undefined> {
  const item = (await fleet.registry(model)).find((run) => run.version === version);
  return item && accept.includes(item.status) ? item : undefined;
}
