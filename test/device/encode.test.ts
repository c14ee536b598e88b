import { describe, expect, it } from 'vitest';
import type { Inferred } from '../../device/engine.ts';
import { encodedSizeBound } from '../../device/publisher.ts';
import { encodeResults, toResult } from '../../device/sources.ts';
import type { RawRow } from '../../shared/preprocess.ts';

describe('replay result encoding', () => {
  it('writes exactly the JSON of the result objects, with the same size bounds', () => {
    // Prepare: odd things on purpose -- quotes and non-ASCII in names, a NaN confidence,
    // missing and numeric truths, a class index without a label.
    const labels = ['ok', 'über"hitzt', 'c\\2'];
    const batch: RawRow[] = [
      { label: 'ok' },
      { label: 7 },
      { label: '' },
      {},
      { label: null },
      { label: 'ünïcode "quoted"' },
    ];
    const best = Int32Array.from([0, 1, 2, 1, 0, 3]);
    const confidence = Float32Array.from([0.123456789, 1, Number.NaN, 0.5, 1e-7, 0.999999]);
    const latencyMs = 1.23456;
    const thing = 'gw-"ä":1';
    const ts = 1_764_351_234_567;

    // Act
    const { encoded, sizes } = encodeResults(
      thing,
      41,
      batch,
      { labels, best, confidence, latencyMs },
      'label',
      ts,
    );

    // Assess
    const expected = batch.map((row, i) => {
      const top = best[i] ?? 0;
      const inferred: Inferred = {
        label: labels[top] ?? String(top),
        confidence: confidence[i] ?? Number.NaN,
        version: 1,
        latencyMs,
      };
      return toResult(`${thing}:${41 + i}`, inferred, row.label, ts);
    });
    expect(encoded).toEqual(expected.map((result) => JSON.stringify(result)));
    expect(Array.from(sizes)).toEqual(expected.map(encodedSizeBound));
  });
});
