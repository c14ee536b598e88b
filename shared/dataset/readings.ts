/**
 * Readings as a gateway sees them, read by the same rules as a training dataset: the CSV
 * reader of shared/dataset/csv.ts (`,` or `;` sniffed, RFC 4180 quoting, cells trimmed),
 * the header rules of the profiler (trimmed names, no duplicates), and the missing-value
 * spellings of shared/preprocess.ts. A reading that lacks more of the model's features than
 * the model allows is refused with its reason, never answered with the training fills.
 */
import { InputError } from '../errors.ts';
import { isMissing, type RawRow } from '../preprocess.ts';
import type { FeatureSpec, Preprocessing, RefusalReason } from '../schemas.ts';
import { eachCsvRecord, parseCsv, sniffDelimiter } from './csv.ts';
import { headerNames } from './profile.ts';
import { ReadingTable } from './reading-table.ts';

export type Reading = Record<string, string | number>;

/**
 * A CSV cell as a number when the number prints back as exactly the same text ("21.5",
 * "-3", not "21.50" or "nan"), else the text. Every feature transform and the truth label
 * see the same value either way (String(21.5) === "21.5"); numeric features just skip
 * re-parsing the text on every replay loop.
 */
export function exactNumber(text: string): string | number {
  const value = Number(text);
  return text !== '' && Number.isFinite(value) && String(value) === text ? value : text;
}

/** A CSV text of readings (a replay file, a historian export): header and typed rows. */
export function parseCsvReadings(text: string, where: string): { header: string[]; rows: Reading[] } {
  const body = text.replace(/^\uFEFF/, '');
  let table: string[][];
  try {
    table = parseCsv(body, sniffDelimiter(body));
  } catch (error) {
    throw unparsable(error, where);
  }
  const [first, ...records] = table;
  if (!first) return { header: [], rows: [] };
  const header = headerNames(first, where);
  return { header, rows: records.map((cells) => readingOf(header, cells)) };
}

/**
 * A CSV file of readings as a ReadingTable, by the same rules as parseCsvReadings, one record
 * at a time (a replay file of any size costs its typed columns, not an object per reading);
 * undefined when it has no header.
 */
export function readReadingTable(data: Buffer, where: string): ReadingTable | undefined {
  let table: ReadingTable | undefined;
  try {
    eachCsvRecord(data, sniffDelimiter(data), (cells) => {
      if (table) table.add(cells);
      else table = new ReadingTable(headerNames(cells, where));
    });
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw unparsable(error, where);
  }
  return table;
}

function unparsable(error: unknown, where: string): InputError {
  return new InputError(
    `${where}the CSV cannot be parsed (${(error as Error).message}): check the quoting near that line`,
  );
}

/** One record's cells under `header` as a reading (numbers that print back exactly are numbers). */
export function readingOf(header: readonly string[], cells: readonly string[]): Reading {
  const reading: Reading = {};
  // A short record lacks its last columns: they stay absent (missing), not empty strings.
  const width = Math.min(cells.length, header.length);
  for (let i = 0; i < width; i++) reading[header[i] as string] = exactNumber(cells[i] as string);
  return reading;
}

/**
 * One reading from JSON: a flat object of strings, numbers or nulls with at least one field.
 * Names are trimmed as a dataset header's are.
 */
export function parseReading(value: unknown): RawRow {
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new InputError('a reading is a JSON object such as {"temp": 21.5, "vibration": 0.2}');
  const entries = Object.entries(value);
  if (entries.length === 0)
    throw new InputError('the reading has no fields: send the sensor values, e.g. {"temp": 21.5}');
  let reading: Record<string, string | number | null> | undefined;
  for (const [key, inner] of entries) {
    if (inner !== null && typeof inner !== 'string' && typeof inner !== 'number')
      throw new InputError(`field '${key}' must be a string, a number or null`);
    const name = key.trim();
    if (name !== key) reading ??= {};
  }
  if (!reading) return value as RawRow;
  for (const [key, inner] of entries) reading[key.trim()] = inner as string | number | null;
  return reading;
}

/** Whether a reading's value gives the feature something to work with (not a training fill). */
function present(spec: FeatureSpec, raw: RawRow[string]): boolean {
  if (isMissing(raw)) return false;
  if (spec.kind === 'numeric') return Number.isFinite(typeof raw === 'number' ? raw : Number(raw));
  if (spec.kind === 'date') return !Number.isNaN(Date.parse(String(raw)));
  return true;
}

/** The feature columns the reading lacks (absent, a missing-value spelling, or unreadable). */
export function missingFeatures(pre: Preprocessing, row: RawRow): string[] {
  const missing: string[] = [];
  for (const spec of pre.features) if (!present(spec, row[spec.column])) missing.push(spec.column);
  return missing;
}

export interface Refusal {
  reason: RefusalReason;
  message: string;
}

/**
 * Why the model may not answer this reading, or undefined when it may: it lacks more of the
 * model's features than `maxMissing` allows. Extra columns are fine.
 */
export function readingRefusal(pre: Preprocessing, row: RawRow, maxMissing = 0): Refusal | undefined {
  // The common case costs one pass and no array: every feature present.
  let count = 0;
  for (const spec of pre.features) if (!present(spec, row[spec.column])) count++;
  if (count <= maxMissing) return undefined;
  const missing = missingFeatures(pre, row);
  const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, … (${missing.length} in all)` : '');
  return {
    reason: 'missing-features',
    message:
      `the reading lacks ${count} of the model's ${pre.features.length} features (${shown}), ` +
      `more than the ${maxMissing} the model allows: send those columns (names as in the training ` +
      `header), or raise maxMissingFeatures in the model's config`,
  };
}
