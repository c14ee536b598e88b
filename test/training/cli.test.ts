import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { generatePumpCsv } from '../../shared/anomaly-dataset.ts';
import { dynamoClient } from '../../shared/aws.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { verifyManifestSignature } from '../../shared/manifest.ts';
import { ManifestSchema } from '../../shared/schemas.ts';
import { tables } from '../../shared/topology.ts';
import { fixture } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgeloop-cli-'));
const demoFile = join(dir, 'demo.csv');
writeFileSync(demoFile, generateDemoDataset({ rows: 300 }));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edgeloop train', () => {
  it('trains offline and prints one JSON object last with metrics, rows, features and classes', async () => {
    // Prepare
    const outDir = join(dir, 'out');
    // Act
    const result = await runCli([
      'train',
      demoFile,
      '--model',
      'demo',
      '--label',
      'condition',
      '--out',
      outDir,
      '--epochs',
      '5',
      '--json',
    ]);
    // Assess
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').pop() ?? '');
    expect(summary).toMatchObject({
      model: 'demo',
      rows: 300,
      outDir,
      classes: ['bearing_wear', 'imbalance', 'normal', 'overheating'],
    });
    expect(summary.metrics.accuracy).toBeGreaterThan(0.5);
    expect(summary.features).toContain('vibration_rms');
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')));
    verifyManifestSignature(manifest, readFileSync(join(outDir, 'signing-public.pem'), 'utf8'));
    expect(manifest.metrics).toEqual(summary.metrics);
  });

  it("prints notices, each class's recall and the tuning table in its text summary", async () => {
    // Prepare
    const file = join(dir, 'noisy.csv');
    writeFileSync(file, fixture('ok-some-non-numeric.csv'));
    // Act
    const result = await runCli([
      'train',
      file,
      '--model',
      'noisy',
      '--out',
      join(dir, 'noisy'),
      '--epochs',
      '5',
    ]);
    // Assess
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      "notice: column 'temperature_c' is numeric: 6 of 80 values (7.5%) are not numbers and count as missing",
    );
    expect(result.stdout).toMatch(
      /recall per class: bearing_wear \d+\.\d% \(n=\d+\), normal \d+\.\d% \(n=\d+\)/,
    );
    expect(result.stdout).toMatch(/tuning: \d candidates in \d+\.\d s/);
    const rows = result.stdout.split('\n').filter((line) => /^ {4}[ *] \d+(-\d+)* /.test(line));
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(rows.filter((line) => line.startsWith('    *'))).toHaveLength(1);
  });

  it.each([
    [['train', '--model', 'demo'], /missing argument/],
    [['train', join(dir, 'missing.csv'), '--model', 'demo'], /no such file: .*missing\.csv/],
    [['train', demoFile], /--model is required/],
    [['train', demoFile, '--model', 'demo', '--bogus'], /Unknown option '--bogus'/],
    [['train', demoFile, '--model', 'Bad Name'], /not a valid model name/],
    [['train', demoFile, '--model', 'demo', '--epochs', 'many'], /--epochs must be an integer/],
  ])('exits 2 with a one-line reason for bad usage: %j', async (argv, message) => {
    const result = await runCli([...argv]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('exits 1 with the one-line rejection for a broken dataset, never a stack trace', async () => {
    const file = join(dir, 'one-class.csv');
    writeFileSync(file, fixture('broken-one-class.csv'));
    const result = await runCli(['train', file, '--model', 'demo']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "edgeloop train: one-class.csv: label column 'condition' has only one class ('normal') in 30 rows: a classifier needs rows of at least two classes\n",
    );
  });
});

describe('edgeloop train --events', () => {
  const pumps = generatePumpCsv({ pumps: 3, minutes: 300, seed: 4, faults: { perPump: 1, minutes: 40 } });
  const pumpFile = join(dir, 'pumps.csv');
  writeFileSync(pumpFile, pumps.csv);
  const anomaly = ['--model', 'pumps', '--task', 'anomaly', '--time', 'ts', '--series', 'pump'];

  it('scores an anomaly model against the labelled ranges and prints the figures', async () => {
    // Prepare
    const events = join(dir, 'events.csv');
    writeFileSync(
      events,
      `series,start,end,kind\n${pumps.faults.map((f) => `${f.series},${f.start},${f.end},${f.kind}`).join('\n')}\n`,
    );
    // Act
    const result = await runCli([
      'train',
      pumpFile,
      ...anomaly,
      '--events',
      events,
      '--epochs',
      '3',
      '--out',
      join(dir, 'pumps'),
    ]);
    // Assess
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/notice: \d+ reading\(s\) in or overlapping 3 labelled event range\(s\)/);
    expect(result.stdout).toMatch(
      /\n {2}labelled events: event recall \d\.\d\d \(\d of 3 labelled ranges\), precision \d\.\d\d \(\d+ events\), F1 \d\.\d\d, median detection delay/,
    );
  });

  it('exits 1 naming the events file, the line and the fix; 2 for --events on a classifier', async () => {
    const bad = join(dir, 'bad-events.csv');
    writeFileSync(bad, 'series,start,end\npump-01,2026-11-02T03:00:00Z,2026-11-02T02:00:00Z\n');
    const result = await runCli(['train', pumpFile, ...anomaly, '--events', bad]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `edgeloop train: ${bad}: line 2: end 2026-11-02T02:00:00Z is before start 2026-11-02T03:00:00Z: swap them\n`,
    );
    const classifier = await runCli(['train', demoFile, '--model', 'demo', '--events', bad]);
    expect(classifier.code).toBe(2);
    expect(classifier.stderr).toMatch(/--events is for anomaly models: add --task anomaly/);
  });
});

describe('edgeloop models', () => {
  let stack: LocalStack;
  const dataDir = join(dir, 'stack');

  beforeAll(async () => {
    stack = await startLocalStack({ dataDir });
    const base = { createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };
    for (const item of [
      {
        model: 'pump',
        version: 1,
        status: 'released',
        datasetKey: 'datasets/pump/a.csv',
        metrics: { accuracy: 0.91 },
      },
      {
        model: 'pump',
        version: 2,
        status: 'rejected',
        datasetKey: 'datasets/pump/b.csv',
        reason: 'only one class',
      },
      { model: 'fan', version: 1, status: 'training', datasetKey: 'datasets/fan/a.csv' },
    ]) {
      await dynamoClient().send(
        new PutCommand({ TableName: tables.registry.localName, Item: { ...base, ...item } }),
      );
    }
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('lists one model newest first as JSON', async () => {
    const result = await runCli(['models', '--model', 'pump', '--data-dir', dataDir, '--json']);
    expect(result.code).toBe(0);
    const { models } = JSON.parse(result.stdout.trim());
    expect(models.map((item: { version: number; status: string }) => [item.version, item.status])).toEqual([
      [2, 'rejected'],
      [1, 'released'],
    ]);
  });

  it('prints a table of every model with status, accuracy and reason', async () => {
    const result = await runCli(['models', '--data-dir', dataDir]);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+VERSION\s+STATUS\s+ACCURACY/);
    expect(lines.slice(1).map((line) => line.split(/\s+/).slice(0, 3).join(' '))).toEqual([
      'fan v1 training',
      'pump v2 rejected',
      'pump v1 released',
    ]);
    expect(lines[2]).toMatch(/only one class$/);
  });

  it('says how to start a stack when the data dir has none', async () => {
    const result = await runCli(['models', '--data-dir', join(dir, 'nowhere')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no local stack in .*nowhere: start one with `edgeloop up`/);
  });
});
