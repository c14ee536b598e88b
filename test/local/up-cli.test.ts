import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBin } from '../../bench/support/cli.ts';
import { connectThing, withTimeout } from '../../bench/support/thing-client.ts';
import { credentialPath, localCredential } from '../../infra/local/credentials.ts';
import { localKinesisClient } from '../../infra/local/kinesis.ts';
import { type Endpoints, readEndpoints } from '../../infra/local/stack.ts';
import { buckets, streams } from '../../shared/topology.ts';

interface Run {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [cliBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    stdout.push(...lines);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout, stderr: () => stderr, exited };
}

async function firstLine(process: Run): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (process.stdout.length === 0) {
    if (process.child.exitCode !== null) throw new Error(`edgeloop up exited: ${process.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no endpoints line; stderr: ${process.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return process.stdout[0] ?? '';
}

describe('edgeloop up', () => {
  let dataDir: string;
  let up: Run;
  let endpoints: Endpoints;
  let printed: Endpoints & {
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
    buckets: Record<string, string>;
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'edgeloop-up-'));
    up = run(['up', '--json', '--data-dir', dataDir]);
    printed = JSON.parse(await firstLine(up));
    const { region: _region, credentials: _credentials, buckets: _buckets, ...services } = printed;
    endpoints = services;
  });

  afterAll(async () => {
    if (up.child.exitCode === null) {
      up.child.kill('SIGKILL');
      await up.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the endpoints as one JSON line once the servers answer', async () => {
    // Prepare
    const s3 = new S3Client({
      endpoint: endpoints.s3,
      region: printed.region,
      forcePathStyle: true,
      credentials: printed.credentials,
    });

    // Act
    const listed = await s3.send(new ListBucketsCommand({}));
    s3.destroy();
    const thing = await connectThing(endpoints.mqtt, 'gw-cli');
    await thing.close();
    const kinesis = localKinesisClient(endpoints.kinesis);
    const { StreamNames } = await kinesis.send(new ListStreamsCommand({}));
    kinesis.destroy();

    // Assess
    expect(Object.keys(endpoints).sort()).toEqual([
      'dashboard',
      'dynamodb',
      'iotData',
      'kinesis',
      'mqtt',
      's3',
    ]);
    expect(StreamNames).toContain(streams.results.localName);
    expect(printed).toMatchObject({
      region: 'us-east-1',
      // The data dir's own random credential (the local S3 checks SigV4 against it).
      credentials: localCredential(dataDir),
      buckets: { datasets: buckets.datasets.localName, models: buckets.models.localName },
    });
    expect(printed.credentials.accessKeyId).toMatch(/^ELLOCAL[0-9A-F]{16}$/);
    expect(statSync(credentialPath(dataDir)).mode & 0o777).toBe(0o600);
    expect(endpoints.dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(endpoints.mqtt).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(listed.Buckets?.map((bucket) => bucket.Name).sort()).toEqual(
      Object.values(buckets)
        .map((bucket) => bucket.localName)
        .sort(),
    );
  });

  it('lets other commands find the running stack through the data dir', () => {
    // Act / Assess
    expect(readEndpoints(dataDir)).toEqual(endpoints);
  });

  it('refuses a second stack on the same data dir with exit code 1 and the reason', async () => {
    // Act
    const second = run(['up', '--json', '--data-dir', dataDir]);
    const code = await withTimeout(second.exited, 20_000, 'the second edgeloop up to exit');

    // Assess
    expect(code).toBe(1);
    expect(second.stdout).toEqual([]);
    expect(second.stderr()).toMatch(/edgeloop up: a local stack is already running on .* \(pid \d+\)/);
  });

  it('explains an unusable data dir with exit code 1, and bad flags with exit code 2', async () => {
    // Prepare
    const file = join(dataDir, 'endpoints.json');

    // Act
    const unusable = run(['up', '--data-dir', join(file, 'inside')]);
    const badFlag = run(['up', '--port', '9']);
    const codes = await withTimeout(Promise.all([unusable.exited, badFlag.exited]), 20_000, 'both to exit');

    // Assess
    expect(codes).toEqual([1, 2]);
    expect(unusable.stderr()).toContain(
      `edgeloop up: cannot use ${join(file, 'inside')} as the data dir (ENOTDIR)`,
    );
    expect(badFlag.stderr()).toMatch(/edgeloop up: Unknown option '--port'/);
  });

  it('stops cleanly on SIGTERM with exit code 0, printing nothing more on stdout', async () => {
    // Act
    up.child.kill('SIGTERM');
    const code = await withTimeout(up.exited, 20_000, 'edgeloop up to exit');

    // Assess
    expect(code).toBe(0);
    expect(up.stdout).toHaveLength(1);
    expect(() => readEndpoints(dataDir)).toThrow(/no local stack in .*: start one with `edgeloop up`/);
  });
});
