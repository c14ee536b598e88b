import { describe, expect, it } from 'vitest';
import { inputWidth, transformRows } from '../../shared/preprocess.ts';
import type { Preprocessing } from '../../shared/schemas.ts';

const features: Preprocessing['features'] = [
  { kind: 'numeric', column: 'temp', mean: 20, std: 5, fill: 20 },
  { kind: 'categorical', column: 'site', categories: ['north', 'south'] },
  { kind: 'date', column: 'at' },
];
const pre: Preprocessing = { label: 'y', labels: ['a', 'b'], features, inputWidth: inputWidth(features) };

describe('transformRows', () => {
  it('standardizes numbers, one-hots categories and encodes dates cyclically', () => {
    const [row] = chunk(
      transformRows(pre, [{ temp: '30', site: 'south', at: '2026-01-01T06:00:00Z' }]),
      pre.inputWidth,
    );
    expect(pre.inputWidth).toBe(1 + 3 + 4);
    expect(row?.[0]).toBeCloseTo(2);
    expect(row?.slice(1, 4)).toEqual([0, 1, 0]);
    expect(row?.[4]).toBeCloseTo(0, 2); // sin(day-of-year ~0)
    expect(row?.[6]).toBeCloseTo(1, 5); // sin(6h / 24h * 2pi)
  });

  it('fills missing numbers with the training value and sends unseen categories to the unknown slot', () => {
    const [row] = chunk(transformRows(pre, [{ temp: 'NA', site: 'east', at: '' }]), pre.inputWidth);
    expect(row?.[0]).toBe(0);
    expect(row?.slice(1, 4)).toEqual([0, 0, 1]);
    expect(row?.slice(4)).toEqual([0, 0, 0, 0]);
  });
});

describe('numeric readings', () => {
  it('read numbers and numeric text alike, and fill every missing or non-finite spelling', () => {
    // Prepare
    const numeric: Preprocessing = {
      label: 'y',
      labels: ['a', 'b'],
      features: [{ kind: 'numeric', column: 'x', mean: 0, std: 1, fill: 7 }],
      inputWidth: 1,
    };
    const readings = [
      3,
      '3',
      ' 3 ',
      '',
      '   ',
      'NA',
      'null',
      'NaN',
      'Infinity',
      '1e999',
      'abc',
      Number.NaN,
      null,
    ];

    // Act
    const values = Array.from(
      transformRows(
        numeric,
        readings.map((x) => ({ x })),
      ),
    );

    // Assess
    expect(values).toEqual([3, 3, 3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
  });
});

function chunk(values: Float32Array, width: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < values.length; i += width) rows.push(Array.from(values.slice(i, i + width)));
  return rows;
}
