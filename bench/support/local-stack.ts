/**
 * The embedded local stack (infra/local/stack.ts) for tests and benches: the same local S3,
 * dynalite, aedes broker, Publish shim and EMF collector the product runs on a laptop, in a
 * fresh data dir that stop() removes. The stack sets the handlers' env and the shared AWS
 * clients itself; one runs per process, which vitest's per-file forks give each test file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { listRegistry } from '../../functions/training/registry.ts';
import type { HandlerOverrides } from '../../infra/local/invoker.ts';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { buckets, datasetKeys, tables, topicFilter } from '../../shared/topology.ts';
import { connectThing, type ThingClient } from './thing-client.ts';

export interface TestStackOptions {
  /** Handlers replacing the product's functions (e.g. a train handler that only records). */
  handlers?: HandlerOverrides;
  /** POWERTOOLS_LOG_LEVEL while the stack runs (restored on stop). */
  logLevel?: string;
  /** The results stream's event source mapping timing (LocalStackOptions.resultsStream). */
  resultsStream?: LocalStackOptions['resultsStream'];
  /** Serve the dashboard too (its URL in `endpoints.dashboard`). */
  dashboard?: boolean;
}

export async function startTestStack(options: TestStackOptions = {}): Promise<LocalStack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeloop-test-'));
  const previousLevel = process.env.POWERTOOLS_LOG_LEVEL;
  if (options.logLevel) process.env.POWERTOOLS_LOG_LEVEL = options.logLevel;
  const cleanUp = async () => {
    if (previousLevel === undefined) delete process.env.POWERTOOLS_LOG_LEVEL;
    else process.env.POWERTOOLS_LOG_LEVEL = previousLevel;
    await rm(dataDir, { recursive: true, force: true });
  };
  let stack: LocalStack;
  try {
    stack = await startLocalStack({
      dataDir,
      ...(options.handlers ? { handlers: options.handlers } : {}),
      ...(options.resultsStream ? { resultsStream: options.resultsStream } : {}),
      ...(options.dashboard ? { dashboard: true } : {}),
    });
  } catch (error) {
    await cleanUp();
    throw error;
  }
  return {
    ...stack,
    async stop() {
      await stack.stop();
      await cleanUp();
    },
  };
}

export interface S3EventRecord {
  s3: { bucket: { name: string }; object: { key: string } };
}

/**
 * A train handler that only records the S3 event records the stack's bucket notification
 * delivers (URL-encoded keys, as S3 sends them), so a test can drive the pipeline itself.
 * Await `stack.idle()` after an upload before reading `records`.
 */
export function recordTrainEvents(): { records: S3EventRecord[]; handlers: HandlerOverrides } {
  const records: S3EventRecord[] = [];
  return {
    records,
    handlers: {
      train: async (event) => {
        records.push(...(event as { Records: S3EventRecord[] }).Records);
      },
    },
  };
}

export interface ReleaseWatcher {
  /** Every release notice delivered to the subscribed gateway, in order. */
  notices: ThingClient['messages'];
  close(): Promise<void>;
}

/** A gateway subscribed to every model's release topic, as the thing policy allows. */
export async function watchReleaseNotices(
  stack: LocalStack,
  thing = 'gw-release-watcher',
): Promise<ReleaseWatcher> {
  const client = await connectThing(stack.endpoints.mqtt, thing);
  try {
    const suback = await client.connection.subscribe(topicFilter('release'), mqtt.QoS.AtLeastOnce);
    if (Number(suback.qos) !== mqtt.QoS.AtLeastOnce)
      throw new Error(`the broker refused ${thing}'s subscription to release notices (${suback.qos})`);
  } catch (error) {
    await client.close();
    throw error;
  }
  return { notices: client.messages, close: () => client.close() };
}

/**
 * Uploads a demo dataset of `rows` rows for `model` to the local datasets bucket and waits
 * until the pipeline has released a version of it. Returns the dataset CSV.
 */
export async function releaseDemoModel(model: string, rows = 400): Promise<string> {
  const dataset = generateDemoDataset({ rows });
  await s3Client().send(
    new PutObjectCommand({
      Bucket: buckets.datasets.localName,
      Key: datasetKeys.dataset(model, 'a.csv'),
      Body: dataset,
    }),
  );
  await until(async () => {
    const [latest] = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, model);
    return latest?.status === 'released';
  }, `${model} to be released`);
  return dataset;
}

/** Polls `probe` every 100 ms until it holds; fails naming `what` after `timeoutMs`. */
export interface DemoModelStack {
  stack: LocalStack;
  /** A temp dir for the test's gateways (stop() removes it). */
  workDir: string;
  /** The demo dataset's readings, for a gateway's CSV source. */
  csv: string;
  stop(): Promise<void>;
}

/** A test stack with `model` trained from the demo dataset and released, and its readings in a CSV. */
export async function startDemoModelStack(
  model: string,
  options: TestStackOptions = {},
): Promise<DemoModelStack> {
  const stack = await startTestStack(options);
  const workDir = await mkdtemp(join(tmpdir(), `edgeloop-${model}-`));
  const csv = join(workDir, 'readings.csv');
  await writeFile(csv, await releaseDemoModel(model));
  return {
    stack,
    workDir,
    csv,
    async stop() {
      await stack.stop();
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

export async function until(probe: () => Promise<boolean>, what: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
