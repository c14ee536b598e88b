/**
 * The feature transform that travels with a model in its manifest. The trainer and the
 * device both call `transformRow`, so the same reading always becomes the same vector.
 */
import type { FeatureSpec, Preprocessing } from './schemas.ts';

export type RawRow = Readonly<Record<string, string | number | null | undefined>>;

const MISSING = new Set(['', 'na', 'n/a', 'nan', 'null', 'none']);

export function isMissing(value: string | number | null | undefined): boolean {
  if (value === null || value === undefined) return true;
  if (typeof value === 'number') return !Number.isFinite(value);
  return MISSING.has(value.trim().toLowerCase());
}

/**
 * The reading's number, or `fill` when it is missing or not a finite number. The common case
 * (a number, or a plain numeric string) skips the missing-value spellings entirely: this runs
 * once per feature per reading on the device's hot path.
 */
export function numericOrFill(raw: string | number | null | undefined, fill: number): number {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : fill;
  if (raw === undefined || raw === null || raw === '') return fill;
  const first = raw.charCodeAt(0);
  // Number('  ') is 0, so only strings that start with a non-space take the fast path.
  if (first > 32) {
    const value = Number(raw);
    if (Number.isFinite(value)) return value;
  }
  if (isMissing(raw)) return fill;
  const value = Number(raw);
  return Number.isFinite(value) ? value : fill;
}

/** How many vector slots a feature emits. */
export function featureWidth(spec: FeatureSpec): number {
  switch (spec.kind) {
    case 'numeric':
      return 1;
    case 'categorical':
      return spec.categories.length + 1; // + the "unknown" slot
    case 'date':
      return 4;
  }
}

export function inputWidth(features: readonly FeatureSpec[]): number {
  return features.reduce((sum, spec) => sum + featureWidth(spec), 0);
}

/** Writes one row's features into `out` at `offset` (no allocation on the hot path). */
export function transformInto(pre: Preprocessing, row: RawRow, out: Float32Array, offset = 0): void {
  let at = offset;
  for (const spec of pre.features) {
    const raw = row[spec.column];
    switch (spec.kind) {
      case 'numeric': {
        const value = numericOrFill(raw, Number.NaN);
        const x = Number.isNaN(value) ? spec.fill : spec.log1p ? Math.log1p(Math.max(0, value)) : value;
        out[at++] = (x - spec.mean) / spec.std;
        break;
      }
      case 'categorical': {
        const index = isMissing(raw) ? -1 : spec.categories.indexOf(String(raw).trim());
        for (let i = 0; i <= spec.categories.length; i++) out[at + i] = 0;
        out[at + (index < 0 ? spec.categories.length : index)] = 1;
        at += spec.categories.length + 1;
        break;
      }
      case 'date': {
        const time = isMissing(raw) ? Number.NaN : Date.parse(String(raw));
        const slots = Number.isNaN(time) ? [0, 0, 0, 0] : cyclicDate(new Date(time));
        for (const slot of slots) out[at++] = slot;
        break;
      }
    }
  }
}

export function transformRows(pre: Preprocessing, rows: readonly RawRow[]): Float32Array {
  const out = new Float32Array(rows.length * pre.inputWidth);
  rows.forEach((row, i) => {
    transformInto(pre, row, out, i * pre.inputWidth);
  });
  return out;
}

function cyclicDate(date: Date): number[] {
  const startOfYear = Date.UTC(date.getUTCFullYear(), 0, 1);
  const dayOfYear = (date.getTime() - startOfYear) / 86_400_000;
  const hour = date.getUTCHours() + date.getUTCMinutes() / 60;
  const year = (2 * Math.PI * dayOfYear) / 365.25;
  const day = (2 * Math.PI * hour) / 24;
  return [Math.sin(year), Math.cos(year), Math.sin(day), Math.cos(day)];
}
