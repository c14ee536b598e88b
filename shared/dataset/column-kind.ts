/**
 * What type a feature column is, decided from streaming statistics: `ColumnStatistics`
 * collects, one cell at a time and in bounded memory, everything the decision needs, and
 * `decideColumnKind` is the one place that turns those figures into numeric, categorical,
 * date or dropped (or a rejection). Distinct values are counted exactly up to
 * TRACKED_DISTINCT and estimated beyond (a k-minimum-values sketch), so a column with
 * millions of ids costs a few hundred KB, not a set of millions.
 */
import { InputError } from '../errors.ts';
import { isMissing } from '../preprocess.ts';

export type ColumnKind = 'numeric' | 'categorical' | 'date' | 'dropped';

export interface ColumnProfile {
  column: string;
  kind: ColumnKind;
  /** Missing cells (NA, empty, null, NaN, ...) in kept rows; imputed by the preprocessing. */
  missing: number;
  /** Cells of a numeric column that are not numbers (under tolerance): imputed like missing. */
  invalid: number;
  /** Values of a categorical column that are numbers (fewer than a fifth of them). */
  numberLike?: number;
  /** The first invalid (numeric) or number-like (categorical) cells, with where they are. */
  examples?: CellExample[];
  /** Distinct present values (estimated above TRACKED_DISTINCT, see `distinctExact`). */
  distinct: number;
  distinctExact?: boolean;
  /** Why a column was dropped. */
  reason?: string;
}

export interface ColumnKindOptions {
  maxCategories: number;
  /**
   * Share of non-numeric cells a column of numbers may have: they count as missing (imputed).
   * Above it the dataset is rejected, unless the column's kind is declared.
   */
  numericTolerance: number;
  /** Kinds the user declared (`"columns"` in edgeloop.json): no guessing for these. */
  declared?: Readonly<Record<string, DeclaredColumnKind>>;
}

export type DeclaredColumnKind = 'numeric' | 'categorical' | 'date';

/** A cell and where it is ("data row 8"), for messages. */
export interface CellExample {
  value: string;
  place: string;
}

/** Non-numeric cells kept as examples for a column's notice or rejection. */
const EXAMPLES = 3;
/** Below this share of numbers, a text column's few number-like values are category names. */
const NUMBERS_IN_TEXT = 0.2;

/** Distinct values counted exactly per column; beyond, the sketch estimates. */
export const TRACKED_DISTINCT = 10_000;
const SKETCH_K = 1024;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** Running figures of one column over the kept rows. */
export class ColumnStatistics {
  present = 0;
  missing = 0;
  nonNumeric = 0;
  /** The first non-numeric values and where they were ("data row 8"). */
  readonly nonNumericExamples: CellExample[] = [];
  /** The first values that are numbers, and where (named when a text column has some). */
  readonly numericExamples: CellExample[] = [];
  /** Present values that are ISO dates. */
  dates = 0;
  allIntegers = true;
  /** Every present value is the one before + 1 (a running counter). */
  consecutive = true;
  private previous = Number.NaN;
  /** Counts per value while there are at most TRACKED_DISTINCT of them (then: known values only). */
  readonly counts = new Map<string, number>();
  private sketch: DistinctSketch | undefined;

  constructor(readonly column: string) {}

  add(raw: string, place: () => string): void {
    if (isMissing(raw)) {
      this.missing++;
      return;
    }
    const value = raw.trim();
    this.present++;
    const count = this.counts.get(value);
    if (count !== undefined) this.counts.set(value, count + 1);
    else if (!this.sketch && this.counts.size < TRACKED_DISTINCT) this.counts.set(value, 1);
    else {
      if (!this.sketch) {
        // KMV sees each distinct value once, so seeding it with the tracked keys is exact.
        this.sketch = new DistinctSketch();
        for (const key of this.counts.keys()) this.sketch.add(key);
      }
      this.sketch.add(value);
    }
    const number = Number(value);
    if (Number.isFinite(number)) {
      if (this.allIntegers && !Number.isInteger(number)) this.allIntegers = false;
      if (this.consecutive && this.present > 1 && number !== this.previous + 1) this.consecutive = false;
      this.previous = number;
      if (this.numericExamples.length < EXAMPLES) this.numericExamples.push({ value, place: place() });
      return;
    }
    this.nonNumeric++;
    this.allIntegers = false;
    this.consecutive = false;
    if (this.nonNumericExamples.length < EXAMPLES) this.nonNumericExamples.push({ value, place: place() });
    if (ISO_DATE.test(value) && !Number.isNaN(Date.parse(value))) this.dates++;
  }

  get distinctExact(): boolean {
    return this.sketch === undefined;
  }

  get distinct(): number {
    return this.sketch ? Math.max(this.counts.size, this.sketch.estimate()) : this.counts.size;
  }

  /** Share of present values the `n` most frequent tracked values cover. */
  topCoverage(n: number): number {
    const top = [...this.counts.values()].sort((a, b) => b - a).slice(0, n);
    return this.present ? top.reduce((a, b) => a + b, 0) / this.present : 0;
  }
}

/**
 * The column's kind from its statistics: dropped when empty, constant or id-like; numeric
 * when at most `numericTolerance` of its values are not numbers (those count as missing);
 * rejected when numbers and text are mixed beyond that, so numbers never become categories
 * by accident; dropped when 95% are ISO dates (a timestamp), unless declared a date; else
 * categorical, unless too many distinct values to one-hot. A declared kind
 * (`options.declared`) replaces the guess.
 */
export function decideColumnKind(
  stats: ColumnStatistics,
  options: ColumnKindOptions,
  where: string,
): ColumnProfile {
  const { column, present, missing } = stats;
  const distinct = stats.distinct;
  const base = {
    column,
    missing,
    invalid: 0,
    distinct,
    ...(stats.distinctExact ? {} : { distinctExact: false }),
  };
  if (present === 0) return { ...base, kind: 'dropped', reason: 'every value is missing' };
  if (distinct === 1) return { ...base, kind: 'dropped', reason: 'it has a single value' };

  const declared = options.declared?.[column];
  const numbers = present - stats.nonNumeric;
  const asNumeric = (): ColumnProfile => ({
    ...base,
    kind: 'numeric',
    invalid: stats.nonNumeric,
    ...(stats.nonNumeric > 0 ? { examples: [...stats.nonNumericExamples] } : {}),
  });
  if (declared === 'categorical') return categoricalOrDropped(stats, base, options, true);
  if (declared === 'numeric') {
    if (numbers === 0) {
      throw new InputError(
        `${where}column '${column}' is declared numeric in "columns" but none of its ${present} values is a number (${describeExamples(stats.nonNumericExamples)}): fix the data or the declaration`,
      );
    }
    return asNumeric();
  }
  const dates = stats.dates / present >= 0.95;
  if (declared === 'date') {
    if (!dates)
      throw new InputError(
        `${where}column '${column}' is declared a date in "columns" but only ${describeShare(stats.dates, present)} are ISO dates (${describeExamples(stats.nonNumericExamples.length ? stats.nonNumericExamples : stats.numericExamples)}): fix the data or the declaration`,
      );
    return { ...base, kind: 'date' };
  }
  const textShare = stats.nonNumeric / present;
  if (numbers > 0 && textShare <= options.numericTolerance) {
    if (looksLikeNumericId(stats)) {
      return { ...base, kind: 'dropped', reason: 'it looks like a row id (unique integers)' };
    }
    return asNumeric();
  }
  // A timestamp says when a reading was taken, and a gateway's readings come at other times:
  // a model that learned the dates of its training rows answers new readings by their date.
  if (dates)
    return {
      ...base,
      kind: 'dropped',
      reason: `it is a timestamp, and a time is never a feature by default; to learn from its calendar (day of year, time of day) declare it in edgeloop.json as "columns": {"${column}": "date"}`,
    };
  if (numbers / present >= NUMBERS_IN_TEXT) {
    throw new InputError(
      `${where}column '${column}' mixes numbers and text: ${describeShare(stats.nonNumeric, present)} are not numbers (${describeExamples(stats.nonNumericExamples)}), over the ${percent(options.numericTolerance)} that may count as missing: clean those cells, or if the column is a category declare it in edgeloop.json as "columns": {"${column}": "categorical"}`,
    );
  }
  return categoricalOrDropped(stats, base, options, false);
}

/** "3 of 40 values (7.5%)". */
export function describeShare(count: number, of: number): string {
  return `${count} of ${of} values (${percent(count / of, 1)})`;
}

/** "e.g. 'abc' (data row 2), 'n.a.' (data row 7)". */
export function describeExamples(examples: readonly CellExample[]): string {
  return `e.g. ${examples.map((e) => `'${e.value}' (${e.place})`).join(', ')}`;
}

function percent(share: number, digits = 0): string {
  return `${(100 * share).toFixed(digits)}%`;
}

function categoricalOrDropped(
  stats: ColumnStatistics,
  base: Omit<ColumnProfile, 'kind'>,
  options: ColumnKindOptions,
  declared: boolean,
): ColumnProfile {
  const { present, distinct } = stats;
  if (!declared && present >= 20 && distinct / present > 0.9) {
    return { ...base, kind: 'dropped', reason: 'it looks like an id (almost every value is unique)' };
  }
  const cap = options.maxCategories;
  if (!declared && distinct > cap) {
    const covered = stats.topCoverage(cap);
    if (covered < 0.5) {
      return {
        ...base,
        kind: 'dropped',
        reason: `too many distinct values to one-hot (${distinct}; the ${cap} most frequent cover only ${Math.round(covered * 100)}% of rows)`,
      };
    }
  }
  const numbers = present - stats.nonNumeric;
  return declared || numbers === 0
    ? { ...base, kind: 'categorical' }
    : { ...base, kind: 'categorical', numberLike: numbers, examples: [...stats.numericExamples] };
}

function looksLikeNumericId(stats: ColumnStatistics): boolean {
  if (stats.present < 20 || !stats.allIntegers) return false;
  const unique = stats.distinctExact
    ? stats.distinct === stats.present
    : stats.distinct >= 0.98 * stats.present;
  if (!unique) return false;
  if (/(^|[_\s-])id$|^id([_\s-]|$)|^(index|row|idx)$/i.test(stats.column)) return true;
  return stats.consecutive;
}

/**
 * A k-minimum-values distinct-count sketch: keeps the SKETCH_K smallest 52-bit hashes of the
 * values seen; the k-th smallest, as a share of the hash space, estimates k / distinct
 * (about 3% error at k = 1024).
 */
class DistinctSketch {
  private hashes = new Set<number>();
  private threshold = 1;

  add(value: string): void {
    const h = hash52(value);
    if (h >= this.threshold || this.hashes.has(h)) return;
    this.hashes.add(h);
    if (this.hashes.size >= 2 * SKETCH_K) this.compact();
  }

  estimate(): number {
    this.compact();
    if (this.hashes.size < SKETCH_K) return this.hashes.size;
    return Math.round((SKETCH_K - 1) / this.threshold);
  }

  private compact(): void {
    if (this.hashes.size <= SKETCH_K) return;
    const kept = [...this.hashes].sort((a, b) => a - b).slice(0, SKETCH_K);
    this.hashes = new Set(kept);
    this.threshold = kept[kept.length - 1] ?? 1;
  }
}

/** Two FNV-1a lanes (different offset bases), each through murmur3's finalizer, as 52 bits in [0, 1). */
function hash52(text: string): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    a = Math.imul(a ^ ch, 0x01000193);
    b = Math.imul(b ^ ch, 0x01000193) ^ (b >>> 15);
  }
  return ((fmix32(a) & 0xfffff) * 4294967296 + fmix32(b)) / 2 ** 52;
}

function fmix32(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
