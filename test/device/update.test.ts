import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, startDevice } from '../../device/service.ts';
import {
  type Artifacts,
  MODEL,
  nanWeights,
  postInfer,
  publishRelease,
  removeTempDirs,
  sensorCsv,
  signingKeys,
  startBroker,
  startS3,
  type TestBroker,
  type TestS3,
  tempDir,
  trainTinyModel,
  until,
} from './helpers.ts';

describe('device model updates against real aedes + s3rver', () => {
  let broker: TestBroker;
  let s3: TestS3;
  let artifacts: Artifacts;
  let dir: string;
  let csv: string;
  const keys = signingKeys();
  const devices: Device[] = [];

  beforeAll(async () => {
    [broker, s3, artifacts, dir] = await Promise.all([startBroker(), startS3(), trainTinyModel(), tempDir()]);
    csv = join(dir, 'readings.csv');
    await writeFile(csv, sensorCsv(50));
  });

  afterAll(async () => {
    await Promise.all(devices.map((device) => device.stop()));
    await broker?.close();
    await s3?.close();
    await removeTempDirs();
  });

  async function device(thing: string, extra: Partial<Parameters<typeof startDevice>[0]> = {}) {
    const started = await startDevice({
      thing,
      model: MODEL,
      stateDir: join(dir, thing),
      mqttEndpoint: broker.url,
      s3Endpoint: s3.endpoint,
      publicKeyPem: keys.publicKeyPem,
      httpPort: 0,
      statusIntervalMs: 500,
      batch: { maxAgeMs: 50 },
      ...extra,
    });
    devices.push(started);
    return started;
  }

  it('installs a released model, answers /infer and publishes result batches that parse', async () => {
    // Prepare
    await publishRelease(s3, broker, artifacts, keys.privateKeyPem, { version: 1 });
    const gw = await device('gw-happy', { source: { kind: 'csv', file: csv, limit: 120 } });

    // Act
    await gw.finished;
    const answer = await postInfer(gw.httpPort ?? 0, { a: 1.5, b: 1 });

    // Assess
    expect(gw.status()).toMatchObject({ version: 1, state: 'serving', published: 120, outboxDepth: 0 });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ label: 'hi', version: 1 });
    const ids = [...broker.resultIds()].filter((id) => id.startsWith('gw-happy:') && !id.includes(':http:'));
    expect(new Set(ids).size).toBe(120);
    const sample = broker.batches.find((batch) => batch.results.some((r) => r.id === 'gw-happy:0'));
    expect(sample).toMatchObject({ model: MODEL, version: 1 });
    expect(sample?.results[0]).toMatchObject({ id: 'gw-happy:0', truth: expect.stringMatching(/hi|lo/) });
  });

  it.each([
    [
      'tampered weights',
      'verify',
      /sha256/,
      (v: number) => ({ version: v, uploadWeights: tamper(artifacts.weights) }),
    ],
    [
      'a bad signature',
      'verify',
      /signature/,
      (v: number) => ({ version: v, signWith: signingKeys().privateKeyPem }),
    ],
    [
      'a NaN model',
      'probation',
      /non-finite/,
      (v: number) => ({ version: v, weights: nanWeights(artifacts.weights) }),
    ],
    [
      'a truncated download',
      'verify',
      /truncated/,
      (v: number) => ({
        version: v,
        uploadWeights: artifacts.weights.subarray(0, artifacts.weights.length - 8),
      }),
    ],
  ])('rejects %s with the old model still serving /infer', async (_name, step, reason, options) => {
    // Prepare
    await publishRelease(s3, broker, artifacts, keys.privateKeyPem, { version: 1 });
    const thing = `gw-${String(_name).replace(/\W+/g, '-')}`;
    const gw = await device(thing);
    await gw.waitFor((s) => s.version === 1, 20_000);

    // Act
    await publishRelease(s3, broker, artifacts, keys.privateKeyPem, options(2));
    const after = await gw.waitFor((s) => s.lastError !== null, 20_000);

    // Assess
    expect(after.version).toBe(1);
    expect(after.lastError).toMatchObject({ step, version: 2, reason: expect.stringMatching(reason) });
    expect((await postInfer(gw.httpPort ?? 0, { a: -1, b: -1 })).body).toMatchObject({
      label: 'lo',
      version: 1,
    });
    await until(
      () =>
        broker.statuses.some(
          (m) => m.thing === thing && m.status.lastError?.step === step && m.status.version === 1,
        ),
      5_000,
      'a status message carrying the failure',
    );
    await gw.stop();
  });

  it('refuses an older version unless the notice is an explicit rollback', async () => {
    // Prepare
    await publishRelease(s3, broker, artifacts, keys.privateKeyPem, { version: 3 });
    const gw = await device('gw-rollback');
    await gw.waitFor((s) => s.version === 3, 20_000);

    // Act
    await publishRelease(s3, broker, artifacts, keys.privateKeyPem, { version: 2 });
    const refused = await gw.waitFor((s) => s.lastError !== null, 20_000);
    await publishRelease(s3, broker, artifacts, keys.privateKeyPem, { version: 2, kind: 'rollback' });
    const rolledBack = await gw.waitFor((s) => s.version === 2, 20_000);

    // Assess
    expect(refused.version).toBe(3);
    expect(refused.lastError).toMatchObject({ step: 'verify', reason: expect.stringMatching(/older/) });
    expect(rolledBack.lastError).toBeNull();
    await gw.stop();
  });
});

function tamper(weights: Buffer): Buffer {
  const copy = Buffer.from(weights);
  copy[0] = (copy[0] ?? 0) ^ 0xff;
  return copy;
}
