import { describe, expect, it } from 'vitest';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { gateDecision } from '../../shared/training/gate.ts';

const metrics = {
  macroF1: 0.72,
  perClass: {
    normal: { precision: 0.9, recall: 0.95, support: 40 },
    fault: { precision: 0.6, recall: 0.55, support: 9 },
  },
};

describe('the quality gate floors', () => {
  it('passes a first version that meets the macro-F1 and recall floors', () => {
    // Act
    const decision = gateDecision({ accuracy: 0.9, margin: 0.02, metrics, minMacroF1: 0.7, minRecall: 0.5 });

    // Assess
    expect(decision).toEqual({
      passed: true,
      reason: 'first version of this model: nothing to compare with',
    });
  });

  it('rejects a first version under the macro-F1 floor, naming both figures', () => {
    // Act
    const decision = gateDecision({ accuracy: 0.9, margin: 0.02, metrics, minMacroF1: 0.75 });

    // Assess
    expect(decision.passed).toBe(false);
    expect(decision.reason).toBe("below the config's floor: macro-F1 0.7200 < gateMinMacroF1 0.75");
  });

  it('rejects a version whose rare class misses the recall every class needs', () => {
    // Act
    const decision = gateDecision({
      accuracy: 0.95,
      baselineAccuracy: 0.9,
      margin: 0.02,
      metrics,
      minRecall: 0.6,
    });

    // Assess
    expect(decision.passed).toBe(false);
    expect(decision.reason).toBe(
      "below the config's floor: recall of class 'fault' 0.5500 < gateMinRecall 0.6",
    );
  });

  it('checks per-class recall floors only for the classes named', () => {
    // Act
    const lenient = gateDecision({ accuracy: 0.9, margin: 0.02, metrics, minRecall: { normal: 0.9 } });
    const strict = gateDecision({ accuracy: 0.9, margin: 0.02, metrics, minRecall: { fault: 0.8 } });

    // Assess
    expect(lenient.passed).toBe(true);
    expect(strict.reason).toMatch(/recall of class 'fault' 0\.5500 < gateMinRecall 0\.8/);
  });

  it('still compares with the current release once the floors are met', () => {
    // Act
    const decision = gateDecision({
      accuracy: 0.8,
      baselineAccuracy: 0.9,
      margin: 0.02,
      metrics,
      minMacroF1: 0.5,
    });

    // Assess
    expect(decision.passed).toBe(false);
    expect(decision.reason).toMatch(/^worse than the current release/);
  });

  it('reads the floors from the config, as one recall or per class', () => {
    // Act
    const one = TrainingConfigSchema.parse({ gateMinMacroF1: 0.7, gateMinRecall: 0.5 });
    const each = TrainingConfigSchema.parse({ gateMinRecall: { fault: 0.8 } });
    const bad = TrainingConfigSchema.safeParse({ gateMinRecall: 1.5 });

    // Assess
    expect(one).toMatchObject({ gateMinMacroF1: 0.7, gateMinRecall: 0.5 });
    expect(each.gateMinRecall).toEqual({ fault: 0.8 });
    expect(bad.success).toBe(false);
  });
});
