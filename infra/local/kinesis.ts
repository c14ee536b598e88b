/**
 * The local Kinesis Data Streams: kinesalite (LevelDB in the data dir, so records and the
 * event source mapping's checkpoints survive a restart) with the topology's streams.
 */
import type { Server } from 'node:http';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  ListStreamsCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import kinesalite from 'kinesalite';
import { streams } from '../../shared/topology.ts';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './env.ts';

/** kinesalite with no artificial CREATING delay; up to 100 shards (a resharding test splits). */
export function startKinesalite(path: string): Server {
  return kinesalite({ path, createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
}

/**
 * A Kinesis client for a local endpoint. The SDK's default handler for Kinesis is HTTP/2
 * (for SubscribeToShard), which kinesalite does not speak: GetRecords polling over HTTP/1.1
 * is what a Lambda event source mapping does anyway.
 */
export function localKinesisClient(endpoint: string): KinesisClient {
  return new KinesisClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    requestHandler: new NodeHttpHandler(),
  });
}

/** Creates the topology's streams that are missing and waits until all are ACTIVE. */
export async function ensureStreams(client: KinesisClient): Promise<string[]> {
  const existing = new Set<string>();
  let start: string | undefined;
  for (;;) {
    const page = await client.send(new ListStreamsCommand({ ExclusiveStartStreamName: start }));
    for (const name of page.StreamNames ?? []) existing.add(name);
    if (!page.HasMoreStreams) break;
    start = page.StreamNames?.at(-1);
  }
  const missing = Object.values(streams).filter((stream) => !existing.has(stream.localName));
  for (const stream of missing)
    await client.send(
      new CreateStreamCommand({ StreamName: stream.localName, ShardCount: stream.localShards }),
    );
  for (const stream of Object.values(streams)) await waitActive(client, stream.localName);
  return missing.map((stream) => stream.localName);
}

async function waitActive(client: KinesisClient, name: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const { StreamDescriptionSummary } = await client.send(
      new DescribeStreamSummaryCommand({ StreamName: name }),
    );
    if (StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`stream ${name} did not become ACTIVE`);
}
