/**
 * Real dynalite and s3rver on 127.0.0.1:0 for the aggregation tests and the bench, with the
 * tables and buckets declared in topology. (The lead's infra/local does the same for the
 * product; this helper keeps these tests independent of it.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { resetAwsClients } from '../../shared/aws.ts';
import { setEmfSink } from '../../shared/emf-sink.ts';
import { buckets, envVars, type TableSpec, tables } from '../../shared/topology.ts';

const require = createRequire(import.meta.url);
const dynalite = require('dynalite') as (options: { createTableMs: number }) => Server;
const S3rver = require('s3rver') as new (
  options: Record<string, unknown>,
) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
};

export interface LocalServers {
  dynamodb: string;
  s3: string;
  close(): Promise<void>;
}

const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startLocalServers(): Promise<LocalServers> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-agg-'));
  const dynamo = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => dynamo.listen(0, '127.0.0.1', resolve));
  const dynamodb = `http://127.0.0.1:${(dynamo.address() as AddressInfo).port}`;
  const s3server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: join(dir, 's3'),
    configureBuckets: Object.values(buckets).map((bucket) => ({ name: bucket.localName })),
  });
  const s3 = `http://127.0.0.1:${(await s3server.run()).port}`;
  const client = new DynamoDBClient({ endpoint: dynamodb, region: 'us-east-1', credentials });
  await Promise.all(Object.values(tables).map((spec) => client.send(createTable(spec))));
  client.destroy();
  return {
    dynamodb,
    s3,
    async close() {
      await s3server.close();
      await new Promise<void>((resolve, reject) =>
        dynamo.close((error) => (error ? reject(error) : resolve())),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function createTable(spec: TableSpec): CreateTableCommand {
  const keys = [spec.partitionKey, ...(spec.sortKey ? [spec.sortKey] : [])];
  return new CreateTableCommand({
    TableName: spec.localName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: keys.map((key) => ({ AttributeName: key.name, AttributeType: key.type })),
    KeySchema: keys.map((key, i) => ({ AttributeName: key.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
  });
}

/** Points the shared AWS clients (shared/aws.ts) and the handlers' env at the local servers. */
export function useLocalServers(servers: LocalServers, env: NodeJS.ProcessEnv = process.env): void {
  Object.assign(env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: servers.dynamodb,
    AWS_ENDPOINT_URL_S3: servers.s3,
    [envVars.aggregatesTable]: tables.aggregates.localName,
    [envVars.errorsTable]: tables.errors.localName,
    [envVars.idempotencyTable]: tables.idempotency.localName,
    [envVars.registryTable]: tables.registry.localName,
    [envVars.fleetTable]: tables.fleet.localName,
    [envVars.modelsBucket]: buckets.models.localName,
  });
}

/**
 * Servers started, env and shared clients pointed at them, Powertools logs kept to errors,
 * and EMF lines collected in `emf` instead of stdout. `close` undoes it all.
 */
export type AggregationStack = LocalServers & { emf: string[] };

export async function startAggregationStack(): Promise<AggregationStack> {
  const servers = await startLocalServers();
  const emf: string[] = [];
  useLocalServers(servers);
  process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
  resetAwsClients();
  setEmfSink((line) => emf.push(line));
  return {
    ...servers,
    emf,
    async close() {
      setEmfSink(undefined);
      resetAwsClients();
      await servers.close();
    },
  };
}
