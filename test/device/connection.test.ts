import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMqttLink } from '../../device/platform/connection.ts';
import { topicFor } from '../../shared/topology.ts';
import { MODEL, startBroker, type TestBroker, until } from './helpers.ts';

describe('MQTT link (aws-iot-device-sdk-v2 MQTT 3.1.1) against aedes', () => {
  let broker: TestBroker;

  beforeAll(async () => {
    broker = await startBroker();
  });

  afterAll(() => broker?.close());

  it('leaves no connection open when disconnect() comes while CONNECT is in flight', async () => {
    // Prepare
    const link = createMqttLink({ clientId: 'gw-race', endpoint: broker.url });

    // Act
    const connecting = link.connect();
    await link.disconnect();
    await connecting;
    await new Promise((resolve) => setTimeout(resolve, 200));

    // Assess
    expect(link.connected).toBe(false);
    expect(broker.clients()).toBe(0);
  });

  it('rejects a publish while offline and resolves one on PUBACK once connected', async () => {
    // Prepare
    const link = createMqttLink({ clientId: 'gw-pub', endpoint: broker.url });
    const topic = topicFor('results', { thing: 'gw-pub' });
    const payload = {
      batchId: 'batch-0001',
      model: MODEL,
      version: 1,
      sentAt: 1,
      results: [{ id: 'gw-pub:0', ts: 1, label: 'hi', confidence: 1, latencyMs: 0 }],
    };

    // Act
    const offline = expect(link.publish(topic, JSON.stringify(payload))).rejects.toThrow(/not connected/);
    await link.connect();
    await link.publish(topic, JSON.stringify(payload));
    await link.disconnect();

    // Assess
    await offline;
    expect(broker.resultIds()).toContain('gw-pub:0');
  });

  it('renews its subscriptions after the broker restarts on the same port', async () => {
    // Prepare
    const received: string[] = [];
    const link = createMqttLink({ clientId: 'gw-resub', endpoint: broker.url, backoff: { maxMs: 1_000 } });
    const resumed = new Promise((resolve) => link.once('resumed', resolve));
    await link.connect();
    await link.subscribe(topicFor('release', { model: MODEL }), (_topic, payload) =>
      received.push(payload.toString()),
    );

    // Act
    await broker.stop();
    await broker.start();
    await resumed;
    await broker.publishRetained(topicFor('release', { model: MODEL }), { after: 'restart' });
    await until(() => received.length > 0, 10_000, 'the notice after the restart');
    await link.disconnect();

    // Assess
    expect(received.map((text) => JSON.parse(text))).toContainEqual({ after: 'restart' });
  });
});
