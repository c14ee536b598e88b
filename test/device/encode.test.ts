import { describe, expect, it } from 'vitest';
import type { Inferred } from '../../device/engine.ts';
import { encodedSizeBound } from '../../device/publisher.ts';
import { encodeResults, PreparedRows, toResult } from '../../device/sources.ts';
import { type RawRow, transformRows } from '../../shared/preprocess.ts';
import type { Preprocessing } from '../../shared/schemas.ts';

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

describe('prepared replay rows', () => {
  const numeric = (column: string, mean: number) => ({
    kind: 'numeric' as const,
    column,
    mean,
    std: 2,
    fill: 0,
  });
  const first: Preprocessing = {
    label: 'y',
    labels: ['a', 'b'],
    features: [numeric('u', 0), numeric('v', 1)],
    inputWidth: 2,
  };
  const second: Preprocessing = { ...first, features: [numeric('v', 0), numeric('u', 3)] };
  const rows: RawRow[] = [
    { u: 1, v: '2' },
    { u: 'na', v: 4 },
    { u: 5, v: ' 6' },
  ];
  const expected = (pre: Preprocessing, from: number, n: number) =>
    Array.from(
      transformRows(
        pre,
        Array.from({ length: n }, (_, i) => rows[(from + i) % rows.length] as RawRow),
      ),
    );

  it('gives the very vectors the transform gives, across the end of the file and longer than it', () => {
    // Prepare
    const prepared = new PreparedRows(rows);
    const model = {};

    // Act
    const inside = Array.from(prepared.input(model, first, 4, 2) ?? []);
    const wrapping = Array.from(prepared.input(model, first, 5, 2) ?? []);
    const longer = Array.from(prepared.input(model, first, 2, 7) ?? []);

    // Assess
    expect(inside).toEqual(expected(first, 4, 2));
    expect(wrapping).toEqual(expected(first, 5, 2));
    expect(longer).toEqual(expected(first, 2, 7));
  });

  it('transforms again for a new serving model', () => {
    // Prepare
    const prepared = new PreparedRows(rows);
    prepared.input({}, first, 0, 3);

    // Act
    const swapped = Array.from(prepared.input({}, second, 0, 3) ?? []);

    // Assess
    expect(swapped).toEqual(expected(second, 0, 3));
  });
});
