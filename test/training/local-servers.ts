/**
 * Real local servers for the training pipeline's integration tests: s3rver (both buckets),
 * dynalite (registry + idempotency tables) and a tiny IoT data-plane Publish endpoint that
 * records what the SDK's PublishCommand sends. All on 127.0.0.1, port 0; `stop()` closes all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { buckets, type TableSpec, tables } from '../../shared/topology.ts';

interface S3rverLike {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  on(event: 'event', listener: (event: { Records: unknown[] }) => void): void;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverLike;
type Dynalite = (options: Record<string, unknown>) => Server;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverCtor;
const dynalite = require('dynalite') as Dynalite;

export interface PublishedMessage {
  topic: string;
  qos: string | null;
  retain: string | null;
  payload: string;
}

export interface LocalServers {
  s3: S3Client;
  ddb: DynamoDBDocumentClient;
  iot: IoTDataPlaneClient;
  endpoints: { s3: string; dynamodb: string; iotData: string };
  /** Every S3 event record s3rver emitted, in order. */
  s3Events: unknown[];
  published: PublishedMessage[];
  stop(): Promise<void>;
}

const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const region = 'us-east-1';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export async function startLocalServers(): Promise<LocalServers> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-train-'));
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: buckets.datasets.localName }, { name: buckets.models.localName }],
  });
  const s3Events: unknown[] = [];
  s3rver.on('event', (event) => s3Events.push(...event.Records));
  const s3Port = (await s3rver.run()).port;

  const dynamo = dynalite({ createTableMs: 0 });
  const dynamoPort = await listen(dynamo);

  const published: PublishedMessage[] = [];
  const publish = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const topic = decodeURIComponent(url.pathname.replace(/^\/topics\//, ''));
      published.push({
        topic,
        qos: url.searchParams.get('qos'),
        retain: url.searchParams.get('retain'),
        payload: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const publishPort = await listen(publish);

  const s3 = new S3Client({
    endpoint: `http://127.0.0.1:${s3Port}`,
    forcePathStyle: true,
    region,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const rawDynamo = new DynamoDBClient({ endpoint: `http://127.0.0.1:${dynamoPort}`, region, credentials });
  const ddb = DynamoDBDocumentClient.from(rawDynamo, { marshallOptions: { removeUndefinedValues: true } });
  for (const spec of [tables.registry, tables.idempotency] as TableSpec[]) {
    const keys = [spec.partitionKey, ...(spec.sortKey ? [spec.sortKey] : [])];
    await rawDynamo.send(
      new CreateTableCommand({
        TableName: spec.localName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: keys.map((key) => ({ AttributeName: key.name, AttributeType: key.type })),
        KeySchema: keys.map((key, i) => ({ AttributeName: key.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
      }),
    );
  }
  const iot = new IoTDataPlaneClient({ endpoint: `http://127.0.0.1:${publishPort}`, region, credentials });

  return {
    endpoints: {
      s3: `http://127.0.0.1:${s3Port}`,
      dynamodb: `http://127.0.0.1:${dynamoPort}`,
      iotData: `http://127.0.0.1:${publishPort}`,
    },
    s3,
    ddb,
    iot,
    s3Events,
    published,
    async stop() {
      s3.destroy();
      ddb.destroy();
      rawDynamo.destroy();
      iot.destroy();
      await s3rver.close();
      await close(dynamo);
      await close(publish);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
