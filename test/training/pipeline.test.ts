import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetRetainedMessageCommand } from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ReleaseWatcher,
  recordTrainEvents,
  startTestStack,
  watchReleaseNotices,
} from '../../bench/support/local-stack.ts';
import { eventually } from '../../bench/support/thing-client.ts';
import type { TrainingDeps, TrainingLog } from '../../functions/training/deps.ts';
import { currentRelease, listRegistry } from '../../functions/training/registry.ts';
import {
  createTrainingSteps,
  newRunState,
  runTraining,
  type TrainingSteps,
} from '../../functions/training/steps.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { normalAndFaulty } from '../../shared/anomaly-dataset.ts';
import { dynamoClient, iotDataClient, s3Client } from '../../shared/aws.ts';
import { generateDemoDataset, generateEnergyDataset } from '../../shared/demo-dataset.ts';
import {
  generateSigningKeyPair,
  pemSigner,
  sha256Hex,
  verifyManifestSignature,
} from '../../shared/manifest.ts';
import { noticeRefusal } from '../../shared/notice.ts';
import { ManifestSchema, ReleaseNoticeSchema, type TrainingConfigInput } from '../../shared/schemas.ts';
import { buckets, datasetKeys, modelKeys, tables, topicFor } from '../../shared/topology.ts';
import { fixture } from './fixtures.ts';

const quiet: TrainingLog = { info() {}, warn() {}, error() {} };
const keys = generateSigningKeyPair();
// The stack's S3 notification hands the train function's events to this recorder; the tests
// run the pipeline steps themselves, with their own signing key.
const trainEvents = recordTrainEvents();
let stack: LocalStack;
let watcher: ReleaseWatcher;
let deps: TrainingDeps;
let steps: TrainingSteps;

beforeAll(async () => {
  stack = await startTestStack({ handlers: trainEvents.handlers });
  watcher = await watchReleaseNotices(stack);
  deps = {
    s3: s3Client(),
    ddb: dynamoClient(),
    iot: iotDataClient(),
    datasetsBucket: buckets.datasets.localName,
    modelsBucket: buckets.models.localName,
    registryTable: tables.registry.localName,
    idempotencyTable: tables.idempotency.localName,
    signer: async () => pemSigner(keys.privateKeyPem, 'test'),
    log: quiet,
  };
  steps = createTrainingSteps(deps);
});

afterAll(async () => {
  await watcher?.close();
  await stack?.stop();
});

async function put(key: string, body: string | Uint8Array): Promise<void> {
  await s3Client().send(new PutObjectCommand({ Bucket: buckets.datasets.localName, Key: key, Body: body }));
}

/** Uploads a dataset and returns the S3 event record the stack's bucket notification delivered. */
async function upload(model: string, file: string, body: string | Uint8Array): Promise<unknown> {
  const key = datasetKeys.dataset(model, file);
  const before = trainEvents.records.length;
  await put(key, body);
  await stack.idle();
  const record = trainEvents.records.slice(before).find((event) => event.s3.object.key === key);
  if (!record) throw new Error(`the local stack delivered no S3 event for ${key}`);
  return record;
}

async function configure(model: string, config: TrainingConfigInput): Promise<void> {
  await put(datasetKeys.config(model), JSON.stringify(config));
}

async function modelObject(key: string): Promise<Uint8Array | undefined> {
  try {
    const result = await s3Client().send(
      new GetObjectCommand({ Bucket: buckets.models.localName, Key: key }),
    );
    return await result.Body?.transformToByteArray();
  } catch {
    return undefined;
  }
}

const releaseNotices = (model: string) =>
  watcher.notices.filter((message) => message.topic === topicFor('release', { model }));

/** Waits until the subscribed gateway has seen `count` release notices of `model`. */
const noticesArrive = (model: string, count: number) =>
  eventually(() => releaseNotices(model).length >= count, 5000, `${count} release notice(s) of ${model}`);

const small = generateDemoDataset({ rows: 400, seed: 1 });
/** The generated pumps' first reading (shared/anomaly-dataset.ts). */
const T0 = Date.UTC(2026, 10, 2);

const tsxCli = join(import.meta.dirname, '..', '..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
const trainTask = join(import.meta.dirname, '..', '..', 'functions', 'train-task.ts');

/** Runs functions/train-task.ts as the managed job does: a process of its own, state in env. */
async function runTrainTask(state: unknown): Promise<{ exitCode: number; stderr: string }> {
  try {
    const { stderr } = await promisify(execFile)(process.execPath, [tsxCli, trainTask], {
      env: { ...process.env, EDGELOOP_STATE: JSON.stringify(state) },
    });
    return { exitCode: 0, stderr };
  } catch (error) {
    const failed = error as { code?: number; stderr?: string };
    return { exitCode: failed.code ?? -1, stderr: failed.stderr ?? String(error) };
  }
}

describe('training pipeline against the local S3, dynalite and a Publish endpoint', () => {
  it('releases a first version: artifacts, signed manifest, registry entry, retained notice', async () => {
    // Prepare
    await configure('pump', { epochs: 12 });
    const record = await upload('pump', 'day1.csv', small);
    // Act
    const state = await runTraining(record, steps);
    // Assess
    expect(state.outcome).toBe('released');
    expect(state.version).toBe(1);
    const item = (await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'pump'))[0];
    expect(item).toMatchObject({
      model: 'pump',
      version: 1,
      status: 'released',
      datasetKey: 'datasets/pump/day1.csv',
    });
    expect(item?.metrics?.accuracy).toBeGreaterThan(0.7);
    expect(item?.datasetSha256).toBe(sha256Hex(small));

    const manifestRaw = await modelObject(modelKeys.manifest('pump', 1));
    expect(manifestRaw && sha256Hex(manifestRaw)).toBe(item?.manifestSha256);
    const manifest = ManifestSchema.parse(JSON.parse(new TextDecoder().decode(manifestRaw)));
    verifyManifestSignature(manifest, keys.publicKeyPem);
    // The tuner's search: every candidate's validation score and the choice, in both places.
    expect(manifest.tuning?.candidates.length).toBeGreaterThan(0);
    expect(item?.tuning).toEqual(manifest.tuning);
    for (const file of manifest.files) {
      const bytes = await modelObject(modelKeys.file('pump', 1, file.name));
      expect(bytes && sha256Hex(bytes)).toBe(file.sha256);
    }

    await noticesArrive('pump', 1);
    const [notice] = releaseNotices('pump');
    // Retained at QoS 1: IoT's GetRetainedMessage (the stack's shim) returns it for late gateways.
    const retained = await deps.iot.send(
      new GetRetainedMessageCommand({ topic: topicFor('release', { model: 'pump' }) }),
    );
    expect(retained).toMatchObject({ qos: 1 });
    expect(Buffer.from(retained.payload ?? new Uint8Array()).toString('utf8')).toBe(notice?.payload);
    const parsed = ReleaseNoticeSchema.parse(JSON.parse(notice?.payload ?? ''));
    expect(parsed).toMatchObject({
      model: 'pump',
      version: 1,
      manifestKey: modelKeys.manifest('pump', 1),
      manifestSha256: item?.manifestSha256,
      kind: 'release',
    });
    // Signed by the manifest key, with an expiry: a gateway acts on nothing else.
    expect(noticeRefusal(parsed, keys.publicKeyPem, Date.now())).toBeUndefined();
  });

  it('starts exactly one run when the same S3 event is delivered twice, even at once', async () => {
    // Prepare
    await configure('dup', { epochs: 4 });
    const record = await upload('dup', 'once.csv', small);
    // Act
    const runs = await Promise.all([runTraining(record, steps), runTraining(record, steps)]);
    const late = await runTraining(record, steps);
    // Assess
    expect(runs.map((run) => run.outcome).sort()).toEqual(['released', 'skipped']);
    expect(late.outcome).toBe('skipped');
    expect(await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'dup')).toHaveLength(1);
    await noticesArrive('dup', 1);
    expect(releaseNotices('dup')).toHaveLength(1);
  });

  it('gives two uploads at the same moment two distinct versions', async () => {
    await configure('twin', { epochs: 4 });
    const first = await upload('twin', 'a.csv', small);
    const second = await upload('twin', 'b.csv', generateDemoDataset({ rows: 400, seed: 2 }));
    const runs = await Promise.all([runTraining(first, steps), runTraining(second, steps)]);
    expect(runs.map((run) => run.version).sort()).toEqual([1, 2]);
    const items = await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'twin');
    expect(items.map((item) => item.datasetKey).sort()).toEqual([
      'datasets/twin/a.csv',
      'datasets/twin/b.csv',
    ]);
  });

  it('records a broken dataset as rejected, publishes nothing, and keeps the release', async () => {
    // Prepare: 'pump' v1 is the release from the first test.
    const noticesBefore = releaseNotices('pump').length;
    const record = await upload('pump', 'broken.csv', fixture('broken-half-abc.csv'));
    // Act
    const state = await runTraining(record, steps);
    // Assess
    expect(state.outcome).toBe('rejected');
    const item = await deps.ddb.send(
      new GetCommand({ TableName: deps.registryTable, Key: { model: 'pump', version: state.version } }),
    );
    expect(item.Item).toMatchObject({ status: 'rejected' });
    expect(item.Item?.reason).toMatch(
      /datasets\/pump\/broken\.csv: column 'temperature_c' mixes numbers and text: 20 of 40 values.*'abc' \(data row 1\)/,
    );
    expect(await modelObject(modelKeys.manifest('pump', state.version ?? 0))).toBeUndefined();
    expect(releaseNotices('pump')).toHaveLength(noticesBefore);
    expect((await currentRelease({ ddb: deps.ddb, table: deps.registryTable }, 'pump'))?.version).toBe(1);
  });

  it('records what the run did with the data on the registry entry', async () => {
    // Prepare: a numeric column with 6 text cells in 80 (imputed, under the 20% threshold).
    await configure('noisy', { epochs: 3 });
    const record = await upload('noisy', 'day1.csv', fixture('ok-some-non-numeric.csv'));
    // Act
    const state = await runTraining(record, steps);
    // Assess
    expect(state.outcome).toBe('released');
    const [item] = await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'noisy');
    expect(item?.notices).toContain(
      "column 'temperature_c' is numeric: 6 of 80 values (7.5%) are not numbers and count as missing (e.g. 'hot' (data row 8), 'hot' (data row 14), 'hot' (data row 22))",
    );
  });

  it('rejects a worse model at the gate, with both scores, and keeps the old release', async () => {
    // Prepare: a release trained on every sensor, then a candidate limited to weak features.
    await configure('gated', { epochs: 12 });
    expect((await runTraining(await upload('gated', 'good.csv', small), steps)).outcome).toBe('released');
    await configure('gated', { epochs: 12, features: ['humidity_pct', 'site'], gateMargin: 0.02 });
    // Act
    const state = await runTraining(
      await upload('gated', 'weak.csv', generateDemoDataset({ rows: 400, seed: 3 })),
      steps,
    );
    // Assess
    expect(state.outcome).toBe('rejected-by-gate');
    expect(state.gate?.baselineVersion).toBe(1);
    expect(state.candidate?.baseline?.sameSplit).toBe(true);
    const items = await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'gated');
    const rejected = items.find((item) => item.version === 2);
    expect(rejected?.status).toBe('rejected-by-gate');
    expect(rejected?.baselineAccuracy).toBeGreaterThan((rejected?.metrics?.accuracy ?? 1) + 0.02);
    expect(rejected?.reason).toMatch(/new accuracy 0\.\d{4} vs current release 0\.\d{4}/);
    expect((await currentRelease({ ddb: deps.ddb, table: deps.registryTable }, 'gated'))?.version).toBe(1);
    await noticesArrive('gated', 1);
    expect(releaseNotices('gated').map((notice) => JSON.parse(notice.payload).version)).toEqual([1]);
  });

  it('gates a regression model by RMSE: a worse version is rejected against the release on the same rows', async () => {
    // Prepare: a release that sees every column, then a candidate limited to the weakest one.
    await configure('energy', { task: 'regression', label: 'kwh', epochs: 20 });
    const energy = generateEnergyDataset({ rows: 600, seed: 5 });
    expect((await runTraining(await upload('energy', 'full.csv', energy), steps)).outcome).toBe('released');
    await configure('energy', { task: 'regression', label: 'kwh', epochs: 20, features: ['coolant'] });
    // Act
    const state = await runTraining(await upload('energy', 'coolant-only.csv', energy), steps);
    // Assess
    expect(state.outcome).toBe('rejected-by-gate');
    expect(state.gate?.baselineRmse).toBeLessThan(state.gate?.rmse ?? 0);
    const items = await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'energy');
    const rejected = items.find((item) => item.version === 2);
    expect(rejected?.reason).toMatch(
      /^worse than the current release: new RMSE [\d.]+ vs current release [\d.]+ \(margin 0.02, relative\) \(v1\)$/,
    );
    expect(rejected?.baselineRmse).toBe(state.gate?.baselineRmse);
    expect((await currentRelease({ ddb: deps.ddb, table: deps.registryTable }, 'energy'))?.version).toBe(1);
  });

  it('rejects a first version under the macro-F1 floor of the config, with the figure', async () => {
    // Prepare
    await configure('strict', { epochs: 2, gateMinMacroF1: 1 });
    // Act
    const state = await runTraining(await upload('strict', 'day1.csv', small), steps);
    // Assess
    expect(state.outcome).toBe('rejected-by-gate');
    const [item] = await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'strict');
    expect(item).toMatchObject({ status: 'rejected-by-gate' });
    expect(item?.reason).toMatch(/^below the config's floor: macro-F1 0\.\d{4} < gateMinMacroF1 1$/);
    expect(await modelObject(modelKeys.manifest('strict', state.version ?? 0))).toBeUndefined();
  });

  it('rejects an invalid edgeloop.json with the config path and the field', async () => {
    await configure('badcfg', { epochs: 0 });
    const state = await runTraining(await upload('badcfg', 'x.csv', small), steps);
    expect(state.outcome).toBe('rejected');
    expect(state.reason).toMatch(/datasets\/badcfg\/edgeloop\.json is not a valid training config: epochs: /);
  });

  it('marks an internal failure as failed and frees the event so a retry can run', async () => {
    // Prepare: a models bucket that does not exist makes the artifact upload fail.
    await configure('flaky', { epochs: 3 });
    const record = await upload('flaky', 'x.csv', small);
    const broken = createTrainingSteps({ ...deps, modelsBucket: 'no-such-bucket' });
    // Act
    const failed = await runTraining(record, broken);
    const retried = await runTraining(record, steps);
    // Assess
    expect(failed.outcome).toBe('failed');
    expect(retried.outcome).toBe('released');
    const items = await listRegistry({ ddb: deps.ddb, table: deps.registryTable }, 'flaky');
    expect(items.map((item) => [item.version, item.status])).toEqual([
      [2, 'released'],
      [1, 'failed'],
    ]);
  });

  it('trains on the managed engine in a process of its own, as the Batch job runs the image', async () => {
    // Prepare
    await configure('press', { epochs: 12, engine: 'managed' });
    const record = await upload('press', 'day1.csv', small);
    const validated = await steps.validate(newRunState(record));
    // Act: the job's entry, with the run state in its environment as the state machine passes it.
    const job = await runTrainTask(validated);
    const trained = await steps.collectTrain(validated);
    const gated = await steps.gate(trained);
    const notified = await steps.notify(await steps.publish(gated));
    // Assess
    expect(validated.engine).toBe('managed');
    expect(job.exitCode, job.stderr).toBe(0);
    expect(gated.gate?.accuracy).toBeGreaterThan(0.7);
    expect(notified.outcome).toBe('released');
    await noticesArrive('press', 1);
  });

  it('keeps a bad dataset a rejection across the managed job: the job succeeds, collectTrain rejects', async () => {
    // Prepare
    await configure('press-bad', { epochs: 3, engine: 'managed' });
    const record = await upload('press-bad', 'broken.csv', fixture('broken-half-abc.csv'));
    const validated = await steps.validate(newRunState(record));
    // Act
    const job = await runTrainTask(validated);
    const collected = steps.collectTrain(validated);
    // Assess: stored as a rejection, so Batch and Step Functions do not retry bad input.
    expect(job.exitCode, job.stderr).toBe(0);
    await expect(collected).rejects.toMatchObject({ name: 'InputError' });
  });

  it('scores an anomaly model against datasets/<model>/events.csv and gates on its recall; the upload starts no run', async () => {
    // Prepare: four pumps' normal day and two pumps' day with five faults each; events.csv
    // lists the faults and is uploaded first, beside the dataset.
    const window = {
      time: 'ts',
      series: 'pump',
      sizeMs: 30 * 60_000,
      strideMs: 5 * 60_000,
      frequencyHz: 1 / 60,
    };
    const { normal, faulty } = normalAndFaulty(
      { pumps: 4, minutes: 1440 },
      { pumps: 2, minutes: 1440, firstPump: 4, faults: { perPump: 5 } },
    );
    const csv = normal.csv + faulty.csv.slice(faulty.csv.indexOf('\n') + 1);
    const eventsCsv = (ranges: { series: string; start: number; end: number }[]) =>
      `series,start,end\n${ranges.map((r) => `${r.series},${new Date(r.start).toISOString()},${r.end}`).join('\n')}\n`;
    await configure('pumps-labelled', { task: 'anomaly', window, epochs: 20, gateMinEventRecall: 0.9 });
    const eventsRecord = await upload('pumps-labelled', 'events.csv', eventsCsv(faulty.faults));
    const registry = { ddb: deps.ddb, table: deps.registryTable };

    // Act: the events.csv delivery (the bucket's trigger matches *.csv, in AWS too), then the dataset.
    const fromEvents = await runTraining(eventsRecord, steps);
    const released = await runTraining(await upload('pumps-labelled', 'day.csv', csv), steps);
    // Ranges on the normal pumps' quiet hours: nothing to find there, so the recall falls under the floor.
    const quiet = [1, 2, 3].map((h) => ({
      series: 'pump-01',
      start: T0 + h * 3_600_000,
      end: T0 + h * 3_600_000 + 1_800_000,
    }));
    await put(datasetKeys.events('pumps-labelled'), eventsCsv(quiet));
    const rejected = await runTraining(await upload('pumps-labelled', 'day-2.csv', csv), steps);

    // Assess
    expect(fromEvents).toMatchObject({
      outcome: 'skipped',
      skipped: "'datasets/pumps-labelled/events.csv' is not a dataset key",
    });
    expect(fromEvents.version).toBeUndefined();
    expect(released.outcome).toBe('released');
    expect(released.version).toBe(1);
    const items = await listRegistry(registry, 'pumps-labelled');
    const first = items.find((item) => item.version === 1);
    expect(first?.metrics?.anomaly?.labelled?.ranges).toBe(10);
    expect(first?.metrics?.anomaly?.labelled?.recall).toBeGreaterThanOrEqual(0.9);
    expect(released.gate?.reason).toMatch(
      /event recall \d\.\d{4} on 10 labelled range\(s\) >= gateMinEventRecall 0\.9$/,
    );
    expect(rejected.outcome).toBe('rejected-by-gate');
    const second = items.find((item) => item.version === 2);
    expect(second?.metrics?.anomaly?.labelled).toMatchObject({ ranges: 3, found: 0, recall: 0 });
    expect(second?.reason).toBe(
      "below the config's floor: event recall 0.0000 on 3 labelled range(s) < gateMinEventRecall 0.9 (v1)",
    );
    expect((await currentRelease(registry, 'pumps-labelled'))?.version).toBe(1);
  });

  it('ignores objects that are not datasets without touching the registry', async () => {
    const state = await runTraining(
      { s3: { bucket: { name: buckets.datasets.localName }, object: { key: 'feedback/pump/x.csv' } } },
      steps,
    );
    expect(state.outcome).toBe('skipped');
    expect(state.version).toBeUndefined();
  });
});
