/**
 * `edgeloop upload` in a child process against a local stack started here (with its
 * dashboard): the bytes arrive intact through the progress-reporting stream, the training
 * trigger fires, progress goes to stderr and the result to stdout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBin } from '../../bench/support/cli.ts';
import { DashboardSnapshotSchema } from '../../infra/local/dashboard/snapshot.ts';
import { type LocalStack, readEndpoints, startLocalStack } from '../../infra/local/stack.ts';
import { s3Client } from '../../shared/aws.ts';
import { buckets, datasetKeys } from '../../shared/topology.ts';

describe('edgeloop upload', () => {
  let dir: string;
  let stack: LocalStack;
  const trainEvents: unknown[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-upload-'));
    stack = await startLocalStack({
      dataDir: join(dir, 'stack'),
      dashboard: true,
      handlers: { train: async (event) => void trainEvents.push(event) },
    });
  });

  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('streams the file to the datasets bucket with its progress on stderr and starts training', async () => {
    // Prepare: 200 KB, several stream chunks, with bytes that show any re-encoding
    const csv = `a,b,label\n${Array.from({ length: 20_000 }, (_, i) => `${i},${i % 7},é${i % 3}`).join('\n')}\n`;
    const file = join(dir, 'pumps.csv');
    writeFileSync(file, csv);

    // Act
    const { stdout, stderr } = await runBin([
      'upload',
      file,
      '--model',
      'pumps',
      '--data-dir',
      stack.dataDir,
    ]);
    await stack.idle();
    const stored = await s3Client().send(
      new GetObjectCommand({
        Bucket: buckets.datasets.localName,
        Key: datasetKeys.dataset('pumps', 'pumps.csv'),
      }),
    );
    const bytes = Buffer.from((await stored.Body?.transformToByteArray()) ?? []);

    // Assess
    expect(bytes.equals(Buffer.from(csv))).toBe(true);
    expect(stderr).toMatch(/^upload: (\d+\.\d KiB) \/ \1\n$/);
    expect(stdout).toMatch(/^uploaded \d+\.\d KiB to s3:\/\/.*pumps\.csv: training starts now/);
    expect(trainEvents).toHaveLength(1);
  });

  it('prints one JSON line with --json and nothing on stderr', async () => {
    // Prepare
    const file = join(dir, 'small.csv');
    writeFileSync(file, 'a,label\n1,x\n');

    // Act
    const { stdout, stderr } = await runBin([
      'upload',
      file,
      '--model',
      'pumps',
      '--json',
      '--data-dir',
      stack.dataDir,
    ]);

    // Assess
    expect(stderr).toBe('');
    expect(JSON.parse(stdout)).toMatchObject({ bytes: 12, key: datasetKeys.dataset('pumps', 'small.csv') });
  });

  it('puts a checked edgeloop.json before the dataset with --config, and refuses a bad one', async () => {
    // Prepare
    const file = join(dir, 'fans.csv');
    writeFileSync(file, 'ts,machine,ax,state\n0,m1,0.1,idle\n');
    const config = join(dir, 'edgeloop.json');
    writeFileSync(
      config,
      JSON.stringify({ label: 'state', window: { time: 'ts', sizeMs: 1000, strideMs: 500 } }),
    );
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ window: { time: 'ts', sizeMs: 1000, strideMs: 5000 } }));

    // Act
    const run = await runBin([
      'upload',
      file,
      '--model',
      'fans',
      '--config',
      config,
      '--json',
      '--data-dir',
      stack.dataDir,
    ]);
    const refused = await runBin([
      'upload',
      file,
      '--model',
      'fans',
      '--config',
      bad,
      '--data-dir',
      stack.dataDir,
    ]);
    const stored = await s3Client().send(
      new GetObjectCommand({ Bucket: buckets.datasets.localName, Key: datasetKeys.config('fans') }),
    );

    // Assess
    expect(JSON.parse(run.stdout)).toMatchObject({ configKey: datasetKeys.config('fans') });
    expect(JSON.parse((await stored.Body?.transformToString()) ?? '{}').window.sizeMs).toBe(1000);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /bad\.json is not a valid training config: window\.strideMs: strideMs must not exceed sizeMs/,
    );
  });

  it('says in one line what to do when no stack runs there', async () => {
    // Act
    const failed = await runBin([
      'upload',
      join(dir, 'small.csv'),
      '--model',
      'pumps',
      '--data-dir',
      join(dir, 'none'),
    ]);

    // Assess
    expect(failed).toMatchObject({ code: 1 });
    expect(failed.stderr).toMatch(/^edgeloop upload: no local stack in .*: start one with `edgeloop up`\n$/);
  });

  it('serves the dashboard on the stack and remembers its URL for other commands', async () => {
    // Act
    const endpoints = readEndpoints(stack.dataDir);
    const response = await fetch(new URL('api/snapshot', endpoints.dashboard));
    const snapshot = DashboardSnapshotSchema.safeParse(await response.json());

    // Assess
    expect(endpoints.dashboard).toBe(stack.endpoints.dashboard);
    expect(response.status).toBe(200);
    expect(snapshot.success).toBe(true);
  });
});
