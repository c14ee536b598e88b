/**
 * Garbage on the results topic, published by a real MQTT client that is not ours
 * (mosquitto_pub from Debian's mosquitto-clients), through the local broker with the thing
 * policy, the results rule and the real aggregator: every malformed message lands in the
 * errors table with a reason, and a good batch sent after them still counts.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localStatsSource, readErrors, readModelStats } from '../../functions/aggregation/queries.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { topicFor } from '../../shared/topology.ts';

const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';
const missing = existsSync(MOSQUITTO_PUB)
  ? undefined
  : `${MOSQUITTO_PUB} is missing (apt-get install mosquitto-clients)`;
if (missing && process.env.CI) throw new Error(`CI must run the mosquitto_pub test: ${missing}`);
if (missing) console.warn(`skipping the mosquitto_pub malformed-results test: ${missing}`);

const thing = 'gw-garbage';
const topic = topicFor('results', { thing });
let stack: LocalStack;
let workDir: string;

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'edgeloop-malformed-'));
  stack = await startLocalStack({ dataDir: join(workDir, 'stack') });
});

afterAll(async () => {
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

// Asynchronous on purpose: the broker under test runs in this process's event loop.
async function mosquittoPub(args: string[]): Promise<void> {
  const { port } = new URL(stack.endpoints.mqtt);
  await promisify(execFile)(
    MOSQUITTO_PUB,
    ['-h', '127.0.0.1', '-p', port, '-i', thing, '-q', '1', '-t', topic, ...args],
    {
      timeout: 10_000,
    },
  );
}

describe.runIf(!missing)('malformed results from a foreign MQTT client', () => {
  it('are set aside with reasons while a good batch still counts', async () => {
    // Prepare
    const since = Date.now() - 60_000;
    const randomBytes = join(workDir, 'random.bin');
    writeFileSync(randomBytes, Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 97 + 13) % 256)));
    const good = {
      batchId: 'good-batch-0001',
      model: 'garbage-model',
      version: 1,
      sentAt: Date.now(),
      results: [
        { id: 'r1', ts: Date.now(), label: 'a', confidence: 0.9, latencyMs: 2 },
        { id: 'r2', ts: Date.now(), label: 'b', confidence: 0.8, latencyMs: 3, truth: 'b' },
      ],
    };

    // Act
    await mosquittoPub(['-m', '{"batchId": "trunc-0001", "model": "garbage-model", "vers']);
    await mosquittoPub(['-m', 'null']);
    await mosquittoPub([
      '-m',
      JSON.stringify({ ...good, batchId: 'types-00001', version: 'one', results: 'many' }),
    ]);
    await mosquittoPub(['-f', randomBytes]);
    await mosquittoPub([
      '-m',
      JSON.stringify({ ...good, batchId: 'overflow-001' }).replace('"latencyMs":2', '"latencyMs":1e999'),
    ]);
    await mosquittoPub(['-m', JSON.stringify(good)]);
    await waitUntil(async () => (await readErrors(localStatsSource(), since)).count >= 5);
    await stack.idle();

    // Assess
    const errors = await readErrors(localStatsSource(), since, 20);
    expect(errors.count).toBe(5);
    for (const error of errors.latest) {
      expect(error.reason.length).toBeGreaterThan(5);
      expect(error.topic).toBe(topic);
      expect(error.thing).toBe(thing);
    }
    const stats = await readModelStats(localStatsSource(), 'garbage-model', since);
    // The overflow batch has one bad result (set aside) and one good one, which counts.
    expect(stats.inferences).toBe(good.results.length + 1);
  });
});

async function waitUntil(probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the aggregator');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
