import { describe, expect, it } from 'vitest';
import { NoticeSelector } from '../../device/model/rollout.ts';
import { valueBucket } from '../../shared/aggregation/value-histogram.ts';
import { chooseNotice, cohortPoint, inCanaryCohort } from '../../shared/rollout/cohort.ts';
import { decideRetrain, decideRollout, type LiveStats } from '../../shared/rollout/decide.ts';
import {
  type ReleaseNotice,
  ReleaseNoticeSchema,
  RetrainPolicySchema,
  RolloutPlanSchema,
} from '../../shared/schemas.ts';

const notice = (version: number, extra: Partial<ReleaseNotice> = {}): ReleaseNotice =>
  ReleaseNoticeSchema.parse({
    model: 'm',
    version,
    bucket: 'b',
    manifestKey: `m/v${version}/manifest.json`,
    manifestSha256: 'a'.repeat(64),
    releasedAt: '2026-11-28T10:00:00.000Z',
    ...extra,
  });
const things = Array.from({ length: 1000 }, (_, i) => `gw-${i}`);

describe('canary cohorts', () => {
  it('puts about the planned share of gateways in the cohort, the same ones every time', () => {
    // Act
    const cohort = things.filter((thing) => inCanaryCohort(thing, 7, 10));

    // Assess
    expect(cohort.length).toBeGreaterThan(70);
    expect(cohort.length).toBeLessThan(130);
    expect(things.filter((thing) => inCanaryCohort(thing, 7, 10))).toEqual(cohort);
    for (const thing of things) expect(cohortPoint(thing, 7)).toBeGreaterThanOrEqual(0);
  });

  it('draws a different cohort for each version', () => {
    // Act
    const v1 = things.filter((thing) => inCanaryCohort(thing, 1, 10));
    const v2 = things.filter((thing) => inCanaryCohort(thing, 2, 10));

    // Assess
    expect(v1).not.toEqual(v2);
  });

  it('0% takes nobody and 100% takes everyone', () => {
    expect(things.some((thing) => inCanaryCohort(thing, 3, 0))).toBe(false);
    expect(things.every((thing) => inCanaryCohort(thing, 3, 100))).toBe(true);
  });
});

describe('which notice a gateway acts on', () => {
  const plan = RolloutPlanSchema.parse({ canaryPercent: 50 });
  const canary = notice(2, { cohort: 'canary', rollout: plan });
  const member = things.find((thing) => inCanaryCohort(thing, 2, 50)) ?? '';
  const outsider = things.find((thing) => !inCanaryCohort(thing, 2, 50)) ?? '';

  it('a cohort member takes the canary, anyone else keeps the fleet version', () => {
    expect(chooseNotice(member, notice(1), canary)?.version).toBe(2);
    expect(chooseNotice(outsider, notice(1), canary)?.version).toBe(1);
  });

  it('an outsider never gets a canary-only version, even before the fleet notice arrives', () => {
    expect(chooseNotice(outsider, undefined, canary)).toBeUndefined();
  });

  it('a promoted version (fleet notice) wins over the canary notice of the same version', () => {
    const promoted = notice(2, { cohort: 'all' });
    expect(chooseNotice(outsider, promoted, canary)).toBe(promoted);
  });

  it('a rollback on the canary topic sends cohort members back with kind rollback', () => {
    // Act
    const chosen = chooseNotice(member, notice(1), notice(1, { kind: 'rollback', cohort: 'canary' }));

    // Assess
    expect(chosen?.kind).toBe('rollback');
    expect(chosen?.version).toBe(1);
  });

  it('an older canary is ignored once the fleet moved past it', () => {
    expect(chooseNotice(member, notice(3), canary)?.version).toBe(3);
    expect(chooseNotice(member, notice(3), notice(1, { kind: 'rollback' }))?.version).toBe(3);
  });
});

describe('the gateway notice selector', () => {
  const plan = RolloutPlanSchema.parse({ canaryPercent: 50 });
  const member = things.find((thing) => inCanaryCohort(thing, 2, 50)) ?? '';
  const outsiderOfV3 =
    things.find((thing) => inCanaryCohort(thing, 2, 50) && !inCanaryCohort(thing, 3, 50)) ?? '';

  it('a canary gateway reconnecting hears the canary notice first and keeps its canary', () => {
    // Prepare
    const selector = new NoticeSelector(member, 'm');

    // Act
    const fromCanary = selector.offer('canary', notice(2, { cohort: 'canary', rollout: plan }), 2);
    const fromFleet = selector.offer('release', notice(1), 2);

    // Assess
    expect(selector.topics().map((t) => t.source)).toEqual(['canary', 'release']);
    expect(fromCanary?.version).toBe(2);
    expect(fromFleet?.version).toBe(2);
  });

  it('a gateway running a canary that a newer canary for another cohort replaced goes back to the fleet', () => {
    // Prepare
    const selector = new NoticeSelector(outsiderOfV3, 'm');
    selector.offer('release', notice(1), 2);

    // Act
    const chosen = selector.offer(
      'canary',
      notice(3, { cohort: 'canary', rollout: plan, fallbackVersion: 1 }),
      2,
    );

    // Assess
    expect(chosen).toMatchObject({ version: 1, kind: 'rollback' });
  });

  it('goes back only to the version the newer canary notice names as its fallback', () => {
    // Prepare: an old fleet notice (v1) replayed while the canary names v2 as the fleet version.
    const selector = new NoticeSelector(outsiderOfV3, 'm');
    selector.offer('canary', notice(3, { cohort: 'canary', rollout: plan, fallbackVersion: 2 }), 2);

    // Act
    const replayed = selector.offer('release', notice(1), 2);
    const unnamed = new NoticeSelector(outsiderOfV3, 'm');
    unnamed.offer('release', notice(1), 2);
    const withoutFallback = unnamed.offer('canary', notice(3, { cohort: 'canary', rollout: plan }), 2);

    // Assess: passed on as plain releases, which the updater refuses as older.
    expect(replayed).toMatchObject({ version: 1, kind: 'release' });
    expect(withoutFallback).toMatchObject({ version: 1, kind: 'release' });
  });
});

describe('promote, roll back or wait', () => {
  const plan = RolloutPlanSchema.parse({
    minResults: 100,
    minDurationMs: 10_000,
    maxWaitMs: 60_000,
    maxLowConfidenceDelta: 0.1,
    maxAccuracyDrop: 0.05,
    minLabelled: 50,
  });
  const stats = (over: Partial<LiveStats> = {}): LiveStats => ({
    inferences: 500,
    lowConfidenceRate: 0.1,
    liveAccuracy: 0.9,
    labelled: 500,
    ...over,
  });
  const at = (elapsed: number, canary: LiveStats | undefined, current: LiveStats | undefined = stats()) =>
    decideRollout({ plan, canary, current, canaryStartedAtMs: 1_000, nowMs: 1_000 + elapsed });

  it('waits for enough results', () => {
    expect(at(20_000, stats({ inferences: 99 })).decision).toBe('wait');
    expect(at(20_000, undefined).decision).toBe('wait');
  });

  it('waits for the minimum duration even when healthy', () => {
    expect(at(5_000, stats()).decision).toBe('wait');
  });

  it('promotes a healthy canary after the minimum duration', () => {
    const decision = at(10_000, stats({ liveAccuracy: 0.93 }));
    expect(decision.decision).toBe('promote');
    expect(decision.reason).toContain('live accuracy 93.0%');
  });

  it('rolls back on an accuracy drop as soon as the evidence is in, before the minimum duration', () => {
    const decision = at(2_000, stats({ liveAccuracy: 0.5 }));
    expect(decision.decision).toBe('rollback');
    expect(decision.reason).toMatch(/live accuracy 50.0% vs 90.0%/);
  });

  it('rolls back on a higher low-confidence rate', () => {
    const decision = at(20_000, stats({ lowConfidenceRate: 0.35 }));
    expect(decision).toMatchObject({ decision: 'rollback' });
    expect(decision.reason).toContain('low-confidence rate 35.0%');
  });

  it('compares with the offline accuracy when the current version has no live truth', () => {
    // Act
    const decision = decideRollout({
      plan,
      canary: stats({ liveAccuracy: 0.7 }),
      current: stats({ liveAccuracy: null, labelled: 0 }),
      currentOfflineAccuracy: 0.92,
      canaryStartedAtMs: 0,
      nowMs: 20_000,
    });

    // Assess
    expect(decision.decision).toBe('rollback');
    expect(decision.reason).toContain('offline');
  });

  it('ignores live accuracy with too few labelled results', () => {
    expect(at(20_000, stats({ liveAccuracy: 0.1, labelled: 10 })).decision).toBe('promote');
  });

  it('rolls back a canary that never gets enough results', () => {
    const decision = at(60_000, stats({ inferences: 3 }));
    expect(decision.decision).toBe('rollback');
    expect(decision.reason).toContain('only 3 of 100');
  });
});

describe('drift -> retrain', () => {
  const policy = RetrainPolicySchema.parse({ driftPsi: 0.25, sustainMs: 60_000, cooldownMs: 600_000 });
  const base = {
    policy,
    sinceMs: undefined,
    lastRetrainAtMs: undefined,
    labelledFeedbackRows: 10,
    nowMs: 1e6,
  };

  it('starts watching when drift first crosses the threshold', () => {
    expect(decideRetrain({ ...base, psi: 0.4 })).toMatchObject({ retrain: false, sinceMs: 1e6 });
  });

  it('forgets the window when drift falls back below the threshold', () => {
    expect(decideRetrain({ ...base, psi: 0.1, sinceMs: 1 })).toMatchObject({
      retrain: false,
      sinceMs: undefined,
    });
  });

  it('retrains once drift held for the window with labelled feedback', () => {
    expect(decideRetrain({ ...base, psi: 0.4, sinceMs: 1e6 - 60_000 }).retrain).toBe(true);
  });

  it('does not retrain without labelled feedback or within the cooldown', () => {
    const held = { ...base, psi: 0.4, sinceMs: 1e6 - 60_000 };
    expect(decideRetrain({ ...held, labelledFeedbackRows: 0 }).retrain).toBe(false);
    expect(decideRetrain({ ...held, lastRetrainAtMs: 1e6 - 1_000 }).retrain).toBe(false);
  });
});

describe('the canary of a regression model', () => {
  const plan = RolloutPlanSchema.parse({ minResults: 100, minDurationMs: 0, minLabelled: 20 });
  const histogram = (center: number): [number, number][] => {
    const pairs = new Map<number, number>();
    for (let i = 0; i < 400; i++) {
      const bucket = valueBucket(center + ((i % 40) - 20) * 0.25);
      pairs.set(bucket, (pairs.get(bucket) ?? 0) + 1);
    }
    return [...pairs].sort(([a], [b]) => a - b);
  };
  const stats = (extra: Partial<LiveStats>): LiveStats => ({
    inferences: 400,
    lowConfidenceRate: null,
    liveAccuracy: null,
    labelled: 0,
    ...extra,
  });
  const decide = (canary: LiveStats, current: LiveStats, currentOfflineRmse?: number) =>
    decideRollout({
      plan,
      canary,
      current,
      ...(currentOfflineRmse !== undefined ? { currentOfflineRmse } : {}),
      canaryStartedAtMs: 0,
      nowMs: 120_000,
    });

  it('rolls back a canary whose live RMSE is more than 10% above the current version, and promotes one that is not', () => {
    const current = stats({ liveRmse: 2, labelled: 100, valueHistogram: histogram(40) });
    expect(decide(stats({ liveRmse: 2.3, labelled: 50, valueHistogram: histogram(40) }), current)).toEqual({
      decision: 'rollback',
      reason: 'live RMSE 2.3 vs 2 live on the current version (+15.0% > 10.0%)',
    });
    expect(
      decide(stats({ liveRmse: 2.1, labelled: 50, valueHistogram: histogram(40) }), current).decision,
    ).toBe('promote');
    // Without live truth on the current version, its offline RMSE is the base.
    expect(decide(stats({ liveRmse: 3, labelled: 50 }), stats({}), 2).reason).toMatch(
      /offline of the current version/,
    );
  });

  it('without truth, rolls back a canary whose predictions moved from the current version', () => {
    const current = stats({ valueHistogram: histogram(40) });
    const moved = decide(stats({ valueHistogram: histogram(55) }), current);
    expect(moved.decision).toBe('rollback');
    expect(moved.reason).toMatch(/^predictions moved from the current version's: PSI [\d.]+ > 0.25/);
    expect(decide(stats({ valueHistogram: histogram(40) }), current).decision).toBe('promote');
  });
});

describe('the canary of an anomaly model', () => {
  const plan = RolloutPlanSchema.parse({ minResults: 100, minDurationMs: 0 });
  const stats = (anomalyRate: number, inferences = 1000): LiveStats => ({
    inferences,
    lowConfidenceRate: null,
    liveAccuracy: null,
    labelled: 0,
    anomalyRate,
  });
  const decide = (canary: LiveStats, current: LiveStats | undefined) =>
    decideRollout({ plan, canary, current, canaryStartedAtMs: 0, nowMs: 120_000 });

  it('rolls back a canary that flags far more results than the current version, and promotes one that does not', () => {
    expect(decide(stats(0.12), stats(0.03))).toEqual({
      decision: 'rollback',
      reason: 'anomaly rate 12.0% vs 3.0% on the current version (more than 3x)',
    });
    expect(decide(stats(0.08), stats(0.03)).decision).toBe('promote');
    // Near zero, a ratio alone would decide on a handful of results: one point is the floor.
    expect(decide(stats(0.008), stats(0.001)).decision).toBe('promote');
    // Without the current version's own results over the same minutes there is nothing to compare.
    expect(decide(stats(0.5), stats(0.01, 50)).decision).toBe('promote');
    expect(decide(stats(0.5), undefined).decision).toBe('promote');
  });

  it('rolls back a canary that opens far more events per gateway-hour than the current version', () => {
    const withEvents = (count: number, gatewayHours: number): LiveStats => ({
      ...stats(0.02),
      events: { count, gatewayHours },
    });
    // 2 gateways for an hour opened 8 events; 18 gateways on the current version opened 9.
    expect(decide(withEvents(8, 2), withEvents(9, 18))).toEqual({
      decision: 'rollback',
      reason: 'anomaly events 4.00 a gateway-hour vs 0.50 on the current version (more than 3x)',
    });
    expect(decide(withEvents(2, 2), withEvents(9, 18)).decision).toBe('promote');
    // Two events are too few to judge by, whatever the ratio.
    expect(decide(withEvents(2, 0.1), withEvents(0, 18)).decision).toBe('promote');
  });
});
