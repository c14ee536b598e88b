import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ReleaseWatcher,
  recordTrainEvents,
  startTestStack,
  watchReleaseNotices,
} from '../../bench/support/local-stack.ts';
import { eventually } from '../../bench/support/thing-client.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { s3Client } from '../../shared/aws.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { InputError } from '../../shared/errors.ts';
import {
  generateSigningKeyPair,
  localKeyId,
  signManifest,
  verifyManifestSignature,
} from '../../shared/manifest.ts';
import type { Manifest } from '../../shared/schemas.ts';
import { signerFromEnv } from '../../shared/signing.ts';
import { buckets, datasetKeys } from '../../shared/topology.ts';

const keys = generateSigningKeyPair();
const dir = mkdtempSync(join(tmpdir(), 'edgeloop-keys-'));
const keyFile = join(dir, 'signing.pem');
writeFileSync(keyFile, keys.privateKeyPem);

const unsigned = { schemaVersion: 1, model: 'm', version: 1 } as unknown as Manifest;

describe('signerFromEnv', () => {
  it('signs with a PEM file so the public half verifies', async () => {
    const signed = await signManifest(unsigned, await signerFromEnv(keyFile));
    // Named by the public key's hash, the id the local key file pins it under.
    expect(signed.signature?.keyId).toBe(localKeyId(keys.publicKeyPem));
    expect(signed.signature?.keyId).toMatch(/^local:[0-9a-f]{16}$/);
    expect(() => verifyManifestSignature(signed, keys.publicKeyPem)).not.toThrow();
  });

  it('names the variable and the fix when the PEM file is missing', async () => {
    await expect(signerFromEnv(join(dir, 'nope.pem'))).rejects.toThrow(InputError);
    await expect(signerFromEnv(join(dir, 'nope.pem'))).rejects.toThrow(/EDGELOOP_SIGNING_KEY/);
  });

  it('asks KMS for ECDSA_SHA_256 over the raw canonical bytes for kms: and ARN values', async () => {
    // Prepare: a fake KMS that signs with the local key, as the real one would with its own.
    const kms = mockClient(KMSClient);
    const { sign } = await import('node:crypto');
    kms.on(SignCommand).callsFake(async (input: { Message: Uint8Array }) => ({
      Signature: sign('sha256', input.Message, { key: keys.privateKeyPem, dsaEncoding: 'der' }),
    }));
    const arn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    // Act
    const signed = await signManifest(
      unsigned,
      await signerFromEnv(arn, () => new KMSClient({ region: 'eu-west-1' })),
    );
    // Assess
    expect(kms.commandCalls(SignCommand)[0]?.args[0].input).toMatchObject({
      KeyId: arn,
      MessageType: 'RAW',
      SigningAlgorithm: 'ECDSA_SHA_256',
    });
    expect(signed.signature?.keyId).toBe(arn);
    expect(() => verifyManifestSignature(signed, keys.publicKeyPem)).not.toThrow();
    kms.restore();
  });

  it('names a KMS signature by the key ARN KMS answers with, also when an alias configured the signer', async () => {
    // Prepare: KMS answers Sign with the key's ARN, whatever KeyId the request named.
    const kms = mockClient(KMSClient);
    const { sign } = await import('node:crypto');
    const arn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    kms.on(SignCommand).callsFake(async (input: { Message: Uint8Array }) => ({
      KeyId: arn,
      Signature: sign('sha256', input.Message, { key: keys.privateKeyPem, dsaEncoding: 'der' }),
    }));

    // Act
    const signed = await signManifest(
      unsigned,
      await signerFromEnv('alias/edgeloop-signing', () => new KMSClient({ region: 'eu-west-1' })),
    );

    // Assess: the id provision pins the key under (GetPublicKey's KeyId is the ARN too).
    expect(kms.commandCalls(SignCommand)[0]?.args[0].input.KeyId).toBe('alias/edgeloop-signing');
    expect(signed.signature?.keyId).toBe(arn);
    kms.restore();
  });
});

describe('the train handler, configured from the environment', () => {
  // The stack's S3 notification hands the events to this recorder; the test calls the real
  // handler with them, configured by the env the local stack sets (its own signing key).
  const trainEvents = recordTrainEvents();
  let stack: LocalStack;
  let watcher: ReleaseWatcher;

  beforeAll(async () => {
    stack = await startTestStack({ handlers: trainEvents.handlers, logLevel: 'SILENT' });
    watcher = await watchReleaseNotices(stack);
  });

  afterAll(async () => {
    await watcher?.close();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs every record of an S3 event and returns one summary per run', async () => {
    // Prepare
    const { handler } = await import('../../functions/train.ts');
    const put = (key: string, body: string) =>
      s3Client().send(new PutObjectCommand({ Bucket: buckets.datasets.localName, Key: key, Body: body }));
    await put(datasetKeys.config('env'), JSON.stringify({ epochs: 3 }));
    await put(datasetKeys.dataset('env', 'a.csv'), generateDemoDataset({ rows: 200 }));
    await put(datasetKeys.dataset('env', 'b b.csv'), 'x,y\n1,a\n');
    await stack.idle();
    // S3 URL-encodes keys in notifications (spaces become '+'), and so does the local stack.
    const records = trainEvents.records.filter((record) => record.s3.object.key.endsWith('.csv'));
    // Act
    const result = await handler({ Records: records });
    // Assess
    expect(result.runs.map((run) => [run.model, run.version, run.outcome])).toEqual([
      ['env', 1, 'released'],
      ['env', 2, 'rejected'],
    ]);
    expect(result.runs[1]?.reason).toMatch(/^datasets\/env\/b b\.csv: .*only one class/);
    await eventually(() => watcher.notices.length > 0, 5000, 'the release notice');
    expect(watcher.notices).toHaveLength(1);
    expect(JSON.parse(watcher.notices[0]?.payload ?? '{}')).toMatchObject({ model: 'env', version: 1 });
  });
});
