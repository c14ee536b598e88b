import { describe, expect, it } from 'vitest';
import type { Inferred } from '../../device/model/engine.ts';
import {
  encodeResultObjects,
  ReplayEncoder,
  toResult,
  truthColumn,
} from '../../device/results/result-encoding.ts';
import { PreparedRows } from '../../device/sources/sources.ts';
import { type RawRow, transformRows } from '../../shared/preprocess.ts';
import type { Preprocessing } from '../../shared/schemas.ts';

describe('replay result encoding', () => {
  /** The results of a chunk as separate texts. */
  function texts(chunk: { bytes: Uint8Array; ends: Uint32Array; count: number }): string[] {
    return Array.from({ length: chunk.count }, (_, i) =>
      Buffer.from(chunk.bytes.subarray(i === 0 ? 0 : (chunk.ends[i - 1] ?? 0) + 1, chunk.ends[i])).toString(),
    );
  }

  it('writes exactly the JSON of the result objects, comma-separated', () => {
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
    const encoder = new ReplayEncoder(thing);
    // The file's truth column; reading p is row p mod 6, so reading 41 is row 5.
    const truths = truthColumn(batch, 'label');
    const chunk = encoder.encode(41, batch.length, { labels, best, confidence, latencyMs }, truths, ts);

    // Assess
    const expected = batch.map((_, i) => {
      const row = batch[(41 + i) % batch.length] ?? {};
      const top = best[i] ?? 0;
      const inferred: Inferred = {
        label: labels[top] ?? String(top),
        confidence: confidence[i] ?? Number.NaN,
        version: 1,
        latencyMs,
      };
      return toResult(`${thing}:${41 + i}`, inferred, row.label, ts);
    });
    expect(texts(chunk)).toEqual(expected.map((result) => JSON.stringify(result)));
    expect(
      JSON.parse(`[${Buffer.from(chunk.bytes.subarray(0, chunk.ends[chunk.count - 1])).toString()}]`),
    ).toEqual(expected);
  });

  it('prints every confidence as the rounded number prints', () => {
    // Prepare: float32 probabilities at and beside every multiple of 1e-5, and values
    // beyond [0, 1] (NaN included).
    const values: number[] = [1.5, -0.25, -1e-9, 1e-9, 123.456789, Number.NaN];
    for (let q = 0; q <= 100_000; q++) values.push(q / 1e5, q / 1e5 + 4e-6, q / 1e5 - 4e-6);
    const confidence = Float32Array.from(values);
    const n = confidence.length;

    // Act
    const chunk = new ReplayEncoder('t').encode(
      0,
      n,
      { labels: ['a'], best: new Int32Array(n), confidence, latencyMs: 0 },
      [],
      1,
    );

    // Assess
    const expected = Array.from(confidence, (p, i) =>
      JSON.stringify(
        toResult(`t:${i}`, { label: 'a', confidence: p, version: 1, latencyMs: 0 }, undefined, 1),
      ),
    );
    expect(texts(chunk)).toEqual(expected);
  });

  it('encodes result objects the same way', () => {
    // Prepare
    const results = [
      toResult('a:1', { label: 'x', confidence: 0.5, version: 1, latencyMs: 1 }, 'ü', 5),
      toResult('a:2', { label: 'y"', confidence: 0.25, version: 1, latencyMs: 2 }, undefined, 6),
    ];

    // Act
    const chunk = encodeResultObjects(results);

    // Assess
    expect(texts(chunk)).toEqual(results.map((result) => JSON.stringify(result)));
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
