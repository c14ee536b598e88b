/**
 * Novelty for classifiers: every classifier release carries a score of how far a reading is
 * from its training inputs, with a threshold at a quantile of held-out rows' scores; the
 * gateway answers a reading over it `unknown`, with the class it would have been, and the
 * fleet counts it as such (never as right or wrong).
 */
import { describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { loadModelFromBytes, probationFailure } from '../../device/model/model.ts';
import { scoreReadings } from '../../device/score.ts';
import { addResult, countedClasses, emptyCell } from '../../shared/aggregation/aggregate.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import { DEMO_LABEL, generateDemoDataset } from '../../shared/demo-dataset.ts';
import { noveltyScore, UNKNOWN_CLASS } from '../../shared/novelty.ts';
import { transformRows } from '../../shared/preprocess.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { fitNovelty, unknownRate } from '../../shared/training/novelty.ts';
import { seededRandom } from '../../shared/training/random.ts';
import { trainFromCsv } from '../../shared/training/train.ts';

/** n points of two correlated inputs (b follows a) with a little noise, and a third free one. */
function correlated(n: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  const x = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = (random() - 0.5) * 4;
    x[i * 3] = a;
    x[i * 3 + 1] = 2 * a + (random() - 0.5) * 0.1;
    x[i * 3 + 2] = (random() - 0.5) * 2;
  }
  return x;
}

describe('the novelty score', () => {
  it('scores training inputs about 1, and a broken correlation or a far reading over the threshold', () => {
    // Act
    const spec = fitNovelty(correlated(2000, 1), correlated(1000, 2), 3, 0.999);
    const score = (values: number[]) => noveltyScore(Float32Array.from(values), 3, 0, spec);
    const train = correlated(2000, 3);
    const mean =
      Array.from({ length: 2000 }, (_, i) => noveltyScore(train, 3, i, spec)).reduce((a, b) => a + b) / 2000;

    // Assess
    expect(mean).toBeGreaterThan(0.7);
    expect(mean).toBeLessThan(1.3);
    expect(unknownRate(correlated(5000, 4), 3, spec)).toBeLessThan(0.005);
    expect(score([1, 2, 0])).toBeLessThan(spec.threshold); // on the line, in range
    expect(score([1, -2, 0])).toBeGreaterThan(spec.threshold); // each value in range, their relation broken
    expect(score([40, 80, 0])).toBeGreaterThan(spec.threshold); // on the line, far beyond anything seen
  });
});

describe('a classifier release', () => {
  it("answers a reading far from its training data 'unknown' with the class it would have been, as the trainer scores it", async () => {
    // Prepare
    const csv = generateDemoDataset({ rows: 800 });
    const outcome = await trainFromCsv(csv, TrainingConfigSchema.parse({ label: DEMO_LABEL, epochs: 20 }));
    const manifest = releasedManifest(outcome);
    // Each backtest serves (and then disposes) a model of its own, as a gateway would.
    const load = (m = manifest) =>
      loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, m);
    const ordinary = parseCsvReadings(generateDemoDataset({ rows: 200, seed: 9 }), 'ordinary: ').rows;
    const strange = ordinary.slice(0, 20).map((row) => ({ ...row, temperature_c: '400', current_a: '-50' }));

    // Act
    const known = await scoreReadings(await load(), ordinary);
    const unknown = await scoreReadings(await load(), strange);
    const model = await load();

    // Assess: the release carries the score, and the trainer reported its rate on test rows.
    const novelty = manifest.novelty;
    expect(novelty?.quantile).toBe(0.999);
    expect(outcome.metrics.novelty?.unknownRate).toBeLessThan(0.02);
    expect(outcome.notices.some((n) => n.startsWith('novelty: '))).toBe(true);
    expect(probationFailure(model)).toBeUndefined();
    // Ordinary readings get their class; the strange ones are unknown, with the would-be class and score.
    expect(known.results.filter((r) => r.label === UNKNOWN_CLASS).length).toBeLessThanOrEqual(4);
    const x = transformRows(manifest.preprocessing, strange);
    unknown.results.forEach((result, i) => {
      expect(result.label).toBe(UNKNOWN_CLASS);
      expect(manifest.preprocessing.labels).toContain(result.wouldBe);
      expect(result.novelty).toBeCloseTo(
        noveltyScore(x, manifest.preprocessing.inputWidth, i, novelty ?? fail()),
        3,
      );
      expect(result.novelty).toBeGreaterThan(novelty?.threshold ?? Number.POSITIVE_INFINITY);
    });
    // A tampered golden score fails probation: the gateway would not serve it.
    const tampered = {
      ...manifest,
      novelty: { ...(novelty ?? fail()), golden: novelty?.golden.map((s) => s * 2) ?? [] },
    };
    const other = await load(tampered);
    expect(probationFailure(other)).toMatch(/^golden row 0 novelty score: got [\d.]+, expected [\d.]+/);
    // The fleet counts unknown as a class of this version and never as right or wrong.
    expect(countedClasses(manifest)).toContain(UNKNOWN_CLASS);
    const cell = emptyCell();
    for (const result of unknown.results) addResult(cell, { ...result, truth: 'normal' }, 0.6);
    expect(cell.classes[UNKNOWN_CLASS]).toBe(strange.length);
    expect(cell.labelled).toBe(0);
    // Turned off in the config: no score, every reading gets a class.
    const off = await trainFromCsv(
      csv,
      TrainingConfigSchema.parse({ label: DEMO_LABEL, epochs: 5, novelty: false }),
    );
    expect(off.novelty).toBeUndefined();
    model.dispose();
    other.dispose();
  });
});

function fail(): never {
  throw new Error('the release has no novelty score');
}
