/**
 * The rollout controller against the real local stack (registry, aggregates, retained
 * notices through the Publish shim), driven directly with the registry states it must handle.
 */
import { GetRetainedMessageCommand } from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { ManifestCache } from '../../functions/aggregation/manifests.ts';
import { type ControllerDeps, runRolloutController } from '../../functions/rollout/controller.ts';
import { listFeedbackObjects } from '../../functions/rollout/feedback-store.ts';
import { copyBaseDataset } from '../../functions/rollout/retrain-dataset.ts';
import { listRegistry } from '../../functions/training/registry.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, iotDataClient, s3Client } from '../../shared/aws.ts';
import { noticeRefusal } from '../../shared/notice.ts';
import { type RegistryItem, ReleaseNoticeSchema, RolloutPlanSchema } from '../../shared/schemas.ts';
import { signerFromEnv } from '../../shared/signing.ts';
import { buckets, datasetKeys, envVars, modelKeys, tables, topicFor } from '../../shared/topology.ts';

let stack: LocalStack;
let deps: ControllerDeps;
const now = Date.parse('2026-11-28T12:00:00.000Z');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

beforeAll(async () => {
  // The scheduled run is replaced by a no-op: this test runs the controller itself.
  stack = await startTestStack({ handlers: { rolloutController: async () => undefined } });
  deps = {
    ddb: dynamoClient(),
    s3: s3Client(),
    iot: iotDataClient(),
    registryTable: tables.registry.localName,
    aggregatesTable: tables.aggregates.localName,
    modelsBucket: buckets.models.localName,
    datasetsBucket: buckets.datasets.localName,
    manifests: new ManifestCache(s3Client, buckets.models.localName),
    log: quiet,
    signer: () => signerFromEnv(stack.env[envVars.signingKey] ?? ''),
    now: () => now,
  };
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

async function put(model: string, version: number, status: RegistryItem['status'], extra: object = {}) {
  const at = new Date(now - 60_000).toISOString();
  await dynamoClient().send(
    new PutCommand({
      TableName: tables.registry.localName,
      Item: {
        model,
        version,
        status,
        createdAt: at,
        updatedAt: at,
        datasetKey: `datasets/${model}/d${version}.csv`,
        manifestKey: modelKeys.manifest(model, version),
        manifestSha256: String(version).repeat(64).slice(0, 64),
        metrics: { accuracy: 0.9 },
        ...extra,
      },
    }),
  );
}

const canaryOf = (previousVersion: number, plan: object = {}, startedAgoMs = 10_000) => ({
  rollout: {
    plan: RolloutPlanSchema.parse(plan),
    previousVersion,
    canaryAt: new Date(now - startedAgoMs).toISOString(),
  },
});
const statusOf = async (model: string) =>
  Object.fromEntries(
    (await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, model)).map((item) => [
      item.version,
      item.status,
    ]),
  );

describe('rollout controller', () => {
  it('waits while a canary has too few results', async () => {
    // Prepare
    await put('waiting', 1, 'released');
    await put('waiting', 2, 'canary', canaryOf(1));

    // Act
    const report = await runRolloutController(deps);

    // Assess
    expect(report.decisions.find((d) => d.model === 'waiting')).toMatchObject({
      version: 2,
      decision: 'wait',
      reason: '0 of 200 canary results so far',
    });
    expect(await statusOf('waiting')).toEqual({ 1: 'released', 2: 'canary' });
  });

  it('rolls back a canary without results after maxWaitMs with an explicit rollback notice', async () => {
    // Prepare
    await put('silent', 3, 'released');
    await put('silent', 4, 'canary', canaryOf(3, { maxWaitMs: 5_000 }));

    // Act
    const report = await runRolloutController(deps);
    const retained = await iotDataClient().send(
      new GetRetainedMessageCommand({ topic: topicFor('canary', { model: 'silent' }) }),
    );

    // Assess
    expect(report.decisions.find((d) => d.model === 'silent')?.decision).toBe('rollback');
    expect(await statusOf('silent')).toEqual({ 3: 'released', 4: 'rolled-back' });
    const notice = ReleaseNoticeSchema.parse(JSON.parse(new TextDecoder().decode(retained.payload)));
    expect(notice).toMatchObject({ model: 'silent', version: 3, kind: 'rollback', cohort: 'canary' });
    // Signed by the stack's key and current (a device verifies it before acting).
    expect(noticeRefusal(notice, stack.publicKeyPem, now)).toBeUndefined();
    expect(noticeRefusal({ ...notice, version: 1 }, stack.publicKeyPem, now)).toMatch(/does not verify/);
  });

  it('retires a canary replaced by a newer canary or overtaken by a fleet-wide release', async () => {
    // Prepare
    await put('busy', 1, 'released');
    await put('busy', 2, 'canary', canaryOf(1));
    await put('busy', 3, 'canary', canaryOf(1));
    await put('overtaken', 1, 'released');
    await put('overtaken', 2, 'canary', canaryOf(1));
    await put('overtaken', 3, 'released');

    // Act
    await runRolloutController(deps);
    const [older] = await listRegistry(
      { ddb: dynamoClient(), table: tables.registry.localName },
      'busy',
    ).then((items) => items.filter((item) => item.version === 2));

    // Assess
    expect(await statusOf('busy')).toEqual({ 1: 'released', 2: 'rolled-back', 3: 'canary' });
    expect(older?.rollout?.reason).toBe('superseded by v3');
    expect(await statusOf('overtaken')).toEqual({ 1: 'released', 2: 'rolled-back', 3: 'released' });
  });
});

describe('fleet-wide notices that would expire', () => {
  it("re-signs and re-publishes the released version's notice halfway to its expiry, once", async () => {
    // Prepare: v1 was released (and its notice signed) 200 days ago.
    const long = new Date(now - 200 * 24 * 60 * 60 * 1000).toISOString();
    await put('steady', 1, 'released', { updatedAt: long });

    // Act
    const first = await runRolloutController(deps);
    const retained = await iotDataClient().send(
      new GetRetainedMessageCommand({ topic: topicFor('release', { model: 'steady' }) }),
    );
    const second = await runRolloutController(deps);

    // Assess
    expect(first.refreshed).toContainEqual({ model: 'steady', version: 1 });
    expect(second.refreshed).not.toContainEqual({ model: 'steady', version: 1 });
    const notice = ReleaseNoticeSchema.parse(JSON.parse(new TextDecoder().decode(retained.payload)));
    expect(notice).toMatchObject({ model: 'steady', version: 1, kind: 'release', cohort: 'all' });
    expect(noticeRefusal(notice, stack.publicKeyPem, now + 300 * 24 * 60 * 60 * 1000)).toBeUndefined();
    const [item] = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, 'steady');
    expect(item?.noticeAt).toBe(new Date(now).toISOString());
  });
});

describe('feedback listing on the local S3', () => {
  it('pages past 1,000 objects (a long-running fleet uploads that many hard-example files)', async () => {
    // Prepare
    const model = 'paged';
    const s3 = s3Client();
    const keys = Array.from(
      { length: 1_005 },
      (_, i) => `${datasetKeys.feedbackPrefix(model)}gw/${String(i).padStart(5, '0')}.csv`,
    );
    for (let i = 0; i < keys.length; i += 50)
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((Key) =>
            s3.send(new PutObjectCommand({ Bucket: buckets.datasets.localName, Key, Body: 'a\n1\n' })),
          ),
      );

    // Act
    const listed = await listFeedbackObjects(s3, buckets.datasets.localName, model);

    // Assess
    expect(listed.map((object) => object.key)).toEqual(keys);
  }, 60_000);
});

describe('retrain dataset copy on the local S3', () => {
  it('copies a folder of parts part by part and writes its marker last', async () => {
    // Prepare: a folder of two parts and its marker (the bodies are not a trainable dataset on purpose:
    // the run the marker starts fails validation and publishes nothing).
    const model = 'partsretrain';
    const s3 = s3Client();
    const bucket = buckets.datasets.localName;
    const base = datasetKeys.partsFolder(model, 'run-1');
    for (const [name, body] of [
      ['part-0000.csv', 'x\n1\n'],
      ['part-0001.csv', 'x\n2\n'],
    ])
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${base}${name}`, Body: body }));
    const baseMarker = datasetKeys.successKey(model, 'run-1');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: baseMarker, Body: '' }));
    const retrainKey = datasetKeys.retrain(model, 3, now, baseMarker);

    // Act
    const copied = await copyBaseDataset(s3, bucket, baseMarker, retrainKey);

    // Assess
    const folder = datasetKeys.partsFolder(model, `retrain-v3-${now}`);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: folder }));
    expect(copied).toBe(2);
    expect((listed.Contents ?? []).map((item) => item.Key).sort()).toEqual(
      [`${folder}_SUCCESS`, `${folder}part-0000.csv`, `${folder}part-0001.csv`].sort(),
    );
    const second = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${folder}part-0001.csv` }));
    expect(await second.Body?.transformToString()).toBe('x\n2\n');
  }, 60_000);
});
