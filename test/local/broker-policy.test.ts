import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyDecision } from '../../infra/local/policy-auth.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { RuleEventSchema } from '../../shared/schemas.ts';
import { topicFor } from '../../shared/topology.ts';
import { connectThing, eventually, type ThingClient } from '../support/thing-client.ts';

describe('local broker enforces the thing policy', () => {
  let dataDir: string;
  let stack: LocalStack;
  const results: unknown[] = [];
  const statuses: unknown[] = [];
  const denied: PolicyDecision[] = [];
  const clients: ThingClient[] = [];

  async function thing(id: string): Promise<ThingClient> {
    const client = await connectThing(stack.endpoints.mqtt, id);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'edgeloop-policy-'));
    stack = await startLocalStack({
      dataDir,
      handlers: {
        aggregateResults: async (event) => {
          results.push(event);
        },
        aggregateStatus: async (event) => {
          statuses.push(event);
        },
      },
    });
    stack.events.on('denied', (decision: PolicyDecision) => denied.push(decision));
  });

  afterAll(async () => {
    for (const client of clients) await client.close();
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("delivers a thing's results on its own topic to the results rule", async () => {
    // Prepare
    const gateway = await thing('gw-own');
    const topic = topicFor('results', { thing: 'gw-own' });

    // Act
    await gateway.connection.publish(topic, '{"batchId":"b-00000001"}', mqtt.QoS.AtLeastOnce);
    await eventually(() => results.length > 0, 5000, 'the results rule');
    await stack.idle();

    // Assess
    const event = RuleEventSchema.parse(results[0]);
    expect(event.thing).toBe('gw-own');
    expect(event.topic).toBe(topic);
    expect(Buffer.from(event.payload, 'base64').toString()).toBe('{"batchId":"b-00000001"}');
  });

  it("routes a thing's status on its own topic to the status rule's function", async () => {
    // Prepare
    const gateway = await thing('gw-status');

    // Act
    await gateway.connection.publish(
      topicFor('status', { thing: 'gw-status' }),
      '{"state":"serving"}',
      mqtt.QoS.AtLeastOnce,
    );
    await eventually(() => statuses.length > 0, 5000, 'the status rule');

    // Assess
    expect(RuleEventSchema.parse(statuses[0])).toMatchObject({
      thing: 'gw-status',
      topic: topicFor('status', { thing: 'gw-status' }),
    });
  });

  it("disconnects a thing that publishes on another thing's results topic, and nothing reaches the rule", async () => {
    // Prepare
    const intruder = await thing('gw-intruder');
    const before = results.length;

    // Act
    void intruder.connection
      .publish(topicFor('results', { thing: 'gw-victim' }), '{"forged":true}', mqtt.QoS.AtLeastOnce)
      .catch(() => {});
    await intruder.interrupted();
    await stack.idle();

    // Assess
    expect(results.length).toBe(before);
    expect(denied).toContainEqual({
      action: 'publish',
      thing: 'gw-intruder',
      resource: topicFor('results', { thing: 'gw-victim' }),
    });
  });

  it("refuses a subscription to '#' with a failure return code", async () => {
    // Prepare
    const snoop = await thing('gw-snoop');

    // Act
    const suback = await snoop.connection.subscribe('#', mqtt.QoS.AtLeastOnce);

    // Assess
    expect(suback.qos).toBe(128);
    expect(denied).toContainEqual({ action: 'subscribe', thing: 'gw-snoop', resource: '#' });
  });

  it('lets a thing subscribe to release notices and receive them', async () => {
    // Prepare
    const gateway = await thing('gw-listener');
    const topic = topicFor('release', { model: 'policy-model' });
    const suback = await gateway.connection.subscribe(topic, mqtt.QoS.AtLeastOnce);

    // Act
    await fetch(`${stack.endpoints.iotData}/topics/${encodeURIComponent(topic)}?qos=1`, {
      method: 'POST',
      body: '{"version":1}',
    });
    await eventually(() => gateway.messages.length > 0, 5000, 'the release notice');

    // Assess
    expect(suback.qos).toBe(1);
    expect(gateway.messages[0]).toMatchObject({ topic, payload: '{"version":1}' });
  });

  it('refuses a client id that is not a thing name', async () => {
    // Act / Assess
    await expect(connectThing(stack.endpoints.mqtt, 'not:a:thing')).rejects.toThrow();
    expect(denied).toContainEqual({ action: 'connect', thing: 'not:a:thing', resource: 'not:a:thing' });
  });
});
