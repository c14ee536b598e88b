/**
 * Time to fleet and time to rollback, on the real local stack with in-process gateways
 * (the fleet-sim fixture of test/rollout). Each figure comes with a bare baseline measured
 * in the same run, as a ratio (the machines are shared; absolute times wander):
 *
 *  - time to fleet, N = 20 and N = 100: dataset upload -> every gateway serves the new
 *    version, split into train (upload -> registry `released`) and distribution (released ->
 *    last gateway switched). Baselines: the same training in-process (trainFromCsv, no S3,
 *    no registry), and N bare parallel downloads of the version's files from the same S3.
 *  - time to rollback, N = 20 at 20 readings/s each: a mislabelled model released to a 30%
 *    canary -> the controller's rollback decision -> the canary gateways serve the previous
 *    version again. Baseline: the evidence floor, how long the cohort needs to produce the
 *    plan's minResults results at its reading rate.
 *
 *   npx tsx bench/rollout.ts [--sizes 20,100]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { s3Client } from '../shared/aws.ts';
import { generateDemoDataset } from '../shared/demo-dataset.ts';
import { inCanaryCohort } from '../shared/rollout/cohort.ts';
import { RolloutPlanSchema, type TrainingConfigInput, TrainingConfigSchema } from '../shared/schemas.ts';
import { buckets, modelFiles, modelKeys } from '../shared/topology.ts';
import { trainFromCsv } from '../shared/training/train.ts';
import { type Fleet, mislabelledDataset, startFleet, waitUntil } from './support/rollout-fleet.ts';

const MODEL = 'bench-rollout';
const TIMEOUT = 300_000;
const CONFIG: TrainingConfigInput = { label: 'condition', epochs: 25 };
const READING_RATE = 20;

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** Waits for a run to reach one of `statuses`; a run that ends any other way fails the bench. */
async function released(fleet: Fleet, version: number, statuses: string[]) {
  return waitUntil(
    async () => {
      const item = (await fleet.registry(MODEL)).find((run) => run.version === version);
      if (
        item &&
        ['rejected', 'rejected-by-gate', 'failed'].includes(item.status) &&
        !statuses.includes(item.status)
      )
        throw new Error(`v${version} ended ${item.status}: ${item.reason}`);
      return item && statuses.includes(item.status) ? item : undefined;
    },
    TIMEOUT,
    `v${version} to be ${statuses.join(' or ')}`,
    50,
  );
}

async function serving(fleet: Fleet, version: number, things = fleet.devices.map((d) => d.thing)) {
  await waitUntil(
    () =>
      fleet.devices.filter((d) => things.includes(d.thing)).every((d) => d.status().version === version) ||
      undefined,
    TIMEOUT,
    `gateways to serve v${version}`,
    20,
  );
}

/** N parallel downloads of a version's files: the least distribution can cost. */
async function bareDownloadMs(count: number, version: number): Promise<number> {
  const keys = [
    modelKeys.manifest(MODEL, version),
    modelKeys.file(MODEL, version, modelFiles.topology),
    modelKeys.file(MODEL, version, modelFiles.weights),
  ];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: count }, async () => {
      for (const key of keys) {
        const object = await s3Client().send(
          new GetObjectCommand({ Bucket: buckets.models.localName, Key: key }),
        );
        await object.Body?.transformToByteArray();
      }
    }),
  );
  return performance.now() - started;
}

export async function timeToFleet(devices: number) {
  const fleet = await startFleet({ model: MODEL });
  try {
    await fleet.putConfig(MODEL, CONFIG);
    await fleet.startDevices(devices, { source: { kind: 'none' } });
    const csv = generateDemoDataset({ rows: 600, seed: 1 });

    const uploadedAt = await fleet.upload(MODEL, 'data.csv', csv);
    const run = await released(fleet, 1, ['released']);
    await serving(fleet, 1);
    // The same training bare, in this (now warm) process.
    const bareStarted = performance.now();
    await trainFromCsv(csv, TrainingConfigSchema.parse(CONFIG));
    const bareTrainMs = performance.now() - bareStarted;
    const releasedAt = Date.parse(run.updatedAt);
    const servedAt = Math.max(...fleet.installs.filter((i) => i.version === 1).map((i) => i.at));
    const trainMs = releasedAt - uploadedAt;
    const distributionMs = servedAt - releasedAt;
    const downloadMs = await bareDownloadMs(devices, 1);
    return {
      bench: 'rollout-time-to-fleet',
      devices,
      totalMs: servedAt - uploadedAt,
      trainMs,
      distributionMs,
      bareTrainMs: Math.round(bareTrainMs),
      trainRatio: round(trainMs / bareTrainMs),
      bareDownloadMs: Math.round(downloadMs),
      distributionRatio: round(distributionMs / downloadMs),
    };
  } finally {
    await fleet.stop();
  }
}

export async function timeToRollback(devices: number) {
  const plan = RolloutPlanSchema.parse({
    canaryPercent: 30,
    minResults: 100,
    minDurationMs: 1_000,
    minLabelled: 50,
    maxAccuracyDrop: 0.1,
    maxLowConfidenceDelta: 0.25,
  });
  const fleet = await startFleet({ model: MODEL });
  try {
    await fleet.putConfig(MODEL, { ...CONFIG, gateMargin: 0.1, rollout: plan });
    await fleet.startDevices(devices, {
      source: { kind: 'csv', file: fleet.readingsFile, rate: READING_RATE },
    });
    await fleet.upload(MODEL, 'v1.csv', generateDemoDataset({ rows: 600, seed: 1 }));
    await released(fleet, 1, ['released']);
    await serving(fleet, 1);

    await fleet.upload(MODEL, 'v2.csv', mislabelledDataset(2));
    const canary = await released(fleet, 2, ['canary', 'rolled-back', 'released']);
    const outcome = await released(fleet, 2, ['rolled-back', 'released']);
    const cohort = fleet.devices
      .map((d) => d.thing)
      .filter((thing) => inCanaryCohort(thing, 2, plan.canaryPercent));
    await serving(fleet, 1, cohort);
    const canaryAt = Date.parse(canary.rollout?.canaryAt ?? canary.updatedAt);
    const decidedAt = Date.parse(outcome.rollout?.decidedAt ?? outcome.updatedAt);
    const restoredAt = Math.max(
      ...fleet.installs.filter((i) => i.version === 1 && i.at >= canaryAt).map((i) => i.at),
    );
    const floorMs = (plan.minResults / (cohort.length * READING_RATE)) * 1000;
    return {
      bench: 'rollout-time-to-rollback',
      devices,
      cohort: cohort.length,
      outcome: outcome.status,
      reason: outcome.reason,
      canaryToDecisionMs: decidedAt - canaryAt,
      canaryToRestoredMs: restoredAt - canaryAt,
      evidenceFloorMs: Math.round(floorMs),
      decisionRatio: round((decidedAt - canaryAt) / floorMs),
    };
  } finally {
    await fleet.stop();
  }
}

type Scenario = 'fleet' | 'rollback';

/**
 * Each scenario runs in its own process: the handlers keep their AWS clients per process
 * (as in Lambda), so two local stacks one after the other in one process would not work.
 */
function runScenario(scenario: Scenario, devices: number): unknown {
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--scenario', scenario, '--devices', String(devices)],
    { encoding: 'utf8', env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' }, timeout: 2 * TIMEOUT },
  );
  const last = child.stdout.trim().split('\n').at(-1) ?? '';
  if (child.status !== 0 || !last.startsWith('{'))
    throw new Error(`bench rollout ${scenario} (${devices} gateways) failed: ${child.stderr.slice(-2000)}`);
  return JSON.parse(last);
}

export async function main(options: { sizes?: number[] } = {}): Promise<void> {
  for (const devices of options.sizes ?? [20, 100])
    console.log(JSON.stringify(runScenario('fleet', devices)));
  console.log(JSON.stringify(runScenario('rollback', 20)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { sizes: { type: 'string' }, scenario: { type: 'string' }, devices: { type: 'string' } },
  });
  const devices = Number(values.devices ?? 20);
  if (values.scenario === 'fleet') console.log(JSON.stringify(await timeToFleet(devices)));
  else if (values.scenario === 'rollback') console.log(JSON.stringify(await timeToRollback(devices)));
  else await main(values.sizes ? { sizes: values.sizes.split(',').map(Number) } : {});
}
