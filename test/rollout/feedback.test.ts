import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { HardExampleSampler, resultsView } from '../../device/results/hard-examples.ts';
import { countLabelledFeedback, readModelFeedback } from '../../functions/rollout/feedback-store.ts';
import {
  applyLabels,
  countLabelled,
  csvLine,
  FEEDBACK_META_COLUMNS,
  feedbackHeader,
  feedbackLabelColumn,
  formatFeedback,
  mergeFeedback,
  NORMAL_VERDICT,
  parseFeedback,
  VERDICT_COLUMN,
} from '../../shared/feedback.ts';
import type { InferenceResult, Manifest } from '../../shared/schemas.ts';
import { datasetKeys } from '../../shared/topology.ts';

const table = (rows: string[][]) => ({ header: feedbackHeader(['temp', 'site'], 'condition'), rows });
const meta = (id: string) => [id, '1', 'gw-1', '2', 'normal', '0.41'];

describe('feedback CSV', () => {
  it('quotes fields holding delimiters, quotes or line breaks', () => {
    expect(csvLine(['a', 'b,c', 'say "hi"', 'x\ny', 3, undefined])).toBe('a,"b,c","say ""hi""","x\ny",3,');
  });

  it('round-trips through format and parse, label column last', () => {
    // Prepare
    const original = table([[...meta('gw-1:1'), '71.5', 'north, east', '']]);

    // Act
    const parsed = parseFeedback(formatFeedback(original));

    // Assess
    expect(parsed).toEqual(original);
    expect(parsed.header.slice(0, FEEDBACK_META_COLUMNS.length)).toEqual([...FEEDBACK_META_COLUMNS]);
    expect(countLabelled(parsed)).toEqual({ labelled: 0, unlabelled: 1 });
  });

  it('labels rows by id, or every row', () => {
    // Prepare
    const unlabelled = table([
      [...meta('a'), '1', 'n', ''],
      [...meta('b'), '2', 'n', ''],
    ]);

    // Act
    const byId = applyLabels(unlabelled, { byId: new Map([['b', 'overheating']]) });
    const all = applyLabels(unlabelled, { all: 'normal' });

    // Assess
    expect(byId.changed).toBe(1);
    expect(byId.table.rows.map((row) => row.at(-1))).toEqual(['', 'overheating']);
    expect(all.changed).toBe(2);
    expect(countLabelled(all.table)).toEqual({ labelled: 2, unlabelled: 0 });
  });
});

describe('feedback in the datasets bucket', () => {
  // 40 files of one labelled and one unlabelled row each, as gateways upload them.
  const mockFeedbackBucket = () => {
    const s3 = mockClient(S3Client);
    const keys = Array.from({ length: 40 }, (_, i) => `${datasetKeys.feedbackPrefix('pump')}gw-${i}/1.csv`);
    s3.on(ListObjectsV2Command).resolves({ Contents: [] });
    s3.on(ListObjectsV2Command, { Prefix: datasetKeys.feedbackPrefix('pump') }).resolves({
      Contents: keys.map((Key) => ({ Key, Size: 100 })),
    });
    const body = formatFeedback(
      table([
        [...meta('a'), '1', 'n', 'normal'],
        [...meta('b'), '2', 'n', ''],
      ]),
    );
    s3.on(GetObjectCommand).callsFake(async () => ({
      Body: { transformToByteArray: async () => new TextEncoder().encode(body) },
    }));
    return s3;
  };

  it('reads every file to merge them, and counts labelled rows only until there are enough', async () => {
    // Prepare
    const s3 = mockFeedbackBucket();
    const client = new S3Client({});

    // Act
    const all = await readModelFeedback(client, 'datasets', 'pump');
    const readsForAll = s3.commandCalls(GetObjectCommand).length;
    s3.resetHistory();
    const trusted = { trustGatewayLabels: true };
    const enough = await countLabelledFeedback(client, 'datasets', 'pump', 3, trusted);
    const readsForEnough = s3.commandCalls(GetObjectCommand).length;
    s3.resetHistory();
    const short = await countLabelledFeedback(client, 'datasets', 'pump', 1_000, trusted);

    // Assess
    expect(all).toMatchObject({ labelled: 40, unlabelled: 40 });
    expect(readsForAll).toBe(40);
    expect(enough).toBeGreaterThanOrEqual(3);
    // The reads already in flight when the third row arrived finish; no more start.
    expect(readsForEnough).toBeLessThanOrEqual(10);
    expect(short).toBe(40);
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(40);
    s3.restore();
  });
});

describe('merging feedback into a dataset', () => {
  const dataset = 'site,temp,condition\nnorth,60,normal\nsouth,75,overheating\n';

  it('appends labelled rows by column name and drops the meta columns', () => {
    // Act
    const merged = mergeFeedback(dataset, [
      table([
        [...meta('a'), '71.5', 'east', 'overheating'],
        [...meta('b'), '50', 'west', ''],
      ]),
    ]);

    // Assess
    expect(merged.rows).toBe(1);
    expect(merged.csv).toBe(`${dataset}east,71.5,overheating\n`);
  });

  it('adds an identical reading from many gateways once, and no more rows than the dataset has', () => {
    // Prepare
    const same = [...meta('a'), '71.5', 'east', 'overheating'];
    const many = Array.from({ length: 5 }, (_, i) => [...meta(`x${i}`), String(40 + i), 'east', 'normal']);

    // Act
    const deduped = mergeFeedback(dataset, [table([same, same, same])]);
    const capped = mergeFeedback(dataset, [table(many)]);

    // Assess
    expect(deduped.rows).toBe(1);
    expect(capped.rows).toBe(2);
    // The newest rows win.
    expect(capped.csv).toContain('east,44,normal');
    expect(capped.csv).toContain('east,43,normal');
  });

  it("adds an anomaly model's sampled readings only where a reviewer marked them normal, without the verdict column", () => {
    // Prepare: pumps' normal data; three anomalous readings a gateway sampled, one marked normal.
    const normal = 'ts,pump,flow\n2026-11-02T00:00Z,pump-01,10.5\n2026-11-02T00:01Z,pump-01,10.7\n';
    const verdicts = {
      header: feedbackHeader(['ts', 'pump', 'flow'], feedbackLabelColumn({ task: 'anomaly', label: '' })),
      rows: [
        [...meta('a'), '2026-11-03T00:00Z', 'pump-01', '31.0', NORMAL_VERDICT],
        [...meta('b'), '2026-11-03T00:01Z', 'pump-01', '55.0', 'anomaly'],
        [...meta('c'), '2026-11-03T00:02Z', 'pump-01', '48.0', ''],
      ],
    };

    // Act
    const merged = mergeFeedback(normal, [verdicts]);

    // Assess
    expect(verdicts.header.at(-1)).toBe(VERDICT_COLUMN);
    expect(merged).toEqual({ csv: `${normal}2026-11-03T00:00Z,pump-01,31.0\n`, rows: 1 });
  });

  it('keeps the dataset delimiter and leaves it untouched without labelled rows', () => {
    // Prepare
    const semicolon = 'site;temp;condition\nnorth;60;normal\nsouth;61;normal';

    // Act
    const merged = mergeFeedback(semicolon, [table([[...meta('a'), '1,5', 'east', 'normal']])]);
    const none = mergeFeedback(semicolon, [table([[...meta('a'), '1', 'east', '']])]);

    // Assess
    expect(merged.csv).toBe(`${semicolon}\neast;1,5;normal\n`);
    expect(none).toEqual({ csv: semicolon, rows: 0 });
  });
});

describe('hard-example sampler on the gateway', () => {
  const s3 = mockClient(S3Client);
  let dir: string;
  const manifest = {
    version: 3,
    lowConfidence: 0.6,
    preprocessing: {
      label: 'condition',
      labels: ['normal', 'overheating'],
      inputWidth: 1,
      features: [{ kind: 'numeric', column: 'temp', mean: 0, std: 1, fill: 0 }],
    },
  } as unknown as Manifest;
  const result = (i: number, confidence: number): InferenceResult => ({
    id: `gw-1:${i}`,
    ts: 1_700_000_000_000 + i,
    label: 'normal',
    confidence,
    latencyMs: 1,
  });
  const open = (options: Partial<Parameters<typeof HardExampleSampler.open>[0]['options']> = {}) =>
    HardExampleSampler.open({
      thing: 'gw-1',
      model: 'pump',
      dir,
      s3: new S3Client({ region: 'us-east-1' }),
      options: { bucket: 'datasets', flushMs: 60_000, ...options },
    });

  beforeEach(async () => {
    s3.reset();
    dir = await mkdtemp(join(tmpdir(), 'edgeloop-hard-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps only low-confidence readings, rate-limited, and uploads them under its own feedback folder', async () => {
    // Prepare
    s3.on(PutObjectCommand).resolves({});
    const sampler = await open({ maxPerMinute: 3 });
    const rows = Array.from({ length: 10 }, (_, i) => ({
      temp: 60 + i,
      condition: i % 2 ? 'overheating' : '',
    }));
    const results = rows.map((_, i) => result(i, i === 0 ? 0.9 : 0.4));

    // Act
    sampler.offer(resultsView(rows, results), manifest);
    await sampler.stop();

    // Assess
    expect(sampler.stats()).toMatchObject({ sampled: 3, dropped: 6, uploadedFiles: 1, uploadedRows: 3 });
    const [call] = s3.commandCalls(PutObjectCommand);
    expect(call?.args[0].input.Key?.startsWith(datasetKeys.feedbackFile('pump', 'gw-1', ''))).toBe(true);
    const uploaded = parseFeedback(String(call?.args[0].input.Body));
    expect(uploaded.header).toEqual(feedbackHeader(['temp'], 'condition'));
    expect(uploaded.rows.map((row) => [row[0], row.at(-2), row.at(-1)])).toEqual([
      ['gw-1:1', '61', 'overheating'],
      ['gw-1:2', '62', ''],
      ['gw-1:3', '63', 'overheating'],
    ]);
    expect(await readdir(dir)).toEqual([]);
  });

  it("keeps an anomaly model's anomalous readings with their score, for a reviewer's verdict", async () => {
    // Prepare
    s3.on(PutObjectCommand).resolves({});
    const sampler = await open();
    const anomalyManifest = {
      ...manifest,
      preprocessing: { ...manifest.preprocessing, task: 'anomaly', label: '', labels: [] },
      anomaly: {
        threshold: 3,
        eventRule: { k: 3, n: 5, m: 5 },
        time: 'ts',
        series: 'pump',
        residualScale: [1],
      },
    } as unknown as Manifest;
    const rows = [0, 1, 2].map((i) => ({
      ts: `2026-11-03T00:0${i}Z`,
      pump: 'pump-07',
      temp: i === 1 ? 95 : 60 + i,
    }));
    const results = rows.map(
      (_, i): InferenceResult => ({
        id: `gw-1:${i}`,
        ts: 1_700_000_000_000,
        score: i === 1 ? 14.5 : 0.4,
        threshold: 3,
        anomaly: i === 1,
        latencyMs: 1,
      }),
    );

    // Act
    sampler.offer(resultsView(rows, results), anomalyManifest);
    await sampler.stop();

    // Assess: its time and series come along (not features, but they place it in its series).
    const [call] = s3.commandCalls(PutObjectCommand);
    const uploaded = parseFeedback(String(call?.args[0].input.Body));
    expect(uploaded.header).toEqual(feedbackHeader(['ts', 'pump', 'temp'], VERDICT_COLUMN));
    expect(uploaded.rows.map((row) => [row[0], ...row.slice(FEEDBACK_META_COLUMNS.length)])).toEqual([
      ['gw-1:1', '2026-11-03T00:01Z', 'pump-07', '95', ''],
    ]);
    expect(uploaded.rows[0]?.[FEEDBACK_META_COLUMNS.indexOf('feedback_predicted')]).toBe('14.5');
  });

  it('keeps a file whose upload failed and uploads it at the next flush, also after a restart', async () => {
    // Prepare
    s3.on(PutObjectCommand).rejectsOnce(new Error('network down')).resolves({});
    const first = await open();
    first.offer(resultsView([{ temp: 1 }], [result(1, 0.1)]), manifest);

    // Act
    await first.flush();
    const kept = await readdir(dir);
    const restarted = await open();
    await restarted.flush();

    // Assess
    expect(kept).toHaveLength(1);
    expect(restarted.stats().uploadedFiles).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it('drops samples instead of growing past its disk quota', async () => {
    // Prepare
    s3.on(PutObjectCommand).rejects(new Error('offline'));
    const sampler = await open({ quotaBytes: 400, maxRowsPerFile: 2 });
    const rows = Array.from({ length: 20 }, (_, i) => ({ temp: i }));

    // Act
    sampler.offer(
      resultsView(
        rows,
        rows.map((_, i) => result(i, 0.2)),
      ),
      manifest,
    );
    await sampler.flush();

    // Assess
    const stats = sampler.stats();
    expect(stats.spoolBytes).toBeLessThanOrEqual(400);
    expect(stats.dropped).toBeGreaterThan(0);
    expect(stats.sampled + stats.dropped).toBe(20);
  });
});

describe('edgeloop feedback, bad usage', () => {
  it.each([
    [['feedback', 'list'], /--model is required/],
    [['feedback', 'label', 'datasets/pump/a.csv', '--label', 'x'], /not a feedback key/],
    [['feedback', 'label', 'feedback/pump/gw-1/a.csv'], /either --label CLASS or --labels FILE.csv/],
    [['feedback', 'tidy'], /unknown action 'tidy'/],
  ])('%j exits 2 with a one-line reason', async (argv, reason) => {
    // Act
    const run = await runCli(argv);

    // Assess
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(reason);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});
