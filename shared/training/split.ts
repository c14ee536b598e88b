/**
 * A seeded, stratified train/validation/test split that never holds the rows: the class
 * counts come from the profiling pass, and each row, as it streams by, is assigned by
 * selection sampling (Knuth's algorithm S, generalised to several roles): a row of class c
 * goes to a role with probability (that role's places left) / (rows of c left). Every class
 * gets exactly its planned count in every role, each assignment is uniformly random, and
 * the same seed over the same rows in the same order gives the same split on every pass.
 *
 * Caps make very large datasets train on a seeded sample: `maxTrainRows` bounds the rows
 * per epoch, `maxEvalRows` the validation and test rows each; a capped role keeps the same
 * share of every class (stratified), and the rows beyond a cap are simply not used.
 */
import { seededRandom } from './random.ts';

export interface Split {
  train: number[];
  validation: number[];
  test: number[];
}

export interface SplitOptions {
  seed: number;
  validation?: number;
  test?: number;
  /** Rows kept for training at most (a stratified sample beyond it). */
  maxTrainRows?: number;
  /** Rows kept for validation and for test at most, each. */
  maxEvalRows?: number;
}

export type Role = 'train' | 'validation' | 'test';

/** Per class: rows, then the rows each role keeps and the rows each role skips (over its cap). */
export interface ClassPlan {
  rows: number;
  keep: Record<Role, number>;
  skip: Record<Role, number>;
}

export interface SplitPlan {
  classes: ClassPlan[];
  /** Rows kept per role, over all classes. */
  kept: Record<Role, number>;
  /** Rows per role before the caps. */
  planned: Record<Role, number>;
}

const ROLES: Role[] = ['test', 'validation', 'train'];

export function planSplit(classCounts: readonly number[], options: SplitOptions): SplitPlan {
  const shares = { test: options.test ?? 0.15, validation: options.validation ?? 0.15 };
  const planned = { train: 0, validation: 0, test: 0 };
  const sizes = classCounts.map((n) => {
    // At least one row of each class in test and validation when the class has 3 or more.
    const test = n >= 3 ? Math.max(1, Math.round(n * shares.test)) : 0;
    const validation = n >= 3 ? Math.max(1, Math.round(n * shares.validation)) : 0;
    const size = { test, validation, train: n - test - validation };
    for (const role of ROLES) planned[role] += size[role];
    return size;
  });
  const caps: Record<Role, number> = {
    train: options.maxTrainRows ?? Number.POSITIVE_INFINITY,
    validation: options.maxEvalRows ?? Number.POSITIVE_INFINITY,
    test: options.maxEvalRows ?? Number.POSITIVE_INFINITY,
  };
  const kept = { train: 0, validation: 0, test: 0 };
  const classes = sizes.map((size, c) => {
    const keep = { train: 0, validation: 0, test: 0 };
    const skip = { train: 0, validation: 0, test: 0 };
    for (const role of ROLES) {
      const rate = planned[role] > caps[role] ? caps[role] / planned[role] : 1;
      // A capped role still keeps one row of every class that has one there.
      keep[role] = rate < 1 ? Math.min(size[role], Math.max(1, Math.round(size[role] * rate))) : size[role];
      if (size[role] === 0) keep[role] = 0;
      skip[role] = size[role] - keep[role];
      kept[role] += keep[role];
    }
    return { rows: classCounts[c] ?? 0, keep, skip };
  });
  return { classes, kept, planned };
}

/** Assigns rows one by one, in stream order, to the plan's roles. */
export class StratifiedSplitter {
  private readonly left: number[][];
  private readonly random: () => number;

  constructor(
    readonly plan: SplitPlan,
    seed: number,
  ) {
    this.random = seededRandom(seed ^ 0x5eed);
    // Slots per class: keep test, keep validation, keep train, then the three skips.
    this.left = plan.classes.map((c) => [
      c.keep.test,
      c.keep.validation,
      c.keep.train,
      c.skip.test,
      c.skip.validation,
      c.skip.train,
    ]);
  }

  /** The role of the next row of class `cls`, or undefined when it is not used (over a cap). */
  assign(cls: number): Role | undefined {
    const slots = this.left[cls];
    if (!slots) throw new Error(`class ${cls} is not in the split plan`);
    let remaining = 0;
    for (const n of slots) remaining += n;
    if (remaining === 0) throw new Error(`more rows of class ${cls} than the profiling pass counted`);
    let pick = Math.floor(this.random() * remaining);
    for (let slot = 0; slot < slots.length; slot++) {
      const n = slots[slot] as number;
      if (pick < n) {
        slots[slot] = n - 1;
        return slot < 3 ? ROLES[slot] : undefined;
      }
      pick -= n;
    }
    return undefined;
  }
}

/** The split of an in-memory label vector: row indices per role, each sorted. */
export function stratifiedSplit(y: readonly number[], options: SplitOptions): Split {
  const counts: number[] = [];
  for (const cls of y) counts[cls] = (counts[cls] ?? 0) + 1;
  for (let c = 0; c < counts.length; c++) counts[c] ??= 0;
  const splitter = new StratifiedSplitter(planSplit(counts, options), options.seed);
  const split: Split = { train: [], validation: [], test: [] };
  y.forEach((cls, i) => {
    const role = splitter.assign(cls);
    if (role) split[role].push(i);
  });
  return split;
}
