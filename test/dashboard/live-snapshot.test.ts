/**
 * The dashboard snapshot read from a real local stack: registry items, a gateway status, result
 * batches and a malformed message go through the real topic rules and aggregators, and the
 * snapshot must show exactly what they amount to (and what `readModelStats` reports).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../bench/support/thing-client.ts';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import { localLiveSource, readLiveSnapshot } from '../../infra/local/dashboard/live-snapshot.ts';
import type { DashboardSnapshot } from '../../infra/local/dashboard/snapshot.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, iotDataClient } from '../../shared/aws.ts';
import type { DeviceStatus, InferenceResult, RegistryItem, ResultBatch } from '../../shared/schemas.ts';
import { tables, topicFor } from '../../shared/topology.ts';

const MODEL = 'pumps';
const MINUTE = 60_000;

const publish = (topic: string, payload: unknown) =>
  iotDataClient().send(
    new PublishCommand({
      topic,
      qos: 1,
      payload: new TextEncoder().encode(typeof payload === 'string' ? payload : JSON.stringify(payload)),
    }),
  );

const registryItem = (version: number, extra: Partial<RegistryItem>): RegistryItem => ({
  model: MODEL,
  version,
  status: 'released',
  createdAt: new Date(Date.now() - (3 - version) * MINUTE).toISOString(),
  updatedAt: new Date().toISOString(),
  datasetKey: `datasets/${MODEL}/v${version}.csv`,
  ...extra,
});

describe('live dashboard snapshot', () => {
  let dir: string;
  let stack: LocalStack;
  let snapshot: DashboardSnapshot;
  const thisMinute = Math.floor(Date.now() / MINUTE) * MINUTE;
  const previousMinute = thisMinute - MINUTE;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-live-'));
    stack = await startLocalStack({ dataDir: dir });
    for (const item of [
      registryItem(1, { metrics: { accuracy: 0.9 } as RegistryItem['metrics'] }),
      registryItem(2, {
        status: 'rejected-by-gate',
        metrics: { accuracy: 0.8 } as RegistryItem['metrics'],
        baselineAccuracy: 0.9,
        reason: 'accuracy 80.0% trails the release (90.0%)',
      }),
    ])
      await dynamoClient().send(new PutCommand({ TableName: tables.registry.localName, Item: item }));

    const result = (
      id: string,
      ts: number,
      label: string,
      confidence: number,
      truth?: string,
    ): InferenceResult => ({
      id,
      ts,
      label,
      confidence,
      latencyMs: 2,
      ...(truth ? { truth } : {}),
    });
    const batch = (batchId: string, results: InferenceResult[]): ResultBatch => ({
      batchId,
      model: MODEL,
      version: 1,
      sentAt: Date.now(),
      results,
    });
    const status: DeviceStatus = {
      ts: Date.now(),
      model: MODEL,
      version: 1,
      state: 'serving',
      outboxDepth: 5,
      dropped: 0,
      inferenceRate: 1,
      latencyP50: 2,
      latencyP99: 3,
      lastError: null,
    };
    let delivered = 0;
    stack.events.on('invoked', () => {
      delivered++;
    });
    const results = topicFor('results', { thing: 'gw-1' });
    await publish(
      results,
      batch('batch-0001', [
        result('r1', previousMinute + 1_000, 'ok', 0.9, 'ok'),
        result('r2', previousMinute + 2_000, 'leak', 0.5, 'ok'),
        result('r3', previousMinute + 3_000, 'ok', 0.95),
      ]),
    );
    await publish(
      results,
      batch('batch-0002', [
        result('r4', thisMinute + 1, 'ok', 0.8, 'ok'),
        result('r5', thisMinute + 2, 'leak', 0.7),
      ]),
    );
    await publish(topicFor('status', { thing: 'gw-1' }), status);
    await publish(results, 'not json');
    // Three result messages and one status, each delivered to its aggregator by a topic rule.
    await eventually(() => delivered >= 4, 10_000, 'the aggregators to handle every message');
    await stack.idle();

    snapshot = await readLiveSnapshot(localLiveSource());
  });

  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists every training run with its status, accuracy and reason', () => {
    // Assess
    expect(
      snapshot.training.runs.map(({ version, status, accuracy }) => ({ version, status, accuracy })),
    ).toEqual([
      { version: 1, status: 'released', accuracy: 0.9 },
      { version: 2, status: 'rejected-by-gate', accuracy: 0.8 },
    ]);
    expect(snapshot.training.runs[1]?.reason).toBe('accuracy 80.0% trails the release (90.0%)');
  });

  it('shows the gateway from its last status: version, online, outbox depth', () => {
    // Assess
    expect(snapshot.rollout.fleet).toEqual([
      expect.objectContaining({
        thing: 'gw-1',
        model: MODEL,
        version: 1,
        online: true,
        state: 'serving',
        outboxDepth: 5,
      }),
    ]);
  });

  it('turns the aggregates into per-minute points of the served version', () => {
    // Prepare
    const series = snapshot.versions;
    const [first, second] = series[0]?.minutes ?? [];

    // Assess
    expect(series.map((s) => `${s.model} v${s.version}`)).toEqual([`${MODEL} v1`]);
    expect(series[0]?.minutes.map((m) => m.minute)).toEqual([previousMinute, thisMinute]);
    expect([first?.inferences, second?.inferences]).toEqual([3, 2]);
    expect(first?.liveAccuracy).toBe(0.5);
    expect(second?.liveAccuracy).toBe(1);
    expect(first?.confidenceMean).toBeCloseTo((0.9 + 0.5 + 0.95) / 3, 12);
    expect(first?.drift).toBeNull(); // no manifest, so no training distribution to compare with
    expect(series[0]?.classMix).toEqual({ ok: 3, leak: 2 });
    expect(series[0]?.confidence.histogram).toHaveLength(20);
    expect(series[0]?.confidence.histogram.reduce((n, b) => n + b.count, 0)).toBe(5);
  });

  it('agrees with readModelStats, the query behind `edgeloop stats`', async () => {
    // Act
    const stats = await readModelStats(localStatsSource(), MODEL, Date.now() - 3_600_000);

    // Assess
    const v1 = snapshot.versions[0];
    expect(v1?.minutes.reduce((n, m) => n + m.inferences, 0)).toBe(stats.versions[0]?.inferences);
    expect(v1?.classMix).toEqual(stats.versions[0]?.classCounts);
    expect(v1?.confidence.mean).toBeCloseTo(stats.versions[0]?.confidenceMean ?? Number.NaN, 12);
  });

  it('counts the message set aside and gives its reason', () => {
    // Assess
    expect(snapshot.errors.count).toBe(1);
    expect(snapshot.errors.latest[0]).toMatchObject({
      thing: 'gw-1',
      topic: topicFor('results', { thing: 'gw-1' }),
    });
    expect(snapshot.errors.latest[0]?.reason).toMatch(/not valid JSON/);
  });
});
