/**
 * End to end through a real MQTT client that is not ours: mosquitto_pub (Debian package
 * mosquitto-clients) -> the local stack's broker -> the results topic rule -> the results
 * aggregator -> dynalite. Skipped, with a note, where mosquitto_pub is not installed.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batchPayload,
  makeResults,
  manifestFor,
  putManifest,
} from '../../bench/support/aggregation-fixtures.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { localStatsSource, readErrors, readModelStats } from '../../functions/aggregation/queries.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { s3Client } from '../../shared/aws.ts';
import { topicFor } from '../../shared/topology.ts';
import { peerAvailable } from '../support/peers.ts';

const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';
const available = peerAvailable(
  'mosquitto_pub',
  existsSync(MOSQUITTO_PUB) ? undefined : `${MOSQUITTO_PUB} is missing`,
  'apt-get install mosquitto-clients',
);

const run = promisify(execFile);

async function waitUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`gave up waiting for ${what}; last seen ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.runIf(available)('results published by mosquitto_pub through the local stack', () => {
  let stack: LocalStack;
  const thing = 'gw-mosquitto';

  async function publish(message: { text: string } | { file: string }): Promise<void> {
    const url = new URL(stack.endpoints.mqtt);
    const body = 'text' in message ? ['-m', message.text] : ['-f', message.file];
    await run(MOSQUITTO_PUB, [
      ...['-h', url.hostname, '-p', url.port, '-V', 'mqttv311', '-q', '1'],
      ...['-i', thing, '-t', topicFor('results', { thing })],
      ...body,
    ]);
  }

  beforeAll(async () => {
    stack = await startTestStack({ logLevel: 'ERROR' });
    await putManifest(s3Client(), manifestFor('mosq', 1, 0.6));
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('sets every malformed message aside with a reason, and still counts valid batches exactly once', async () => {
    // Prepare
    const since = Date.now() - 1000;
    const startTs = Date.now() - 120_000;
    const results = makeResults(300, { seed: 21, startTs, idPrefix: 'm', truthEvery: 4 });
    const valid = batchPayload({
      batchId: 'mosq-batch-0001',
      model: 'mosq',
      version: 1,
      sentAt: startTs,
      results,
    });
    const mixed = batchPayload({
      batchId: 'mosq-batch-0002',
      model: 'mosq',
      version: 1,
      sentAt: startTs,
      results: [
        ...makeResults(20, { seed: 22, startTs, idPrefix: 'x' }),
        { id: 'bad', ts: startTs, label: 'idle', confidence: 0.123456789, latencyMs: 1 },
      ],
    }).replace('0.123456789', '1e999');
    const randomBytes = join(stack.dataDir, 'random.bin');
    await writeFile(
      randomBytes,
      Uint8Array.from({ length: 200 }, (_, i) => (i * 197 + 11) % 256),
    );

    // Act
    await publish({ text: valid.slice(0, 120) }); // truncated JSON
    await publish({ text: 'null' });
    await publish({
      text: JSON.stringify({ batchId: 7, model: ['mosq'], version: 'one', sentAt: null, results: 'x' }),
    });
    await publish({ file: randomBytes });
    await publish({ text: valid.replace('"version":1', '"version":1e999') }); // overflows to Infinity
    await publish({ text: valid });
    await publish({ text: valid }); // the device's outbox replays it
    await publish({ text: mixed });
    const source = localStatsSource();
    const stats = await waitUntil(
      () => readModelStats(source, 'mosq', startTs - 60_000),
      (value) => value.inferences >= 320,
      'the valid results to be aggregated',
    );
    const errors = await waitUntil(
      () => readErrors(source, since, 20),
      (value) => value.count >= 6,
      'the malformed messages to be set aside',
    );
    await stack.idle();

    // Assess
    expect(stats.inferences).toBe(320);
    expect((await readModelStats(source, 'mosq', startTs - 60_000)).inferences).toBe(320);
    expect((await readErrors(source, since, 20)).count).toBe(6);
    const reasons = errors.latest.map((error) => error.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/not valid JSON/),
        expect.stringMatching(/invalid result batch: \(root\): .*null/),
        expect.stringMatching(/invalid result batch: batchId: .*model: .*version: /),
        expect.stringMatching(/not UTF-8 text \(200 bytes/),
        expect.stringMatching(/invalid result batch: version: .*Infinity/),
        expect.stringMatching(/results\.20: confidence/),
      ]),
    );
    expect(
      errors.latest.every((error) => error.thing === thing && error.topic === topicFor('results', { thing })),
    ).toBe(true);
  });
});
