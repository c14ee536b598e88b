import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, startDevice } from '../../device/service.ts';
import { localKeyId, namedPublicKey, pemSigner, signManifest } from '../../shared/manifest.ts';
import { ManifestSchema } from '../../shared/schemas.ts';
import { MODEL, nanWeights, type Peers, postInfer, signingKeys, startPeers, until } from './helpers.ts';

describe('device model updates against real aedes and the local S3', () => {
  let peers: Peers;
  const devices: Device[] = [];

  beforeAll(async () => {
    peers = await startPeers(50);
  });

  afterAll(async () => {
    await Promise.all(devices.map((device) => device.stop()));
    await peers?.close();
  });

  async function device(thing: string, extra: Partial<Parameters<typeof startDevice>[0]> = {}) {
    const started = await startDevice(
      peers.deviceOptions(thing, { httpPort: 0, statusIntervalMs: 500, batch: { maxAgeMs: 50 }, ...extra }),
    );
    devices.push(started);
    return started;
  }

  it('installs a released model, answers /infer and publishes result batches that parse', async () => {
    // Prepare
    await peers.release({ version: 1 });
    const gw = await device('gw-happy', { source: { kind: 'csv', file: peers.csv, limit: 120 } });

    // Act
    await gw.finished;
    const answer = await postInfer(gw.httpPort ?? 0, { a: 1.5, b: 1 });

    // Assess
    expect(gw.status()).toMatchObject({ version: 1, state: 'serving', published: 120, outboxDepth: 0 });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ label: 'hi', version: 1 });
    const ids = [...peers.broker.resultIds()].filter(
      (id) => id.startsWith('gw-happy:') && !id.includes(':http:'),
    );
    expect(new Set(ids).size).toBe(120);
    const sample = peers.broker.batches.find((batch) => batch.results.some((r) => r.id === 'gw-happy:0'));
    expect(sample).toMatchObject({ model: MODEL, version: 1 });
    expect(sample?.results[0]).toMatchObject({ id: 'gw-happy:0', truth: expect.stringMatching(/hi|lo/) });
  });

  it.each([
    [
      'tampered weights',
      'verify',
      /sha256/,
      (v: number) => ({ version: v, uploadWeights: tamper(peers.artifacts.weights) }),
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
      (v: number) => ({ version: v, weights: nanWeights(peers.artifacts.weights) }),
    ],
    [
      'a truncated download',
      'verify',
      /truncated/,
      (v: number) => ({
        version: v,
        uploadWeights: peers.artifacts.weights.subarray(0, peers.artifacts.weights.length - 8),
      }),
    ],
  ])('rejects %s with the old model still serving /infer', async (_name, step, reason, options) => {
    // Prepare
    await peers.release({ version: 1 });
    const thing = `gw-${String(_name).replace(/\W+/g, '-')}`;
    const gw = await device(thing);
    await gw.waitFor((s) => s.version === 1, 20_000);

    // Act
    await peers.release(options(2));
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
        peers.broker.statuses.some(
          (m) => m.thing === thing && m.status.lastError?.step === step && m.status.version === 1,
        ),
      5_000,
      'a status message carrying the failure',
    );
    await gw.stop();
  });

  it('follows a key rotation: keys pinned by keyId, the new key accepted where pinned, the old refused where it is not', async () => {
    // Prepare: the stack's key is the old one; gateways pin {old, new} or only {new}.
    const next = signingKeys();
    const oldPin = namedPublicKey(localKeyId(peers.keys.publicKeyPem), peers.keys.publicKeyPem);
    const newPin = namedPublicKey(localKeyId(next.publicKeyPem), next.publicKeyPem);
    await peers.release({ version: 1 });
    const both = await device('gw-pins-both', { publicKeyPem: oldPin + newPin });
    const newOnly = await device('gw-pins-new', { publicKeyPem: newPin });
    await both.waitFor((s) => s.version === 1, 20_000);
    const refused = await newOnly.waitFor((s) => s.lastError !== null, 20_000);

    // Act: the stage signs with the new key from now on.
    await peers.release({ version: 2, signWith: next.privateKeyPem, noticeSignWith: next.privateKeyPem });

    // Assess
    expect(refused.version).toBeNull();
    expect(refused.lastError).toMatchObject({
      step: 'verify',
      version: 1,
      reason: expect.stringContaining(
        `is by key '${localKeyId(peers.keys.publicKeyPem)}', which is not pinned on this gateway (pinned: ${localKeyId(next.publicKeyPem)}): if that key is the stage's new signing key, pin it`,
      ),
    });
    expect((await both.waitFor((s) => s.version === 2, 20_000)).version).toBe(2);
    expect((await newOnly.waitFor((s) => s.version === 2, 20_000)).version).toBe(2);
    await Promise.all([both.stop(), newOnly.stop()]);
  });

  it('stops promptly while its source still waits for a first model', async () => {
    // Prepare: a model nobody has released yet, so the CSV replay never starts.
    const gw = await startDevice(
      peers.deviceOptions('gw-waiting', {
        model: 'never-released',
        source: { kind: 'csv', file: peers.csv, limit: 10 },
      }),
    );

    // Act
    const stopped = await Promise.race([
      gw.stop().then(() => 'stopped'),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10_000)),
    ]);

    // Assess
    expect(stopped).toBe('stopped');
    expect(gw.status()).toMatchObject({ version: null, produced: 0 });
  });

  it('refuses an older version unless the notice is an explicit rollback', async () => {
    // Prepare
    await peers.release({ version: 3 });
    const gw = await device('gw-rollback');
    await gw.waitFor((s) => s.version === 3, 20_000);

    // Act
    await peers.release({ version: 2 });
    const refused = await gw.waitFor((s) => s.lastError !== null, 20_000);
    await peers.release({ version: 2, kind: 'rollback' });
    const rolledBack = await gw.waitFor((s) => s.version === 2, 20_000);

    // Assess
    expect(refused.version).toBe(3);
    expect(refused.lastError).toMatchObject({ step: 'verify', reason: expect.stringMatching(/older/) });
    expect(rolledBack.lastError).toBeNull();
    await gw.stop();
  });

  it.each([
    ['unsigned', /not signed/],
    ['forged', /does not verify/],
    ['expired', /expired at/],
  ] as const)(
    'refuses a rollback notice that is %s, with the old model still serving /infer',
    async (bad, reason) => {
      // Prepare
      await peers.release({ version: 5 });
      const gw = await device(`gw-${bad}-notice`);
      await gw.waitFor((s) => s.version === 5, 20_000);

      // Act
      await peers.release({ version: 4, kind: 'rollback', badNotice: bad });
      const refused = await gw.waitFor((s) => s.lastError !== null, 20_000);
      const answer = await postInfer(gw.httpPort ?? 0, { a: 1.5, b: 1 });

      // Assess
      expect(refused.lastError).toMatchObject({
        step: 'verify',
        version: 4,
        reason: expect.stringMatching(reason),
      });
      expect(refused.version).toBe(5);
      expect(answer.body).toMatchObject({ version: 5 });
      await gw.stop();
    },
  );

  it('keeps the highest verified version across a restart: an older release is refused, a signed rollback is not', async () => {
    // Prepare: v7 serves, then the gateway restarts with v6 as the retained notice.
    await peers.release({ version: 7 });
    const first = await device('gw-floor');
    await first.waitFor((s) => s.version === 7, 20_000);
    await first.stop();
    await peers.release({ version: 6 });

    // Act
    const second = await device('gw-floor');
    const refused = await second.waitFor((s) => s.lastError !== null, 20_000);
    await peers.release({ version: 6, kind: 'rollback' });
    const rolledBack = await second.waitFor((s) => s.version === 6, 20_000);

    // Assess
    expect(refused.version).toBe(7);
    expect(refused.lastError).toMatchObject({
      reason: expect.stringMatching(/highest this gateway has verified/),
    });
    expect(rolledBack.lastError).toBeNull();
    await second.stop();
  });

  it('refuses at boot a model planted in the state dir (digests match, no signature from the stack) and serves the previous one', async () => {
    // Prepare: v1 then v2 serve; then a v3 slot signed by another key is planted and named current.
    await peers.release({ version: 1 });
    const first = await device('gw-planted');
    await first.waitFor((s) => s.version === 1, 20_000);
    await peers.release({ version: 2 });
    await first.waitFor((s) => s.version === 2, 20_000);
    await first.stop();
    const models = join(peers.dir, 'gw-planted', 'models');
    await cp(join(models, 'v2'), join(models, 'v3'), { recursive: true });
    const manifest = ManifestSchema.parse(
      JSON.parse(await readFile(join(models, 'v3', 'manifest.json'), 'utf8')),
    );
    const planted = await signManifest(
      { ...manifest, version: 3 },
      pemSigner(signingKeys().privateKeyPem, 'attacker'),
    );
    await writeFile(join(models, 'v3', 'manifest.json'), JSON.stringify(planted));
    await writeFile(join(models, 'current'), JSON.stringify({ version: 3, previous: 2 }));
    const logs: string[] = [];

    // Act
    const second = await device('gw-planted', { log: (line) => logs.push(line) });
    const status = await second.waitFor((s) => s.state === 'serving', 20_000);

    // Assess
    expect(status.version).toBe(2);
    expect(logs.join('\n')).toMatch(/slot v3 does not verify \(manifest signature does not verify/);
    await second.stop();
  });
});

function tamper(weights: Buffer): Buffer {
  const copy = Buffer.from(weights);
  copy[0] = (copy[0] ?? 0) ^ 0xff;
  return copy;
}
