/**
 * Datasets as they land in S3: one dataset written as parts in gzip'd CSV, JSON Lines and
 * Parquet, uploaded with a `_SUCCESS` marker, trains through the local stack (real handler,
 * the local S3's events) to the same accuracy in every format, with every part in the lineage.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { type PartsFormat, writeTelemetryParts } from '../../bench/telemetry-files.ts';
import { listRegistry } from '../../functions/training/registry.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { ManifestSchema } from '../../shared/schemas.ts';
import { buckets, datasetKeys, tables } from '../../shared/topology.ts';

let stack: LocalStack;
let dir: string;

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'ERROR' });
  dir = mkdtempSync(join(tmpdir(), 'edgeloop-formats-'));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function put(key: string, body: Uint8Array | string): Promise<void> {
  await s3Client().send(new PutObjectCommand({ Bucket: buckets.datasets.localName, Key: key, Body: body }));
}

/** Writes the dataset as `format` parts, uploads them, then the marker; returns the finished run. */
async function trainParts(model: string, format: PartsFormat) {
  const folder = join(dir, model);
  await writeTelemetryParts(folder, 2400, 4, format, 11);
  await put(datasetKeys.config(model), JSON.stringify({ epochs: 30 }));
  for (const name of (await readdir(folder)).filter((name) => name !== datasetKeys.successMarker)) {
    await put(`${datasetKeys.partsFolder(model, 'run-1')}${name}`, await readFile(join(folder, name)));
  }
  await stack.idle();
  await put(datasetKeys.successKey(model, 'run-1'), '');
  await stack.idle();
  const [item] = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, model);
  const stored = await s3Client().send(
    new GetObjectCommand({ Bucket: buckets.models.localName, Key: item?.manifestKey ?? '' }),
  );
  const manifest = ManifestSchema.parse(JSON.parse((await stored.Body?.transformToString()) ?? ''));
  return { item, manifest };
}

describe('a partitioned dataset in every format', () => {
  it('trains the csv.gz, jsonl.gz and parquet parts to the same accuracy, once each, on every part', async () => {
    // Act
    const runs = [];
    for (const format of ['csv.gz', 'jsonl.gz', 'parquet'] as const) {
      runs.push(await trainParts(`parts-${format.replace('.', '-')}`, format));
    }

    // Assess
    const accuracies = runs.map((run) => run.manifest.metrics.accuracy);
    for (const run of runs) {
      expect(run.item).toMatchObject({ status: 'released', version: 1, datasetParts: 4 });
      expect(run.manifest.lineage.rows).toBe(2400);
      expect(run.manifest.lineage.parts?.map((part) => part.rows)).toEqual([600, 600, 600, 600]);
      expect(run.manifest.lineage.parts?.every((part) => /^[a-f0-9]{64}$/.test(part.sha256))).toBe(true);
    }
    expect(runs.map((run) => run.manifest.lineage.parts?.[0]?.format)).toEqual(['csv', 'jsonl', 'parquet']);
    expect(accuracies[0]).toBeGreaterThan(0.85);
    for (const accuracy of accuracies)
      expect(Math.abs((accuracy ?? 0) - (accuracies[0] ?? 0))).toBeLessThanOrEqual(0.01);
  }, 180_000);
});
