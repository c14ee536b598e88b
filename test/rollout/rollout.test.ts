/**
 * Staged rollout end to end on the real local stack: the training function, the aggregators,
 * the scheduled rollout controller and 20 device services. A good model goes canary ->
 * promoted -> the whole fleet; a mislabelled one is rolled back and no gateway outside its
 * canary cohort ever runs it. Hard examples the gateways upload are labelled with the CLI
 * and join the next training run.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { type Fleet, mislabelledDataset, startFleet, waitUntil } from '../../bench/support/rollout-fleet.ts';
import {
  listFeedbackObjects,
  readFeedbackTable,
  readModelFeedback,
} from '../../functions/rollout/feedback-store.ts';
import { getObjectBytes } from '../../functions/training/config.ts';
import { s3Client } from '../../shared/aws.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { UNKNOWN_CLASS } from '../../shared/novelty.ts';
import { inCanaryCohort } from '../../shared/rollout/cohort.ts';
import { ManifestSchema, type RegistryItem, type TrainingConfigInput } from '../../shared/schemas.ts';
import { buckets, modelKeys } from '../../shared/topology.ts';

const MODEL = 'rollout-sensors';
const DEVICES = 20;
const CANARY_PERCENT = 30;
const TIMEOUT = 60_000;

const CONFIG: TrainingConfigInput = {
  label: 'condition',
  epochs: 25,
  gateMargin: 0.1,
  rollout: {
    canaryPercent: CANARY_PERCENT,
    minResults: 150,
    minDurationMs: 1_500,
    maxAccuracyDrop: 0.1,
    maxLowConfidenceDelta: 0.25,
    minLabelled: 100,
  },
};

let fleet: Fleet;

/** Waits, and on a timeout says what the controller sees, the registry, and where the gateways are. */
const diagnosed = async <T>(wait: Promise<T>): Promise<T> => {
  try {
    return await wait;
  } catch (error) {
    const report = await fleet.stack.rolloutController.runNow();
    const runs = (await fleet.registry(MODEL)).map(({ version, status, reason, drift }) => ({
      version,
      status,
      reason,
      drift,
    }));
    const versions = fleet.devices.map((device) => `${device.thing}=v${device.status().version}`);
    throw new Error(
      `${(error as Error).message}; controller: ${JSON.stringify(report)}; registry: ${JSON.stringify(runs)}; ${versions.join(' ')}`,
    );
  }
};
const settled = (version: number, statuses: RegistryItem['status'][]) =>
  diagnosed(
    waitUntil(
      async () => {
        const item = (await fleet.registry(MODEL)).find((run) => run.version === version);
        return item && statuses.includes(item.status) ? item : undefined;
      },
      TIMEOUT,
      `v${version} to be ${statuses.join(' or ')}`,
      100,
    ),
  );
const serving = (things: readonly string[], version: number) =>
  diagnosed(
    waitUntil(
      () =>
        fleet.devices.filter((d) => things.includes(d.thing)).every((d) => d.status().version === version) ||
        undefined,
      TIMEOUT,
      `${things.length} gateways to serve v${version}`,
    ),
  );
const things = () => fleet.devices.map((device) => device.thing);

beforeAll(async () => {
  fleet = await startFleet({ model: MODEL });
  await fleet.putConfig(MODEL, CONFIG);
  await fleet.startDevices(DEVICES);
  // The first release has nothing to compare with: it goes to the whole fleet.
  await fleet.upload(MODEL, 'v1.csv', generateDemoDataset({ rows: 600, seed: 1 }));
  const v1 = await settled(1, ['released', 'rejected', 'rejected-by-gate', 'failed']);
  expect(v1.status).toBe('released');
  await serving(things(), 1);
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
}, 60_000);

describe('staged rollout', () => {
  it('sends a good model to its canary cohort first, promotes it, and then the whole fleet runs it', async () => {
    // Prepare
    const cohort = things().filter((thing) => inCanaryCohort(thing, 2, CANARY_PERCENT));
    expect(cohort.length).toBeGreaterThan(0);
    expect(cohort.length).toBeLessThan(DEVICES);

    // Act
    await fleet.upload(MODEL, 'v2.csv', generateDemoDataset({ rows: 600, seed: 2 }));
    const canary = await settled(2, ['canary', 'released', 'rejected-by-gate', 'failed']);
    const promoted = await settled(2, ['released', 'rolled-back']);
    await serving(things(), 2);

    // Assess
    expect(canary.status).not.toMatch(/rejected|failed/);
    expect(promoted.status, promoted.reason).toBe('released');
    expect(promoted.rollout).toMatchObject({ previousVersion: 1, decision: 'promote' });
    const decidedAt = Date.parse(promoted.rollout?.decidedAt ?? '');
    const early = fleet.installs.filter((install) => install.version === 2 && install.at < decidedAt);
    expect(early.length).toBeGreaterThan(0);
    for (const install of early) expect(cohort).toContain(install.thing);
  }, 120_000);

  it('rolls a mislabelled model back automatically; no gateway outside the cohort ever ran it', async () => {
    // Prepare
    const cohort = things().filter((thing) => inCanaryCohort(thing, 3, CANARY_PERCENT));
    expect(cohort.length).toBeGreaterThan(0);

    // Act
    await fleet.upload(MODEL, 'v3.csv', mislabelledDataset(3));
    const canary = await settled(3, ['canary', 'released', 'rolled-back', 'rejected-by-gate', 'failed']);
    const outcome = await settled(3, ['released', 'rolled-back']);
    await serving(things(), 2);

    // Assess
    expect(canary.status, canary.reason).not.toMatch(/rejected|failed/);
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.rollout).toMatchObject({ previousVersion: 2, decision: 'rollback' });
    expect(outcome.reason).toMatch(/rollback: live accuracy/);
    const ranIt = new Set(fleet.installs.filter((i) => i.version === 3).map((i) => i.thing));
    expect(ranIt.size).toBeGreaterThan(0);
    for (const thing of ranIt) expect(cohort).toContain(thing);
    // The cohort went back to v2 through the explicit rollback notice.
    for (const thing of ranIt) {
      const last = fleet.installs.filter((i) => i.thing === thing).at(-1);
      expect(last?.version).toBe(2);
    }
  }, 120_000);
});

describe('hard examples', () => {
  it('land in the datasets bucket, get labelled with the CLI, and join the next training run', async () => {
    // Prepare: one more gateway whose readings carry no truth, so its hard examples need labels.
    const readings = generateDemoDataset({ rows: 400, seed: 99 }).trimEnd().split('\n');
    const unlabelledFile = join(fleet.dir, 'unlabelled.csv');
    await writeFile(unlabelledFile, `${readings.map((line) => line.replace(/,[^,]*$/, '')).join('\n')}\n`);
    await fleet.startDevices(1, { source: { kind: 'csv', file: unlabelledFile, rate: 40 } });
    const thing = fleet.devices.at(-1)?.thing ?? '';
    const truthOf = (id: string) => readings[1 + (Number(id.split(':')[1]) % 400)]?.split(',').at(-1) ?? '';

    // Act: wait for both kinds of feedback, then label the unlabelled file from the truth.
    const bucket = buckets.datasets.localName;
    const key = await waitUntil(
      async () =>
        (await listFeedbackObjects(s3Client(), bucket, MODEL)).find((o) => o.key.includes(`/${thing}/`))?.key,
      TIMEOUT,
      `hard examples from ${thing} in the bucket`,
      250,
    );
    const feedback = {
      current: await readModelFeedback(s3Client(), bucket, MODEL),
      unlabelled: { key, table: await readFeedbackTable(s3Client(), bucket, key) },
    };
    const listed = await runCli([
      'feedback',
      'list',
      '--model',
      MODEL,
      '--json',
      '--data-dir',
      fleet.stack.dataDir,
    ]);
    const idAt = feedback.unlabelled.table.header.indexOf('feedback_id');
    const ids = feedback.unlabelled.table.rows.map((row) => row[idAt] ?? '');
    const labelsFile = join(fleet.dir, 'labels.csv');
    await writeFile(labelsFile, `feedback_id,label\n${ids.map((id) => `${id},${truthOf(id)}`).join('\n')}\n`);
    const labelled = await runCli([
      'feedback',
      'label',
      feedback.unlabelled.key,
      '--labels',
      labelsFile,
      '--json',
      '--data-dir',
      fleet.stack.dataDir,
    ]);
    await fleet.upload(MODEL, 'v4.csv', generateDemoDataset({ rows: 600, seed: 4 }));
    const run = await settled(4, ['canary', 'released', 'rejected-by-gate', 'failed']);
    const manifest = ManifestSchema.parse(
      JSON.parse(
        new TextDecoder().decode(
          await getObjectBytes(s3Client(), buckets.models.localName, modelKeys.manifest(MODEL, 4)),
        ),
      ),
    );

    // Assess
    expect(feedback.current.labelled).toBeGreaterThan(0);
    expect(listed.code, listed.stderr).toBe(0);
    const listing = JSON.parse(listed.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(listing.unlabelled).toBeGreaterThan(0);
    expect(listing.files.map((f: { key: string }) => f.key)).toContain(feedback.unlabelled.key);
    expect(labelled.code, labelled.stderr).toBe(0);
    expect(JSON.parse(labelled.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({
      key: feedback.unlabelled.key,
      changed: ids.length,
      unlabelled: 0,
    });
    expect(run.status, run.reason).not.toMatch(/rejected|failed/);
    expect(run.feedbackRows).toBeGreaterThan(0);
    expect(manifest.lineage.feedback?.keys).toContain(feedback.unlabelled.key);
    expect(manifest.lineage.feedback?.rows).toBe(run.feedbackRows);
    // Every sampled row was a low-confidence one under the model that served it, or one far
    // from its training data (answered unknown).
    const confidenceAt = feedback.unlabelled.table.header.indexOf('feedback_confidence');
    const predictedAt = feedback.unlabelled.table.header.indexOf('feedback_predicted');
    for (const row of feedback.unlabelled.table.rows)
      if (row[predictedAt] !== UNKNOWN_CLASS)
        expect(Number(row[confidenceAt])).toBeLessThan(manifest.lowConfidence);
  }, 120_000);
});

describe('drift -> retrain', () => {
  it('starts a retrain from the base dataset plus feedback when drift holds, through the same gate', async () => {
    // Prepare: v4 settles; the fleet is replaced by gateways that only ever see overheating machines.
    const v4 = await settled(4, ['released', 'rolled-back']);
    expect(v4.status, v4.reason).toBe('released');
    await fleet.putConfig(MODEL, {
      ...CONFIG,
      retrain: { driftPsi: 0.25, sustainMs: 1_000, windowMs: 60_000 },
      // These gateways' readings carry the truth: this model takes their labels unreviewed.
      trustGatewayLabels: true,
    });
    const [header = '', ...rows] = generateDemoDataset({ rows: 2000, seed: 5 }).trimEnd().split('\n');
    const skewedFile = join(fleet.dir, 'overheating.csv');
    await writeFile(
      skewedFile,
      `${[header, ...rows.filter((row) => row.endsWith(',overheating'))].join('\n')}\n`,
    );
    const before = fleet.devices.length;
    await Promise.all(fleet.devices.map((device) => device.stop()));

    // Act
    await fleet.startDevices(10, { source: { kind: 'csv', file: skewedFile, rate: 100 } });
    const retrain = await diagnosed(
      waitUntil(
        async () => (await fleet.registry(MODEL)).find((run) => run.datasetKey.includes('/retrain-v4-')),
        TIMEOUT,
        'a retrain run of v4',
        250,
      ),
    );
    const done = await settled(retrain.version, ['canary', 'released', 'rejected-by-gate', 'failed']);
    const watched = (await fleet.registry(MODEL)).find((run) => run.version === 4);

    // Assess
    expect(fleet.devices.length).toBe(before + 10);
    expect(watched?.drift?.psi).toBeGreaterThanOrEqual(0.25);
    expect(watched?.drift?.retrainKey).toBe(retrain.datasetKey);
    expect(done.status, done.reason).not.toBe('failed');
    expect(done.feedbackRows).toBeGreaterThan(0);
    // It went through the gate like any run: scored against the release it would replace.
    expect(done.baselineAccuracy).toBeGreaterThan(0);
  }, 120_000);
});
