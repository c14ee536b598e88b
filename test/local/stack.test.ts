import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetRetainedMessageCommand,
  IoTDataPlaneClient,
  ListRetainedMessagesCommand,
  PublishCommand,
} from '@aws-sdk/client-iot-data-plane';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectThing, eventually } from '../../bench/support/thing-client.ts';
import type { InvokedEvent } from '../../infra/local/invoker.ts';
import { type LocalStack, localEnv, readEndpoints, startLocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { emitEmf } from '../../shared/emf-sink.ts';
import { localKeyId, pinnedKeys } from '../../shared/manifest.ts';
import { buckets, envVars, functions, modelKeys, tables, topicFor } from '../../shared/topology.ts';

const release = topicFor('release', { model: 'restart-model' });

describe('local stack', () => {
  let dataDir: string;
  let stack: LocalStack;
  const trainEvents: unknown[] = [];
  const handlers = {
    train: async (event: unknown) => {
      trainEvents.push(event);
      const key = (event as { Records: { s3: { object: { key: string } } }[] }).Records[0]?.s3.object.key;
      if (key?.includes('broken')) throw new Error('no label column in the dataset');
    },
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'edgeloop-stack-'));
    stack = await startLocalStack({ dataDir, handlers });
  });

  afterAll(async () => {
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('sets the env the handlers read, pointing the shared AWS clients at the local servers', () => {
    // Act
    const env = localEnv(stack.endpoints, dataDir);

    // Assess
    expect(stack.env).toEqual(env);
    for (const fn of Object.values(functions)) {
      for (const key of fn.env) expect(process.env[envVars[key]], envVars[key]).toBeTruthy();
    }
    expect(process.env.AWS_ENDPOINT_URL_S3).toBe(stack.endpoints.s3);
    expect(process.env.AWS_ENDPOINT_URL_DYNAMODB).toBe(stack.endpoints.dynamodb);
    expect(process.env.AWS_ENDPOINT_URL_IOT_DATA_PLANE).toBe(stack.endpoints.iotData);
    expect(process.env[envVars.registryTable]).toBe(tables.registry.localName);
    expect(stack.endpoints.mqtt).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
  });

  it('invokes train with an S3-shaped event for a dataset upload, URL-encoding the key as S3 does', async () => {
    // Prepare
    trainEvents.length = 0;

    // Act
    await s3Client().send(
      new PutObjectCommand({
        Bucket: buckets.datasets.localName,
        Key: 'datasets/demo/day 1.csv',
        Body: 'a,b\n1,x\n',
      }),
    );
    await stack.idle();

    // Assess
    expect(trainEvents).toHaveLength(1);
    expect(trainEvents[0]).toMatchObject({
      Records: [
        {
          eventSource: 'aws:s3',
          eventName: 'ObjectCreated:Put',
          s3: {
            bucket: { name: buckets.datasets.localName },
            object: { key: 'datasets/demo/day+1.csv', size: 8 },
          },
        },
      ],
    });
  });

  it('does not invoke train for keys outside the dataset prefix/suffix or in other buckets', async () => {
    // Prepare
    trainEvents.length = 0;

    // Act
    for (const [Bucket, Key] of [
      [buckets.datasets.localName, 'datasets/demo/edgeloop.json'],
      [buckets.datasets.localName, 'feedback/demo/hard.csv'],
      [buckets.models.localName, 'datasets/demo/x.csv'],
    ] as const) {
      await s3Client().send(new PutObjectCommand({ Bucket, Key, Body: '{}' }));
    }
    await stack.idle();

    // Assess
    expect(trainEvents).toEqual([]);
  });

  it('reports a failing train invocation without failing the upload', async () => {
    // Prepare
    const invoked: InvokedEvent[] = [];
    stack.events.on('invoked', (event: InvokedEvent) => invoked.push(event));

    // Act
    await s3Client().send(
      new PutObjectCommand({
        Bucket: buckets.datasets.localName,
        Key: 'datasets/demo/broken.csv',
        Body: 'x\n',
      }),
    );
    await stack.idle();

    // Assess
    expect(invoked).toEqual([
      { fn: 'train', ms: expect.any(Number), error: 'no label column in the dataset' },
    ]);
  });

  it('keeps a signing key pair: private key 0600 on disk, public key in the models bucket', async () => {
    // Act
    const object = await s3Client().send(
      new GetObjectCommand({ Bucket: buckets.models.localName, Key: modelKeys.signingPublicKey }),
    );

    // Assess
    expect(await object.Body?.transformToString()).toBe(stack.publicKeyPem);
    expect(stack.publicKeyPem).toContain('BEGIN PUBLIC KEY');
    // Named, so gateways verify each signature with the key it names (shared/manifest.ts).
    expect(pinnedKeys(stack.publicKeyPem).map((key) => key.keyId)).toEqual([localKeyId(stack.publicKeyPem)]);
    expect(statSync(stack.env[envVars.signingKey] ?? '').mode & 0o777).toBe(0o600);
  });

  it('routes EMF lines emitted by handlers to stack.metrics', () => {
    // Prepare
    const line = JSON.stringify({
      _aws: {
        Timestamp: 1,
        CloudWatchMetrics: [
          { Namespace: 'edgeloop', Dimensions: [['model']], Metrics: [{ Name: 'Inferences' }] },
        ],
      },
      model: 'emf-model',
      Inferences: 12,
    });

    // Act
    emitEmf(line);

    // Assess
    expect(stack.metrics.query('Inferences', { model: 'emf-model' }).map((point) => point.value)).toEqual([
      12,
    ]);
  });

  it("publishes through the SDK's PublishCommand, retained, to a subscribed thing", async () => {
    // Prepare
    const gateway = await connectThing(stack.endpoints.mqtt, 'gw-shim');
    await gateway.connection.subscribe(release, mqtt.QoS.AtLeastOnce);
    const iot = new IoTDataPlaneClient({});

    // Act
    await iot.send(
      new PublishCommand({ topic: release, qos: 1, retain: true, payload: Buffer.from('{"v":1}') }),
    );
    await eventually(() => gateway.messages.length > 0, 5000, 'the published notice');
    const stored = await iot.send(new GetRetainedMessageCommand({ topic: release }));
    await gateway.close();
    iot.destroy();

    // Assess
    expect(gateway.messages[0]).toMatchObject({ topic: release, payload: '{"v":1}' });
    expect(Buffer.from(stored.payload ?? []).toString()).toBe('{"v":1}');
    expect(stored.qos).toBe(1);
  });

  it('answers bad Publish requests the way the IoT data plane does', async () => {
    // Prepare
    const iot = new IoTDataPlaneClient({});

    // Act
    const failures = await Promise.all([
      iot
        .send(new PublishCommand({ topic: 'edgeloop/+/x', payload: Buffer.from('x') }))
        .catch((error) => error),
      iot
        .send(new PublishCommand({ topic: 'edgeloop/x', qos: 2, payload: Buffer.from('x') }))
        .catch((e) => e),
      iot.send(new GetRetainedMessageCommand({ topic: 'edgeloop/none' })).catch((error) => error),
    ]);
    iot.destroy();

    // Assess
    expect(failures.map((failure: Error) => failure.name)).toEqual([
      'InvalidRequestException',
      'InvalidRequestException',
      'ResourceNotFoundException',
    ]);
  });

  it('refuses a second stack on the same data dir', async () => {
    // Act / Assess
    await expect(startLocalStack({ dataDir })).rejects.toThrow(/already running/);
  });

  it('keeps objects, table items and retained messages across restarts, on the same ports', async () => {
    // Prepare
    const first = stack.endpoints;
    await s3Client().send(
      new PutObjectCommand({
        Bucket: buckets.models.localName,
        Key: 'restart/v1/model.json',
        Body: '{"m":1}',
      }),
    );
    await dynamoClient().send(
      new PutCommand({
        TableName: tables.registry.localName,
        Item: { model: 'restart-model', version: 1, status: 'released' },
      }),
    );
    const iot = new IoTDataPlaneClient({});
    await iot.send(
      new PublishCommand({ topic: release, qos: 1, retain: true, payload: Buffer.from('{"v":2}') }),
    );
    iot.destroy();

    // Act: two restarts on the same data dir.
    for (let restart = 0; restart < 2; restart++) {
      await stack.stop();
      expect(() => readEndpoints(dataDir)).toThrow(/no local stack in .*edgeloop up/);
      stack = await startLocalStack({ dataDir, handlers });
    }
    const object = await s3Client().send(
      new GetObjectCommand({ Bucket: buckets.models.localName, Key: 'restart/v1/model.json' }),
    );
    const item = await dynamoClient().send(
      new GetCommand({ TableName: tables.registry.localName, Key: { model: 'restart-model', version: 1 } }),
    );
    const gateway = await connectThing(stack.endpoints.mqtt, 'gw-late');
    await gateway.connection.subscribe(release, mqtt.QoS.AtLeastOnce);
    await eventually(() => gateway.messages.length > 0, 5000, 'the retained notice');
    await gateway.close();
    const listing = new IoTDataPlaneClient({});
    const retained = await listing.send(new ListRetainedMessagesCommand({}));
    listing.destroy();

    // Assess
    expect(stack.endpoints).toEqual(first);
    expect(readEndpoints(dataDir)).toEqual(first);
    expect(await object.Body?.transformToString()).toBe('{"m":1}');
    expect(item.Item).toEqual({ model: 'restart-model', version: 1, status: 'released' });
    expect(gateway.messages[0]).toEqual({ topic: release, payload: '{"v":2}', retain: true });
    expect(retained.retainedTopics?.map((summary) => summary.topic)).toEqual([release]);
  });
});
