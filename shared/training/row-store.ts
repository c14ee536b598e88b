/**
 * The rows a run trains on, held compactly in typed arrays (8 bytes per numeric or date
 * cell, 4 per categorical cell, 4 per label: a class index or a regression target) instead of as objects of strings, so a buffer
 * of a million rows of telemetry is about 40 MB. `rowAt` gives a row back in the form
 * `transformInto` (shared/preprocess.ts) takes, so training vectors come from the same
 * transform the device runs.
 */
import type { ColumnProfile } from '../dataset/column-kind.ts';
import { isMissing } from '../preprocess.ts';

/** Distinct values of one categorical column the store can name; the rest read as unknown. */
const DICTIONARY_LIMIT = 65_536;

type StoredColumn =
  | { kind: 'numeric'; column: string; at: number; values: Float64Array }
  | {
      kind: 'categorical';
      column: string;
      at: number;
      codes: Int32Array;
      dictionary: Map<string, number>;
      names: string[];
    }
  | { kind: 'date'; column: string; at: number; values: Float64Array };

export type MutableRow = Record<string, string | number | undefined>;

export class RowStore {
  private readonly columns: StoredColumn[];
  private readonly labels: Float32Array;
  size = 0;

  /** Bytes one row takes in a store of these columns. */
  static bytesPerRow(columns: readonly ColumnProfile[]): number {
    return columns.reduce((sum, c) => sum + (c.kind === 'categorical' ? 4 : c.kind === 'dropped' ? 0 : 8), 4);
  }

  constructor(
    columns: readonly ColumnProfile[],
    header: readonly string[],
    readonly capacity: number,
  ) {
    this.labels = new Float32Array(capacity);
    this.columns = columns.flatMap((profile): StoredColumn[] => {
      const at = header.indexOf(profile.column);
      const { column } = profile;
      switch (profile.kind) {
        case 'numeric':
          return [{ kind: 'numeric', column, at, values: new Float64Array(capacity) }];
        case 'date':
          return [{ kind: 'date', column, at, values: new Float64Array(capacity) }];
        case 'categorical':
          return [
            {
              kind: 'categorical',
              column,
              at,
              codes: new Int32Array(capacity),
              dictionary: new Map(),
              names: [],
            },
          ];
        default:
          return [];
      }
    });
  }

  /** Appends a row (cells in header order) of class `cls` (or target value `cls`). */
  push(cells: readonly string[], cls: number): void {
    if (this.size >= this.capacity) throw new Error(`row store is full (${this.capacity} rows)`);
    const i = this.size++;
    this.labels[i] = cls;
    for (const column of this.columns) {
      const raw = cells[column.at];
      const missing = isMissing(raw);
      if (column.kind === 'numeric') {
        column.values[i] = missing ? Number.NaN : Number(raw);
      } else if (column.kind === 'date') {
        column.values[i] = missing ? Number.NaN : Date.parse(String(raw));
      } else {
        const value = missing ? undefined : String(raw).trim();
        let code = value === undefined ? -1 : column.dictionary.get(value);
        if (code === undefined) {
          code = column.names.length < DICTIONARY_LIMIT ? column.names.length : -1;
          if (code >= 0) {
            column.dictionary.set(value as string, code);
            column.names.push(value as string);
          }
        }
        column.codes[i] = code;
      }
    }
  }

  labelAt(i: number): number {
    return this.labels[i] ?? 0;
  }

  /** Row `i` written into `row` (reused between calls): numbers, category names, ISO dates. */
  rowAt(i: number, row: MutableRow): MutableRow {
    for (const column of this.columns) {
      if (column.kind === 'numeric') {
        row[column.column] = column.values[i];
      } else if (column.kind === 'date') {
        const ms = column.values[i] ?? Number.NaN;
        row[column.column] = Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
      } else {
        const code = column.codes[i] ?? -1;
        row[column.column] = code < 0 ? undefined : column.names[code];
      }
    }
    return row;
  }
}
