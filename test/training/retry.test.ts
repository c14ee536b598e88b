import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import type { TrainingRunState } from '../../functions/training/state.ts';
import { createTrainingSteps } from '../../functions/training/steps.ts';
import { generateSigningKeyPair, pemSigner, sha256Hex } from '../../shared/manifest.ts';
import type { Manifest } from '../../shared/schemas.ts';

const s3 = mockClient(S3Client);
const ddb = mockClient(DynamoDBDocumentClient);
afterEach(() => {
  s3.reset();
  ddb.reset();
});

const keys = generateSigningKeyPair();
const steps = createTrainingSteps({
  s3: new S3Client({ region: 'us-east-1' }),
  ddb: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
  iot: new IoTDataPlaneClient({ region: 'us-east-1' }),
  datasetsBucket: 'datasets',
  modelsBucket: 'models',
  registryTable: 'registry',
  idempotencyTable: 'idempotency',
  signer: async () => pemSigner(keys.privateKeyPem),
  log: { info() {}, warn() {}, error() {} },
});

function publishableState(): TrainingRunState {
  return {
    runId: 'r',
    startedAt: new Date().toISOString(),
    model: 'pump',
    version: 3,
    candidate: {
      manifest: { metrics: { accuracy: 0.9 } } as Manifest,
      notices: [],
      rows: 1,
      features: [],
      classes: [],
      epochsRun: 1,
    },
  };
}

describe('a retried publish step (AWS S3 enforces IfNoneMatch)', () => {
  it('keeps the manifest an earlier attempt stored and releases that one', async () => {
    // Prepare: the manifest key already exists, so S3 answers 412.
    const earlier = new TextEncoder().encode('{"stored":"by the first attempt"}\n');
    s3.on(PutObjectCommand).rejects(
      new S3ServiceException({
        name: 'PreconditionFailed',
        $fault: 'client',
        $metadata: { httpStatusCode: 412 },
      }),
    );
    s3.on(GetObjectCommand).resolves({ Body: { transformToByteArray: async () => earlier } as never });
    ddb.on(UpdateCommand).resolves({});
    const state = publishableState();
    // Act
    const next = await steps.publish(state);
    // Assess
    expect(next.release?.manifestSha256).toBe(sha256Hex(earlier));
    expect(ddb.commandCalls(UpdateCommand)[0]?.args[0].input.ExpressionAttributeValues).toMatchObject({
      ':training': 'training',
    });
  });

  it('fails on any other S3 error', async () => {
    s3.on(PutObjectCommand).rejects(
      new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } }),
    );
    const state = publishableState();
    await expect(steps.publish(state)).rejects.toMatchObject({ name: 'AccessDenied' });
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(0);
  });
});
