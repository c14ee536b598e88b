/**
 * A user's upload with the real AWS CLI (Debian `awscli`; .ci/run installs it): `edgeloop up
 * --json` prints the endpoint, region and credentials; `aws s3 sync` puts a folder of
 * gzip'd CSV parts under datasets/<model>/<run>/, `aws s3 cp` adds the `_SUCCESS` marker,
 * and one training run trains on every part. Skipped, with a note, where `aws` is missing.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBin } from '../../bench/support/cli.ts';
import { writeTelemetryParts } from '../../bench/telemetry-files.ts';
import { listRegistry } from '../../functions/training/registry.ts';
import { type Manifest, ManifestSchema, type RegistryItem } from '../../shared/schemas.ts';
import { buckets, datasetKeys, tables } from '../../shared/topology.ts';
import { peerAvailable } from '../support/peers.ts';

const awsVersion = spawnSync('aws', ['--version'], { encoding: 'utf8' });
const available = peerAvailable(
  'AWS CLI upload',
  awsVersion.status === 0 ? undefined : '`aws` is missing',
  'apt-get install awscli',
);

const run = promisify(execFile);

interface UpLine {
  s3: string;
  dynamodb: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  buckets: { datasets: string; models: string };
}

describe.runIf(available)('uploading a folder of parts with the AWS CLI', () => {
  let dataDir: string;
  let up: ChildProcess;
  let line: UpLine;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'edgeloop-awscli-'));
    up = spawn(
      process.execPath,
      [cliBin, 'up', '--json', '--no-dashboard', '--data-dir', join(dataDir, 'stack')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    line = await new Promise<UpLine>((resolve, reject) => {
      let buffered = '';
      up.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const end = buffered.indexOf('\n');
        if (end >= 0) resolve(JSON.parse(buffered.slice(0, end)) as UpLine);
      });
      up.once('exit', (code) => reject(new Error(`edgeloop up exited with ${code}`)));
    });
  }, 30_000);

  afterAll(() => {
    up.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('trains one run on every part once the _SUCCESS marker lands', async () => {
    // Prepare
    const folder = join(dataDir, 'parts');
    const names = await writeTelemetryParts(folder, 1200, 3, 'csv.gz');
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: line.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: line.credentials.secretAccessKey,
      AWS_DEFAULT_REGION: line.region,
      AWS_CONFIG_FILE: join(dataDir, 'no-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dataDir, 'no-credentials'),
    };
    const target = `s3://${line.buckets.datasets}/${datasetKeys.partsFolder('pumps', 'day-1')}`;
    const aws = (...args: string[]) => run('aws', ['--endpoint-url', line.s3, ...args], { env });

    // Act: the parts first (sync leaves the marker out), then the marker.
    await aws('s3', 'sync', folder, target, '--exclude', datasetKeys.successMarker);
    await aws('s3', 'cp', join(folder, datasetKeys.successMarker), `${target}${datasetKeys.successMarker}`);
    const item = await releasedVersion(line, 'pumps');

    // Assess
    expect(item).toMatchObject({
      status: 'released',
      datasetKey: datasetKeys.successKey('pumps', 'day-1'),
      datasetParts: 3,
    });
    const manifest = await storedManifest(line, item.manifestKey ?? '');
    expect(manifest.lineage.rows).toBe(1200);
    expect(
      manifest.lineage.parts?.map((part) => [part.key.split('/').pop(), part.sha256, part.rows]),
    ).toEqual(
      names.map((name) => [
        name,
        createHash('sha256')
          .update(readFileSync(join(folder, name)))
          .digest('hex'),
        400,
      ]),
    );
  }, 120_000);
});

async function releasedVersion(line: UpLine, model: string): Promise<RegistryItem> {
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: line.dynamodb, region: line.region, credentials: line.credentials }),
  );
  const deadline = Date.now() + 100_000;
  try {
    for (;;) {
      const [item] = await listRegistry({ ddb, table: tables.registry.localName }, model);
      if (item && item.status !== 'training') return item;
      if (Date.now() > deadline)
        throw new Error(`no finished run of ${model}; last seen ${JSON.stringify(item)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    ddb.destroy();
  }
}

async function storedManifest(line: UpLine, key: string): Promise<Manifest> {
  const s3 = new S3Client({
    endpoint: line.s3,
    region: line.region,
    credentials: line.credentials,
    forcePathStyle: true,
  });
  try {
    const result = await s3.send(new GetObjectCommand({ Bucket: buckets.models.localName, Key: key }));
    return ManifestSchema.parse(JSON.parse((await result.Body?.transformToString()) ?? ''));
  } finally {
    s3.destroy();
  }
}
