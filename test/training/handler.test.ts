import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resetAwsClients } from '../../shared/aws.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { generateSigningKeyPair, signManifest, verifyManifestSignature } from '../../shared/manifest.ts';
import type { Manifest } from '../../shared/schemas.ts';
import { signerFromEnv } from '../../shared/signing.ts';
import { buckets, datasetKeys, envVars, tables } from '../../shared/topology.ts';
import { type LocalServers, startLocalServers } from './local-servers.ts';

const keys = generateSigningKeyPair();
const dir = mkdtempSync(join(tmpdir(), 'edgeloop-keys-'));
const keyFile = join(dir, 'signing.pem');
writeFileSync(keyFile, keys.privateKeyPem);

const unsigned = { schemaVersion: 1, model: 'm', version: 1 } as unknown as Manifest;

describe('signerFromEnv', () => {
  it('signs with a PEM file so the public half verifies', async () => {
    const signed = await signManifest(unsigned, await signerFromEnv(keyFile));
    expect(signed.signature?.keyId).toBe('local:signing.pem');
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
});

describe('the train handler, configured from the environment', () => {
  let servers: LocalServers;
  const saved = { ...process.env };

  beforeAll(async () => {
    servers = await startLocalServers();
    Object.assign(process.env, {
      [envVars.datasetsBucket]: buckets.datasets.localName,
      [envVars.modelsBucket]: buckets.models.localName,
      [envVars.registryTable]: tables.registry.localName,
      [envVars.idempotencyTable]: tables.idempotency.localName,
      [envVars.signingKey]: keyFile,
      AWS_ENDPOINT_URL_S3: servers.endpoints.s3,
      AWS_ENDPOINT_URL_DYNAMODB: servers.endpoints.dynamodb,
      AWS_ENDPOINT_URL_IOT_DATA_PLANE: servers.endpoints.iotData,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    });
    resetAwsClients();
  });

  afterAll(async () => {
    resetAwsClients();
    process.env = saved;
    await servers?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs every record of an S3 event and returns one summary per run', async () => {
    // Prepare
    const { handler } = await import('../../functions/train.ts');
    const put = (key: string, body: string) =>
      servers.s3.send(new PutObjectCommand({ Bucket: buckets.datasets.localName, Key: key, Body: body }));
    await put(datasetKeys.config('env'), JSON.stringify({ epochs: 3 }));
    await put(datasetKeys.dataset('env', 'a.csv'), generateDemoDataset({ rows: 200 }));
    await put(datasetKeys.dataset('env', 'b b.csv'), 'x,y\n1,a\n');
    const records = servers.s3Events.filter((record) =>
      (record as { s3: { object: { key: string } } }).s3.object.key.endsWith('.csv'),
    );
    // S3 URL-encodes keys in notifications (spaces become '+'), as the local stack does too.
    const encoded = records.map((record) => {
      const r = record as { s3: { object: { key: string } } };
      return { ...r, s3: { ...r.s3, object: { ...r.s3.object, key: r.s3.object.key.replace(/ /g, '+') } } };
    });
    // Act
    const result = await handler({ Records: encoded });
    // Assess
    expect(result.runs.map((run) => [run.model, run.version, run.outcome])).toEqual([
      ['env', 1, 'released'],
      ['env', 2, 'rejected'],
    ]);
    expect(result.runs[1]?.reason).toMatch(/^datasets\/env\/b b\.csv: .*only one class/);
    expect(servers.published).toHaveLength(1);
    expect(JSON.parse(servers.published[0]?.payload ?? '{}')).toMatchObject({ model: 'env', version: 1 });
  });
});
