/**
 * Dataset contract: a CSV with a header becomes typed columns and labelled rows, or an
 * InputError that says what is wrong, where, and how to fix it. Accepts `,` or `;`
 * (sniffed), quoted fields with embedded delimiters/newlines, CRLF and a UTF-8 BOM.
 * Rows keep their raw strings: the fitted preprocessing (shared/preprocess.ts) turns them
 * into vectors, exactly as the device will.
 */
import { InputError } from './errors.ts';
import { isMissing } from './preprocess.ts';

export type Delimiter = ',' | ';';
export type ColumnKind = 'numeric' | 'categorical' | 'date' | 'dropped';

export interface ColumnProfile {
  column: string;
  kind: ColumnKind;
  /** Missing cells (NA, empty, null, NaN, ...) in kept rows; imputed by the preprocessing. */
  missing: number;
  /** Cells of a numeric column that did not parse (under tolerance): imputed like missing. */
  invalid: number;
  distinct: number;
  /** Why a column was dropped. */
  reason?: string;
}

export interface Dataset {
  delimiter: Delimiter;
  header: string[];
  label: string;
  /** Class names, sorted; `y[i]` indexes this list. */
  labels: string[];
  rows: Record<string, string>[];
  /** 1-based data record number (after the header) of each kept row, for messages. */
  rowNumbers: number[];
  y: number[];
  columns: ColumnProfile[];
  /** Feature columns kept for training, in header order. */
  features: string[];
  notices: string[];
  stats: {
    rowsRead: number;
    rowsKept: number;
    droppedMissingLabel: number;
    droppedRagged: number;
    missingCells: number;
  };
}

export interface DatasetOptions {
  /** Label column; default: the last column. */
  label?: string;
  /** Feature columns to use; default: every other column that is usable. */
  features?: string[];
  minRowsPerClass?: number;
  maxBytes?: number;
  maxCategories?: number;
  /** Share of non-numeric cells a numeric column may have (they are imputed). */
  numericTolerance?: number;
  maxClasses?: number;
  /** Used in messages ("where"): the file name or S3 key. */
  source?: string;
}

export const DATASET_LIMITS = {
  maxBytes: 64 * 1024 * 1024,
  maxCategories: 32,
  numericTolerance: 0.02,
  maxClasses: 50,
  minRowsPerClass: 5,
} as const;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** Parse and validate a CSV dataset. Throws InputError for anything it cannot trust. */
export function parseDataset(input: Uint8Array | string, options: DatasetOptions = {}): Dataset {
  const where = options.source ? `${options.source}: ` : '';
  const text = decodeText(input, options.maxBytes ?? DATASET_LIMITS.maxBytes, where);
  const delimiter = sniffDelimiter(text);
  const table = parseCsv(text, delimiter);
  const headerRow = table.shift();
  if (!headerRow || headerRow.every((cell) => cell.trim() === '')) {
    throw new InputError(`${where}the file is empty: upload a CSV with a header line and data rows`);
  }
  const header = headerNames(headerRow, where);
  if (table.length === 0) {
    throw new InputError(
      `${where}the file has a header (${header.join(', ')}) but no data rows: add at least one row per class`,
    );
  }
  const label = options.label ?? (header[header.length - 1] as string);
  if (!header.includes(label)) {
    throw new InputError(
      `${where}label column '${label}' is not in the header; columns are: ${header.join(', ')} (set --label or "label" in edgeloop.json)`,
    );
  }
  const notices: string[] = [];
  const { rows, droppedRagged } = toRecords(table, header, where, notices);
  const keep = rows.map((row) => !isMissing(row.cells[label]));
  const labelled = rows.filter((_, i) => keep[i]).map((row) => row.cells);
  const rowNumbers = rows.filter((_, i) => keep[i]).map((row) => row.number);
  const droppedMissingLabel = rows.length - labelled.length;
  if (droppedMissingLabel > 0) {
    notices.push(`dropped ${droppedMissingLabel} row(s) with no value in label column '${label}'`);
  }
  for (const row of labelled) row[label] = (row[label] ?? '').trim();
  const { labels, y } = checkClasses(labelled, label, options, where);

  const wanted = options.features ?? header.filter((column) => column !== label);
  for (const column of wanted) {
    if (!header.includes(column)) {
      throw new InputError(
        `${where}feature column '${column}' is not in the header; columns are: ${header.join(', ')}`,
      );
    }
    if (column === label) throw new InputError(`${where}column '${label}' cannot be both label and feature`);
  }
  const columns = wanted.map((column) => profileColumn(column, labelled, rowNumbers, options, where));
  let missingCells = 0;
  for (const profile of columns) {
    if (profile.kind === 'dropped') {
      notices.push(`dropped column '${profile.column}': ${profile.reason}`);
      continue;
    }
    missingCells += profile.missing + profile.invalid;
    if (profile.missing > 0) {
      notices.push(`column '${profile.column}': ${profile.missing} missing value(s) imputed`);
    }
    const cap = options.maxCategories ?? DATASET_LIMITS.maxCategories;
    if (profile.kind === 'categorical' && profile.distinct > cap) {
      notices.push(
        `column '${profile.column}': ${profile.distinct} distinct values; the ${cap} most frequent get their own slot, the rest share one "other" slot`,
      );
    }
    if (profile.invalid > 0) {
      notices.push(`column '${profile.column}': ${profile.invalid} non-numeric value(s) treated as missing`);
    }
  }
  const features = columns.filter((profile) => profile.kind !== 'dropped').map((profile) => profile.column);
  if (features.length === 0) {
    throw new InputError(
      `${where}no usable feature columns besides label '${label}' (${columns.map((c) => `${c.column}: ${c.reason}`).join('; ') || 'the file has only the label column'}): add numeric or categorical columns`,
    );
  }
  return {
    delimiter,
    header,
    label,
    labels,
    rows: labelled,
    rowNumbers,
    y,
    columns,
    features,
    notices,
    stats: {
      rowsRead: table.length,
      rowsKept: labelled.length,
      droppedMissingLabel,
      droppedRagged,
      missingCells,
    },
  };
}

// ---------------------------------------------------------------------------------------
// Bytes -> text
// ---------------------------------------------------------------------------------------

function decodeText(input: Uint8Array | string, maxBytes: number, where: string): string {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  checkDatasetSize(bytes.byteLength, maxBytes, where);
  if (bytes.byteLength === 0) {
    throw new InputError(`${where}the file is empty: upload a CSV with a header line and data rows`);
  }
  const head = bytes.subarray(0, 8192);
  let control = 0;
  for (const byte of head) {
    if (byte === 0) throw notText(where, 'it contains NUL bytes');
    if (byte < 32 && byte !== 9 && byte !== 10 && byte !== 13) control++;
  }
  if (control > head.byteLength * 0.01)
    throw notText(where, `${control} control characters in the first bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw notText(where, 'it is not valid UTF-8');
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Throws the size-limit rejection when a dataset of `size` bytes is over `maxBytes`. */
export function checkDatasetSize(size: number, maxBytes: number, where = ''): void {
  if (size > maxBytes) {
    throw new InputError(
      `${where}the file is ${formatBytes(size)}, over the ${formatBytes(maxBytes)} limit: sample or split the dataset`,
    );
  }
}

function notText(where: string, why: string): InputError {
  return new InputError(
    `${where}the file is not a text CSV (${why}): export the data as UTF-8 CSV with a header line`,
  );
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

/** Picks `,` or `;`: the one whose field count is consistent over the first lines and > 1. */
export function sniffDelimiter(text: string): Delimiter {
  const sample = parseCsv(text.slice(0, 64 * 1024), ',', 20);
  const sampleSemi = parseCsv(text.slice(0, 64 * 1024), ';', 20);
  const score = (table: string[][]) => {
    const width = table[0]?.length ?? 0;
    if (width <= 1) return 0;
    const consistent = table.filter((row) => row.length === width).length;
    return consistent * 1000 + width;
  };
  return score(sampleSemi) > score(sample) ? ';' : ',';
}

/**
 * RFC 4180 parsing: quoted fields (with "" escapes, delimiters and newlines inside), CRLF or
 * LF line ends; blank lines are skipped. Stops after `maxRows` rows when given.
 */
export function parseCsv(text: string, delimiter: Delimiter, maxRows = Number.POSITIVE_INFINITY): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endRow = () => {
    row.push(field);
    field = '';
    if (!(row.length === 1 && row[0] === '')) rows.push(row);
    row = [];
  };
  while (i < text.length && rows.length < maxRows) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += ch;
      }
      i++;
      continue;
    }
    if (ch === '"' && field.trim() === '') {
      quoted = true;
      field = '';
    } else if (ch === delimiter) {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      endRow();
      if (ch === '\r' && text[i + 1] === '\n') i++;
    } else {
      field += ch;
    }
    i++;
  }
  if (rows.length < maxRows && (field !== '' || row.length > 0)) endRow();
  return rows;
}

function headerNames(header: string[], where: string): string[] {
  const cells = [...header];
  // A trailing delimiter on every line is a common export quirk: drop the empty last column.
  while (cells.length > 1 && cells[cells.length - 1]?.trim() === '') cells.pop();
  const names = cells.map((cell, i) => cell.trim() || `column_${i + 1}`);
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const first = seen.get(name);
    if (first !== undefined) {
      throw new InputError(
        `${where}column name '${name}' appears twice in the header (columns ${first + 1} and ${i + 1}): rename one`,
      );
    }
    seen.set(name, i);
  });
  return names;
}

function toRecords(table: string[][], header: string[], where: string, notices: string[]) {
  const rows: { cells: Record<string, string>; number: number }[] = [];
  const ragged: number[] = [];
  table.forEach((cells, i) => {
    if (cells.length !== header.length) {
      // A trailing delimiter (one extra empty cell) is a common export quirk: accept it.
      const trailing = cells.length === header.length + 1 && cells[cells.length - 1]?.trim() === '';
      if (!trailing) {
        ragged.push(i + 1);
        return;
      }
    }
    const record: Record<string, string> = {};
    header.forEach((name, j) => {
      record[name] = cells[j] ?? '';
    });
    rows.push({ cells: record, number: i + 1 });
  });
  if (ragged.length > Math.max(1, table.length * 0.01) || ragged.length === table.length) {
    throw new InputError(
      `${where}${ragged.length} of ${table.length} rows do not have ${header.length} fields like the header (first: data row ${ragged[0]}): check the delimiter and quoting`,
    );
  }
  if (ragged.length > 0) {
    notices.push(
      `dropped ${ragged.length} row(s) with the wrong number of fields (data row ${ragged.join(', ')})`,
    );
  }
  return { rows, droppedRagged: ragged.length };
}

// ---------------------------------------------------------------------------------------
// Classes and columns
// ---------------------------------------------------------------------------------------

function checkClasses(rows: Record<string, string>[], label: string, options: DatasetOptions, where: string) {
  const counts = new Map<string, number>();
  for (const row of rows) {
    const value = row[label] ?? '';
    counts.set(value, (counts.get(value) ?? 0) + 1);
  }
  const labels = [...counts.keys()].sort();
  if (labels.length === 0) {
    throw new InputError(`${where}label column '${label}' has no values: fill in the label for each row`);
  }
  if (labels.length === 1) {
    throw new InputError(
      `${where}label column '${label}' has only one class ('${labels[0]}') in ${rows.length} rows: a classifier needs rows of at least two classes`,
    );
  }
  const maxClasses = options.maxClasses ?? DATASET_LIMITS.maxClasses;
  if (labels.length > maxClasses) {
    throw new InputError(
      `${where}label column '${label}' has ${labels.length} distinct values (limit ${maxClasses}): edgeloop trains classifiers, so pick a categorical label column or bin the values`,
    );
  }
  const minRows = options.minRowsPerClass ?? DATASET_LIMITS.minRowsPerClass;
  const rare = labels.filter((name) => (counts.get(name) ?? 0) < minRows);
  if (rare.length > 0) {
    const list = rare.map((name) => `'${name}' (${counts.get(name)})`).join(', ');
    throw new InputError(
      `${where}too few rows per class in label column '${label}': ${list}; each class needs at least ${minRows} rows: add rows or merge/remove those classes`,
    );
  }
  const index = new Map(labels.map((name, i) => [name, i]));
  return { labels, y: rows.map((row) => index.get(row[label] ?? '') ?? 0) };
}

function profileColumn(
  column: string,
  rows: Record<string, string>[],
  rowNumbers: number[],
  options: DatasetOptions,
  where: string,
): ColumnProfile {
  const present: { value: string; line: number }[] = [];
  rows.forEach((row, i) => {
    const value = row[column] ?? '';
    if (!isMissing(value)) present.push({ value: value.trim(), line: rowNumbers[i] ?? i + 1 });
  });
  const missing = rows.length - present.length;
  const distinctValues = new Set(present.map((cell) => cell.value));
  const base = { column, missing, invalid: 0, distinct: distinctValues.size };
  if (present.length === 0) return { ...base, kind: 'dropped', reason: 'every value is missing' };
  if (distinctValues.size === 1) return { ...base, kind: 'dropped', reason: 'it has a single value' };

  const nonNumeric = present.filter((cell) => !Number.isFinite(Number(cell.value)));
  const numericShare = 1 - nonNumeric.length / present.length;
  if (numericShare >= 0.8) {
    const tolerance = options.numericTolerance ?? DATASET_LIMITS.numericTolerance;
    const example = nonNumeric[0];
    if (example && nonNumeric.length / present.length > tolerance) {
      throw new InputError(
        `${where}numeric column '${column}' has ${nonNumeric.length} non-numeric value(s) (${(100 * (1 - numericShare)).toFixed(1)}%, tolerance ${(100 * tolerance).toFixed(0)}%), e.g. '${example.value}' in data row ${example.line}: fix or blank those cells`,
      );
    }
    if (looksLikeNumericId(column, present)) {
      return { ...base, kind: 'dropped', reason: 'it looks like a row id (unique integers)' };
    }
    return { ...base, invalid: nonNumeric.length, kind: 'numeric' };
  }
  const dates = present.filter((cell) => ISO_DATE.test(cell.value) && !Number.isNaN(Date.parse(cell.value)));
  if (dates.length / present.length >= 0.95) return { ...base, kind: 'date' };
  if (present.length >= 20 && distinctValues.size / present.length > 0.9) {
    return { ...base, kind: 'dropped', reason: 'it looks like an id (almost every value is unique)' };
  }
  const cap = options.maxCategories ?? DATASET_LIMITS.maxCategories;
  if (distinctValues.size > cap) {
    const counts = new Map<string, number>();
    for (const cell of present) counts.set(cell.value, (counts.get(cell.value) ?? 0) + 1);
    const top = [...counts.values()].sort((a, b) => b - a).slice(0, cap);
    const covered = top.reduce((a, b) => a + b, 0) / present.length;
    if (covered < 0.5) {
      return {
        ...base,
        kind: 'dropped',
        reason: `too many distinct values to one-hot (${distinctValues.size}; the ${cap} most frequent cover only ${Math.round(covered * 100)}% of rows)`,
      };
    }
  }
  return { ...base, kind: 'categorical' };
}

function looksLikeNumericId(column: string, present: { value: string }[]): boolean {
  if (present.length < 20) return false;
  const values = present.map((cell) => Number(cell.value));
  if (!values.every(Number.isInteger) || new Set(values).size !== values.length) return false;
  if (/(^|[_\s-])id$|^id([_\s-]|$)|^(index|row|idx)$/i.test(column)) return true;
  // A running counter: consecutive integers in file order.
  return values.every((value, i) => i === 0 || value === (values[i - 1] as number) + 1);
}
