import { describe, expect, it } from 'vitest';
import {
  DashboardSnapshotSchema,
  emptySnapshot,
  fleetDeviceFromStatus,
  trainingRunFromRegistry,
} from '../../infra/local/dashboard/snapshot.ts';
import type { DeviceStatus, RegistryItem } from '../../shared/schemas.ts';
import { dashboardPanels, metricNames } from '../../shared/topology.ts';
import { buildSnapshot } from './fixtures.ts';

describe('dashboard snapshot contract', () => {
  it('accepts the empty snapshot and the test fleet story', () => {
    // Prepare
    const documents = [emptySnapshot(new Date('2025-06-01T00:00:00Z')), buildSnapshot()];

    // Act
    const results = documents.map((d) => DashboardSnapshotSchema.safeParse(d));

    // Assess
    expect(results.map((r) => r.success)).toEqual([true, true]);
  });

  it('rejects rates outside 0..1 and non-finite numbers', () => {
    // Prepare
    const snapshot = buildSnapshot();
    const tooHigh = structuredClone(snapshot);
    const infinite = structuredClone(snapshot);
    if (tooHigh.versions[0]?.minutes[0]) tooHigh.versions[0].minutes[0].liveAccuracy = 1.2;
    if (infinite.versions[0]?.minutes[0])
      infinite.versions[0].minutes[0].latencyP99Ms = Number.POSITIVE_INFINITY;

    // Act
    const results = [tooHigh, infinite].map((d) => DashboardSnapshotSchema.safeParse(d));

    // Assess
    expect(results.map((r) => r.success)).toEqual([false, false]);
    expect(results[0]?.error?.issues[0]?.path).toEqual(['versions', 0, 'minutes', 0, 'liveAccuracy']);
  });

  it('names only metrics that the EMF emitters and the CDK dashboard know', () => {
    // Prepare
    const known = new Set<string>(Object.values(metricNames));

    // Act
    const named = Object.values(dashboardPanels).flatMap((panel) => [...panel.metrics]);

    // Assess
    expect(named.filter((name) => !known.has(name))).toEqual([]);
  });

  it('maps a rejected registry item to a training run with its reason and gate baseline', () => {
    // Prepare
    const item: RegistryItem = {
      model: 'vibration',
      version: 2,
      status: 'rejected-by-gate',
      createdAt: '2025-06-01T11:20:00.000Z',
      updatedAt: '2025-06-01T11:21:00.000Z',
      datasetKey: 'datasets/vibration/day2.csv',
      metrics: { accuracy: 0.81 },
      baselineAccuracy: 0.87,
      reason: 'trails the release by more than the gate margin',
      notices: ["dropped column 'serial': it looks like an id (almost every value is unique)"],
    };

    // Act
    const run = trainingRunFromRegistry(item);

    // Assess
    expect(run).toEqual({
      model: 'vibration',
      version: 2,
      status: 'rejected-by-gate',
      accuracy: 0.81,
      baselineAccuracy: 0.87,
      reason: 'trails the release by more than the gate margin',
      notices: ["dropped column 'serial': it looks like an id (almost every value is unique)"],
      createdAt: '2025-06-01T11:20:00.000Z',
    });
  });

  it('maps a device status report to a fleet row that keeps the failing update step', () => {
    // Prepare
    const status: DeviceStatus = {
      ts: 1_748_779_200_000,
      model: 'vibration',
      version: 1,
      state: 'error',
      outboxDepth: 240,
      dropped: 17,
      inferenceRate: 0,
      latencyP50: null,
      latencyP99: null,
      lastError: { step: 'verify', reason: 'bad signature', version: 3, at: 1_748_779_100_000 },
    };

    // Act
    const device = fleetDeviceFromStatus('gw-04', status, { lastSeen: status.ts, online: false });

    // Assess
    expect(device).toEqual({
      thing: 'gw-04',
      model: 'vibration',
      version: 1,
      online: false,
      state: 'error',
      outboxDepth: 240,
      dropped: 17,
      lastSeen: '2025-06-01T12:00:00.000Z',
      lastError: { step: 'verify', reason: 'bad signature' },
    });
  });
});
