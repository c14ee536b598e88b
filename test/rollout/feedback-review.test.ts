/**
 * One gateway cannot poison or starve retraining: against the local stack's real S3, its own
 * labels wait for review (`edgeloop feedback accept`) unless the config trusts them, an
 * oversized file is skipped unread with its reason, and its rows per run are capped.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { recordTrainEvents, startTestStack } from '../../bench/support/local-stack.ts';
import {
  countLabelledFeedback,
  readFeedbackTable,
  trainingFeedback,
} from '../../functions/rollout/feedback-store.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { s3Client } from '../../shared/aws.ts';
import { feedbackHeader, formatFeedback } from '../../shared/feedback.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { buckets, datasetKeys } from '../../shared/topology.ts';

let stack: LocalStack;
const bucket = buckets.datasets.localName;

beforeAll(async () => {
  // No training runs here: the train handler only records.
  stack = await startTestStack({ handlers: recordTrainEvents().handlers });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

/** A gateway's feedback file of `rows` rows, every one carrying the reading's truth label. */
async function upload(model: string, thing: string, file: string, rows: number, first = 0): Promise<string> {
  const key = datasetKeys.feedbackFile(model, thing, file);
  const table = {
    header: feedbackHeader(['temp'], 'condition'),
    rows: Array.from({ length: rows }, (_, i) => [
      `${thing}:${first + i}`,
      '1',
      thing,
      '1',
      'normal',
      '0.4',
      String(first + i),
      'normal',
    ]),
  };
  await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: formatFeedback(table) }));
  return key;
}

describe('feedback a training run may use', () => {
  it('keeps a gateway’s own labels out until the file is accepted, unless the config trusts them', async () => {
    // Prepare
    const key = await upload('review', 'gw-1', '1-v1.csv', 5);

    // Act
    const before = await trainingFeedback(s3Client(), bucket, 'review');
    const countedBefore = await countLabelledFeedback(s3Client(), bucket, 'review', 100);
    const trusted = await trainingFeedback(s3Client(), bucket, 'review', { trustGatewayLabels: true });
    const accepted = await runCli(['feedback', 'accept', key, '--json', '--data-dir', stack.dataDir]);
    const after = await trainingFeedback(s3Client(), bucket, 'review');
    // A gateway rewriting its file after the review changes nothing: the reviewed copy is read.
    await upload('review', 'gw-1', '1-v1.csv', 50, 100);
    const rewritten = await trainingFeedback(s3Client(), bucket, 'review');

    // Assess
    expect(before).toMatchObject({ labelled: 0, tables: [], awaitingReview: [key] });
    expect(countedBefore).toBe(0);
    expect(trusted).toMatchObject({ labelled: 5, awaitingReview: [] });
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(JSON.parse(accepted.stdout.trim())).toMatchObject({ key, reviewed: true, labelled: 5 });
    expect(after).toMatchObject({ labelled: 5, awaitingReview: [] });
    expect(after.tables.map((entry) => ({ key: entry.key, reviewed: entry.reviewed }))).toEqual([
      { key, reviewed: true },
    ]);
    expect(rewritten.labelled).toBe(5);
    expect(TrainingConfigSchema.parse({}).trustGatewayLabels).toBe(false);
  });

  it('skips an oversized file unread, with its reason', async () => {
    // Prepare: a file over the limit next to a small one.
    const big = await upload('size', 'gw-big', '1-v1.csv', 2000);
    await upload('size', 'gw-small', '1-v1.csv', 3);

    // Act
    const feedback = await trainingFeedback(s3Client(), bucket, 'size', {
      trustGatewayLabels: true,
      maxFileBytes: 10_000,
    });
    const direct = await readFeedbackTable(s3Client(), bucket, big, 10_000).then(
      () => 'read',
      (error: Error) => error.message,
    );

    // Assess
    expect(feedback.labelled).toBe(3);
    expect(feedback.skipped).toEqual([
      {
        key: big,
        reason: expect.stringMatching(
          /^feedback\/size\/gw-big\/1-v1.csv is \d+ bytes, over the 10000-byte limit/,
        ),
      },
    ]);
    expect(direct).toMatch(/over the 10000-byte limit of a feedback file: not read/);
  });

  it('reads an empty feedback file as no rows (S3 answers its range 416 InvalidRange)', async () => {
    // Prepare
    const empty = datasetKeys.feedbackFile('empty', 'gw-empty', '1-v1.csv');
    await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: empty, Body: '' }));
    await upload('empty', 'gw-full', '1-v1.csv', 2);

    // Act
    const table = await readFeedbackTable(s3Client(), bucket, empty);
    const feedback = await trainingFeedback(s3Client(), bucket, 'empty', { trustGatewayLabels: true });

    // Assess
    expect(table).toEqual({ header: [], rows: [] });
    expect(feedback.labelled).toBe(2);
    expect(feedback.skipped).toEqual([]);
  });

  it('caps the rows one gateway gives a run, keeping its newest', async () => {
    // Prepare: gw-loud sends three files of 40 rows, gw-quiet one of 10.
    for (const [i, file] of ['1-v1.csv', '2-v1.csv', '3-v1.csv'].entries())
      await upload('cap', 'gw-loud', file, 40, i * 40);
    await upload('cap', 'gw-quiet', '1-v1.csv', 10);

    // Act
    const policy = { trustGatewayLabels: true, maxRowsPerThing: 50 };
    const feedback = await trainingFeedback(s3Client(), bucket, 'cap', policy);
    const counted = await countLabelledFeedback(s3Client(), bucket, 'cap', 1_000, policy);
    const loudIds = feedback.tables
      .filter((entry) => entry.key.includes('/gw-loud/'))
      .flatMap((entry) => entry.table.rows.map((row) => row[0]));

    // Assess
    expect(feedback.labelled).toBe(60);
    expect(counted).toBe(60);
    expect(loudIds).toHaveLength(50);
    expect(loudIds).toContain('gw-loud:119');
    expect(loudIds).not.toContain('gw-loud:69');
  });
});
