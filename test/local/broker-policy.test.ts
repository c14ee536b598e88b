import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mqtt } from 'aws-iot-device-sdk-v2';
import type { KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectThing, eventually, type ThingClient } from '../../bench/support/thing-client.ts';
import type { PolicyDecision } from '../../infra/local/policy-auth.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { RuleEventSchema } from '../../shared/schemas.ts';
import {
  basicIngestTopic,
  LOCAL_STAGE,
  ruleNameFor,
  rules,
  streamRules,
  topicFor,
} from '../../shared/topology.ts';

describe('local broker enforces the thing policy', () => {
  let dataDir: string;
  let stack: LocalStack;
  const results: unknown[] = [];
  const statuses: unknown[] = [];
  const streamRecords: string[] = [];
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
        aggregateResultsStream: async (event) => {
          for (const record of (event as KinesisStreamEvent).Records)
            streamRecords.push(Buffer.from(record.kinesis.data, 'base64').toString());
          return { batchItemFailures: [] };
        },
      },
      resultsStream: { batchingWindowMs: 100, pollIntervalMs: 50 },
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

  it("puts a thing's results by Basic Ingest on the results stream, as the rule event", async () => {
    // Prepare
    const gateway = await thing('gw-ingest');
    const topic = `${stack.resultsBasicIngestPrefix}${topicFor('results', { thing: 'gw-ingest' })}`;

    // Act
    await gateway.connection.publish(topic, '{"batchId":"b-ingest-1"}', mqtt.QoS.AtLeastOnce);
    await stack.idle();

    // Assess
    expect(denied.filter((decision) => decision.thing === 'gw-ingest')).toEqual([]);
    const event = RuleEventSchema.parse(JSON.parse(streamRecords.at(-1) ?? '{}'));
    expect(event).toMatchObject({ thing: 'gw-ingest', topic: topicFor('results', { thing: 'gw-ingest' }) });
    expect(Buffer.from(event.payload, 'base64').toString()).toBe('{"batchId":"b-ingest-1"}');
  });

  it.each([
    [
      "another thing's results",
      basicIngestTopic(ruleNameFor(streamRules.results.ruleName, LOCAL_STAGE), 'gw-victim'),
    ],
    [
      'the direct results rule',
      basicIngestTopic(ruleNameFor(rules.results.ruleName, LOCAL_STAGE), 'gw-prefix'),
    ],
    [
      'its status under the stream rule',
      `$aws/rules/${ruleNameFor(streamRules.results.ruleName, LOCAL_STAGE)}/${topicFor('status', { thing: 'gw-prefix' })}`,
    ],
    ['any other rule', basicIngestTopic('some_other_rule', 'gw-prefix')],
  ])('refuses a Basic Ingest publish to %s and puts nothing on the stream', async (_, topic) => {
    // Prepare
    const gateway = await thing('gw-prefix');
    const before = streamRecords.length;

    // Act
    void gateway.connection.publish(topic, '{"forged":true}', mqtt.QoS.AtLeastOnce).catch(() => {});
    await gateway.interrupted();
    await stack.idle();

    // Assess
    expect(streamRecords.length).toBe(before);
    expect(denied).toContainEqual({ action: 'publish', thing: 'gw-prefix', resource: topic });
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
