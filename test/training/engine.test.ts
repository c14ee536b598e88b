import { describe, expect, it } from 'vitest';
import { chooseEngine, MANAGED_ABOVE_BYTES } from '../../functions/training/engine.ts';

describe('choosing where the train step runs', () => {
  it('keeps small datasets on Lambda and sends big ones to the managed engine, unless the config says', () => {
    expect(chooseEngine(MANAGED_ABOVE_BYTES, { engine: 'auto' })).toBe('lambda');
    expect(chooseEngine(MANAGED_ABOVE_BYTES + 1, { engine: 'auto' })).toBe('managed');
    expect(chooseEngine(2 * 1024 * 1024, { engine: 'auto', managedAboveMb: 1 })).toBe('managed');
    expect(chooseEngine(10 ** 12, { engine: 'lambda' })).toBe('lambda');
    expect(chooseEngine(10, { engine: 'managed' })).toBe('managed');
    expect(chooseEngine(undefined, undefined)).toBe('lambda');
  });
});
