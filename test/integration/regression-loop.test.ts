/**
 * The regression loop through the real local servers: a dataset and its edgeloop.json
 * (`"task": "regression"`) are uploaded, the training handler trains, gates (against the mean
 * predictor) and releases; gateways replay cycles the model never saw; the aggregator's live
 * RMSE matches the trainer's own RMSE on the same readings, and `edgeloop stats` and
 * `edgeloop score --model` say the same.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { type DemoRun, ENERGY_DEMO, runDemo } from '../../infra/local/demo.ts';
import { s3Client } from '../../shared/aws.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import { ENERGY_LABEL, generateEnergyDataset } from '../../shared/demo-dataset.ts';
import { ManifestSchema } from '../../shared/schemas.ts';
import { buckets, modelFiles, modelKeys } from '../../shared/topology.ts';
import { rmseOnRows } from '../../shared/training/train.ts';
import { WHOLE_LOOP_TEST_MS, WHOLE_LOOP_WAIT_MS } from './whole-loop.ts';

let run: DemoRun | undefined;
afterAll(async () => run?.stop());

async function modelObject(key: string): Promise<Uint8Array> {
  const object = await s3Client().send(new GetObjectCommand({ Bucket: buckets.models.localName, Key: key }));
  return (await object.Body?.transformToByteArray()) ?? new Uint8Array();
}

describe('the regression loop on the local stack', { timeout: WHOLE_LOOP_TEST_MS }, () => {
  it('trains a number from an upload, releases, and live RMSE on unseen cycles matches the offline RMSE', async () => {
    // Act
    run = await runDemo({ devices: 2, model: 'energy', task: 'regression', timeoutMs: WHOLE_LOOP_WAIT_MS });
    const { summary } = run;

    // Assess: the release is a regression model that beat the mean predictor.
    expect(summary.version).toBe(1);
    expect(summary.metrics.r2).toBeGreaterThan(0.8);
    const manifest = ManifestSchema.parse(
      JSON.parse(new TextDecoder().decode(await modelObject(modelKeys.manifest('energy', 1)))),
    );
    expect(manifest.preprocessing.task).toBe('regression');
    expect(manifest.metrics.regression?.rmse).toBe(summary.metrics.rmse);
    expect(summary.results.published).toBe(2 * ENERGY_DEMO.replay.rows);
    expect(summary.results.aggregated).toBe(summary.results.published);

    // The trainer's own RMSE on the readings the gateways replayed (each gateway replays them all).
    const replay = parseCsvReadings(generateEnergyDataset(ENERGY_DEMO.replay), 'replay: ').rows;
    const offline = await rmseOnRows(
      {
        modelJson: await modelObject(modelKeys.file('energy', 1, modelFiles.topology)),
        weights: await modelObject(modelKeys.file('energy', 1, modelFiles.weights)),
      },
      manifest.preprocessing,
      replay,
      replay.map((row) => String(row[ENERGY_LABEL])),
    );
    const live = summary.liveRmse as number;
    expect(live).toBeGreaterThan(0);
    expect(Math.abs(live - offline) / offline).toBeLessThanOrEqual(0.1);

    // `edgeloop stats` shows the regression view; `edgeloop score --model` the same error.
    const dataDir = run.summary.dataDir;
    const stats = await runCli(['stats', '--model', 'energy', '--since', '1h', '--data-dir', dataDir]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/prediction {4}mean [\d.]+, std [\d.]+, p50 [\d.]+, p90 [\d.]+/);
    expect(stats.stdout).toMatch(
      new RegExp(`live error {4}RMSE [\\d.]+, MAE [\\d.]+ over ${2 * replay.length} labelled`),
    );
    expect(stats.stdout).not.toMatch(/class mix/);
    const file = join(dataDir, '..', 'energy-unseen.csv');
    await writeFile(file, generateEnergyDataset(ENERGY_DEMO.replay));
    const scored = await runCli(['score', '--model', 'energy', file, '--data-dir', dataDir]);
    expect(scored.code).toBe(0);
    const rmse = Number(/against the file's kwh: RMSE ([\d.]+)/.exec(scored.stdout)?.[1]);
    expect(rmse).toBeCloseTo(offline, 2);
  });
});
