/** A seeded, stratified train/validation/test split: every class appears in each part. */
import { seededRandom, shuffleInPlace } from './random.ts';

export interface Split {
  train: number[];
  validation: number[];
  test: number[];
}

export interface SplitOptions {
  seed: number;
  validation?: number;
  test?: number;
}

export function stratifiedSplit(y: readonly number[], options: SplitOptions): Split {
  const random = seededRandom(options.seed ^ 0x5eed);
  const byClass = new Map<number, number[]>();
  y.forEach((cls, i) => {
    const list = byClass.get(cls) ?? [];
    list.push(i);
    byClass.set(cls, list);
  });
  const split: Split = { train: [], validation: [], test: [] };
  for (const cls of [...byClass.keys()].sort((a, b) => a - b)) {
    const indices = shuffleInPlace(byClass.get(cls) ?? [], random);
    const n = indices.length;
    // At least one row of each class in test and validation when the class has 3 or more.
    const nTest = n >= 3 ? Math.max(1, Math.round(n * (options.test ?? 0.15))) : 0;
    const nVal = n >= 3 ? Math.max(1, Math.round(n * (options.validation ?? 0.15))) : 0;
    split.test.push(...indices.slice(0, nTest));
    split.validation.push(...indices.slice(nTest, nTest + nVal));
    split.train.push(...indices.slice(nTest + nVal));
  }
  for (const part of [split.train, split.validation, split.test]) part.sort((a, b) => a - b);
  return split;
}
