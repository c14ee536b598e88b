/**
 * Staged rollout end to end on the real local stack: the training function, the aggregators,
 * the scheduled rollout controller and 20 device services. A good model goes canary ->
 * promoted -> the whole fleet; a mislabelled one is rolled back and no gateway outside its
 * canary cohort ever runs it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { inCanaryCohort } from '../../shared/rollout/cohort.ts';
import type { RegistryItem } from '../../shared/schemas.ts';
import { type Fleet, mislabelledDataset, startFleet, waitUntil } from './fleet.ts';

const MODEL = 'rollout-sensors';
const DEVICES = 20;
const CANARY_PERCENT = 30;
const TIMEOUT = 40_000;

let fleet: Fleet;

const settled = (version: number, statuses: RegistryItem['status'][]) =>
  waitUntil(
    async () => {
      const item = (await fleet.registry(MODEL)).find((run) => run.version === version);
      return item && statuses.includes(item.status) ? item : undefined;
    },
    TIMEOUT,
    `v${version} to be ${statuses.join(' or ')}`,
  );
const serving = (things: readonly string[], version: number) =>
  waitUntil(
    () =>
      fleet.devices.filter((d) => things.includes(d.thing)).every((d) => d.status().version === version) ||
      undefined,
    TIMEOUT,
    `${things.length} gateways to serve v${version}`,
  );
const things = () => fleet.devices.map((device) => device.thing);

beforeAll(async () => {
  fleet = await startFleet({ model: MODEL });
  await fleet.putConfig(MODEL, {
    label: 'condition',
    epochs: 25,
    gateMargin: 0.1,
    rollout: {
      canaryPercent: CANARY_PERCENT,
      minResults: 150,
      minDurationMs: 1_500,
      maxAccuracyDrop: 0.1,
      maxLowConfidenceDelta: 0.25,
      minLabelled: 100,
    },
  });
  await fleet.startDevices(DEVICES);
  // The first release has nothing to compare with: it goes to the whole fleet.
  await fleet.upload(MODEL, 'v1.csv', generateDemoDataset({ rows: 600, seed: 1 }));
  const v1 = await settled(1, ['released', 'rejected', 'rejected-by-gate', 'failed']);
  expect(v1.status).toBe('released');
  await serving(things(), 1);
}, 90_000);

afterAll(async () => {
  await fleet?.stop();
}, 60_000);

describe('staged rollout', () => {
  it('sends a good model to its canary cohort first, promotes it, and then the whole fleet runs it', async () => {
    // Prepare
    const cohort = things().filter((thing) => inCanaryCohort(thing, 2, CANARY_PERCENT));
    expect(cohort.length).toBeGreaterThan(0);
    expect(cohort.length).toBeLessThan(DEVICES);

    // Act
    await fleet.upload(MODEL, 'v2.csv', generateDemoDataset({ rows: 600, seed: 2 }));
    const canary = await settled(2, ['canary', 'released', 'rejected-by-gate', 'failed']);
    const promoted = await settled(2, ['released', 'rolled-back']);
    await serving(things(), 2);

    // Assess
    expect(canary.status).not.toMatch(/rejected|failed/);
    expect(promoted.status, promoted.reason).toBe('released');
    expect(promoted.rollout).toMatchObject({ previousVersion: 1, decision: 'promote' });
    const decidedAt = Date.parse(promoted.rollout?.decidedAt ?? '');
    const early = fleet.installs.filter((install) => install.version === 2 && install.at < decidedAt);
    expect(early.length).toBeGreaterThan(0);
    for (const install of early) expect(cohort).toContain(install.thing);
  }, 90_000);

  it('rolls a mislabelled model back automatically; no gateway outside the cohort ever ran it', async () => {
    // Prepare
    const cohort = things().filter((thing) => inCanaryCohort(thing, 3, CANARY_PERCENT));
    expect(cohort.length).toBeGreaterThan(0);

    // Act
    await fleet.upload(MODEL, 'v3.csv', mislabelledDataset(3));
    const canary = await settled(3, ['canary', 'released', 'rolled-back', 'rejected-by-gate', 'failed']);
    const outcome = await settled(3, ['released', 'rolled-back']);
    await serving(things(), 2);

    // Assess
    expect(canary.status, canary.reason).not.toMatch(/rejected|failed/);
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.rollout).toMatchObject({ previousVersion: 2, decision: 'rollback' });
    expect(outcome.reason).toMatch(/rollback: live accuracy/);
    const ranIt = new Set(fleet.installs.filter((i) => i.version === 3).map((i) => i.thing));
    expect(ranIt.size).toBeGreaterThan(0);
    for (const thing of ranIt) expect(cohort).toContain(thing);
    // The cohort went back to v2 through the explicit rollback notice.
    for (const thing of ranIt) {
      const last = fleet.installs.filter((i) => i.thing === thing).at(-1);
      expect(last?.version).toBe(2);
    }
  }, 90_000);
});
