import { describe, expect, it } from 'vitest';
import { formatPercentTick } from '../../infra/local/dashboard/client/format.ts';

describe('percent axis ticks', () => {
  it('read apart on a narrow axis (live accuracy near 100%) and stay whole on a wide one', () => {
    // Prepare: the ticks Chart.js puts on 98.5%-100% and on 0-100%.
    const narrow = [0.985, 0.9875, 0.99, 0.9925, 0.995, 0.9975, 1];
    const wide = [0, 0.2, 0.4, 0.6, 0.8, 1];

    // Act
    const narrowLabels = narrow.map((v) => formatPercentTick(v, 0.0025));
    const wideLabels = wide.map((v) => formatPercentTick(v, 0.2));

    // Assess
    expect(new Set(narrowLabels).size).toBe(narrow.length);
    expect(narrowLabels.slice(0, 3)).toEqual(['98.5%', '98.8%', '99.0%']);
    expect(wideLabels).toEqual(['0%', '20%', '40%', '60%', '80%', '100%']);
    expect(formatPercentTick(0.5, undefined)).toBe('50%');
  });
});
