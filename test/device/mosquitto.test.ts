import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/support/free-port.ts';
import { createMqttLink, type MqttLink } from '../../device/platform/connection.ts';
import { startDevice } from '../../device/service.ts';
import { type ResultBatch, ResultBatchSchema } from '../../shared/schemas.ts';
import { topicFilter } from '../../shared/topology.ts';
import { peerAvailable } from '../support/peers.ts';
import {
  MODEL,
  publishRelease,
  removeTempDirs,
  sensorCsv,
  signingKeys,
  startS3,
  type TestS3,
  tempDir,
  trainTinyModel,
  until,
} from './helpers.ts';

const MOSQUITTO = '/usr/sbin/mosquitto';
const available = peerAvailable(
  'Mosquitto',
  existsSync(MOSQUITTO) ? undefined : `${MOSQUITTO} is not installed`,
  'apt-get install mosquitto',
);

describe.runIf(available)('the device against Mosquitto (Debian package)', () => {
  let mosquitto: ChildProcess;
  let url: string;
  let s3: TestS3;
  let dir: string;
  let tool: MqttLink;
  const batches: ResultBatch[] = [];
  const keys = signingKeys();

  beforeAll(async () => {
    dir = await tempDir();
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    const conf = join(dir, 'mosquitto.conf');
    await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    mosquitto = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    s3 = await startS3();
    tool = createMqttLink({ clientId: 'test-tool', endpoint: url });
    await tool.connect();
    await tool.subscribe(topicFilter('results'), (_topic, payload) => {
      batches.push(ResultBatchSchema.parse(JSON.parse(payload.toString())) as ResultBatch);
    });
  });

  afterAll(async () => {
    await tool?.disconnect();
    await s3?.close();
    await removeTempDirs();
    mosquitto?.kill('SIGTERM');
  });

  it('connects, publishes with PUBACK, receives the retained notice and delivers every result', async () => {
    // Prepare
    const artifacts = await trainTinyModel();
    const csv = join(dir, 'readings.csv');
    await writeFile(csv, sensorCsv(40));
    const retained = {
      publishRetained: (topic: string, payload: unknown) =>
        tool.publish(topic, JSON.stringify(payload), { retain: true }),
    };
    await publishRelease(s3, retained, artifacts, keys.privateKeyPem, { version: 1 });

    // Act
    const device = await startDevice({
      thing: 'gw-mosquitto',
      model: MODEL,
      stateDir: join(dir, 'gw'),
      mqttEndpoint: url,
      s3Endpoint: s3.endpoint,
      publicKeyPem: keys.publicKeyPem,
      source: { kind: 'csv', file: csv, limit: 500 },
      batch: { maxResults: 100 },
    });
    await device.finished;
    await device.stop();

    // Assess
    await until(
      () => batches.reduce((n, b) => n + b.results.length, 0) >= 500,
      10_000,
      'all results at the subscriber',
    );
    const ids = new Set(batches.flatMap((batch) => batch.results.map((result) => result.id)));
    expect(ids.size).toBe(500);
    expect(device.status()).toMatchObject({ version: 1, published: 500, finished: true });
  });
});
