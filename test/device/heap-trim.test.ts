import { describe, expect, it } from 'vitest';
import { GATEWAY_NODE_FLAGS } from '../../device/packaging/node-flags.ts';
import { HeapTrim, heapTrimDue } from '../../device/platform/heap-trim.ts';

const options = { budgetMB: 100, minIntervalMs: 10_000, checkEveryMs: 1_000 };

describe('heap trim: a full collection once RSS passes a budget', () => {
  it('collects only over the budget, at most once per interval', () => {
    let rss = 90;
    let collected = 0;
    const trim = new HeapTrim(
      options,
      () => collected++,
      () => rss,
    );
    expect(trim.check(0)).toBe(false); // under the budget
    rss = 130;
    expect(trim.check(1_000)).toBe(true);
    expect(trim.check(5_000)).toBe(false); // too soon after the last one
    expect(trim.check(11_000)).toBe(true);
    rss = 95;
    expect(trim.check(30_000)).toBe(false);
    expect(collected).toBe(2);
    expect(trim.collections).toBe(2);
    expect(heapTrimDue(101, 10_000, 0, options)).toBe(true);
    expect(heapTrimDue(100, 10_000, 0, options)).toBe(false);
  });

  it('does nothing where node cannot collect on request, and the package asks node to allow it', () => {
    const trim = new HeapTrim(options, undefined, () => 1_000);
    expect(trim.available).toBe(false);
    expect(trim.check(0)).toBe(false);
    trim.start();
    trim.stop();
    expect(GATEWAY_NODE_FLAGS).toContain('--expose-gc');
  });
});
