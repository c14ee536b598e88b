import { describe, expect, it } from 'vitest';
import { isOnline, onlineByVersion } from '../../shared/aggregation/fleet.ts';
import { driftLevel, populationStabilityIndex } from '../../shared/aggregation/psi.ts';

describe('population stability index', () => {
  it('is zero when the live mix equals the training mix', () => {
    // Act
    const psi = populationStabilityIndex({ a: 0.5, b: 0.3, c: 0.2 }, { a: 50, b: 30, c: 20 });

    // Assess
    expect(psi).toBeCloseTo(0, 12);
  });

  it('matches the textbook sum for a shifted mix', () => {
    // Prepare
    const expected = { a: 0.5, b: 0.5 };
    const live = { a: 80, b: 20 };

    // Act
    const psi = populationStabilityIndex(expected, live) ?? Number.NaN;

    // Assess: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)
    expect(psi).toBeCloseTo(0.3 * Math.log(1.6) + -0.3 * Math.log(0.4), 12);
    expect(driftLevel(psi)).toBe('significant');
  });

  it('stays finite when a class appears that training never saw', () => {
    // Act
    const psi = populationStabilityIndex({ a: 1 }, { a: 5, unseen: 5 });

    // Assess
    expect(Number.isFinite(psi)).toBe(true);
    expect(psi).toBeGreaterThan(0.25);
  });

  it('has no value before any live result', () => {
    expect(populationStabilityIndex({ a: 1 }, {})).toBeNull();
  });

  it('grades drift as stable, moderate, significant', () => {
    expect([0.01, 0.15, 0.3].map(driftLevel)).toEqual(['stable', 'moderate', 'significant']);
  });
});

describe('fleet liveness', () => {
  it('counts a gateway online until it has been silent longer than the limit', () => {
    expect(isOnline(1000, 1000 + 120_000)).toBe(true);
    expect(isOnline(1000, 1000 + 120_001)).toBe(false);
    expect(isOnline(1000, 6000, 4000)).toBe(false);
  });

  it('groups online and total gateways per model version', () => {
    // Prepare
    const now = 1_000_000;
    const members = [
      { thing: 'a', model: 'm', version: 2, lastSeen: now },
      { thing: 'b', model: 'm', version: 2, lastSeen: now - 500_000 },
      { thing: 'c', model: 'm', version: 1, lastSeen: now - 1000 },
      { thing: 'd', model: 'm', version: null, lastSeen: now },
    ];

    // Act
    const groups = onlineByVersion(members, now);

    // Assess
    expect(groups).toEqual([
      { model: 'm', version: null, online: 1, total: 1 },
      { model: 'm', version: 1, online: 1, total: 1 },
      { model: 'm', version: 2, online: 1, total: 2 },
    ]);
  });
});
