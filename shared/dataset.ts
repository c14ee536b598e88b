/**
 * Dataset contract: records under a header become typed columns and labelled rows, or an
 * InputError that says what is wrong, where, and how to fix it. CSV accepts `,` or `;`
 * (sniffed), quoted fields with embedded delimiters/newlines, CRLF and a UTF-8 BOM; JSON
 * Lines and Parquet parts are read by the same profiler (shared/dataset/), so every format
 * gets the same typing and rejections.
 *
 * `parseDataset` holds the rows in memory (small files, tests, the tuner); the trainer
 * streams instead (`profileDataset` + shared/training/stream.ts) and never holds them all.
 * Rows keep their raw strings: the fitted preprocessing (shared/preprocess.ts) turns them
 * into vectors, exactly as the device will.
 */

import type { ColumnProfile } from './dataset/column-kind.ts';
import { columnsProblem, type Delimiter, parseCsv, sniffDelimiter } from './dataset/csv.ts';
import {
  DATASET_LIMITS,
  type DatasetOptions,
  type DatasetProfile,
  DatasetProfiler,
  formatBytes,
  headerNames,
} from './dataset/profile.ts';
import { type DatasetSource, type PartLineage, type PassProgress, readPass } from './dataset/read.ts';
import { textHeadProblem } from './dataset/source.ts';
import { InputError } from './errors.ts';
import { targetNumber } from './target.ts';

export type { ColumnKind, ColumnProfile } from './dataset/column-kind.ts';
export { decideColumnKind } from './dataset/column-kind.ts';
export { type Delimiter, parseCsv, sniffDelimiter } from './dataset/csv.ts';
export { DATASET_LIMITS, type DatasetOptions, type DatasetProfile } from './dataset/profile.ts';
export type { DatasetSource, PartLineage, PassProgress } from './dataset/read.ts';

export interface Dataset extends DatasetProfile {
  delimiter: Delimiter;
  rows: Record<string, string>[];
  /** 1-based data record number (after the header) of each kept row, for messages. */
  rowNumbers: number[];
  y: number[];
  columns: ColumnProfile[];
}

/** Parse and validate a CSV dataset in memory. Throws InputError for anything it cannot trust. */
export function parseDataset(input: Uint8Array | string, options: DatasetOptions = {}): Dataset {
  const where = options.source ? `${options.source}: ` : '';
  const text = decodeText(input, options.maxBytes ?? DATASET_LIMITS.maxBytes, where);
  const delimiter = sniffDelimiter(text);
  let table: string[][];
  try {
    table = parseCsv(text, delimiter);
  } catch (error) {
    throw new InputError(
      `${where}the CSV cannot be parsed (${(error as Error).message}): check the quoting near that line`,
    );
  }
  const headerRow = table.shift();
  if (!headerRow || headerRow.every((cell) => cell.trim() === '')) {
    throw new InputError(`${where}the file is empty: upload a CSV with a header line and data rows`);
  }
  const wide = columnsProblem(headerRow.length, where, 'the header');
  if (wide) throw wide;
  const header = headerNames(headerRow, where);
  const profiler = new DatasetProfiler(header, options, where);
  const kept: { cells: string[]; number: number }[] = [];
  table.forEach((raw, i) => {
    const cells = profiler.add(raw, { row: i + 1 });
    if (cells) kept.push({ cells, number: i + 1 });
  });
  const profile = profiler.finish();
  const index = new Map(profile.labels.map((name, i) => [name, i]));
  const labelAt = profiler.labelIndex;
  return {
    ...profile,
    delimiter,
    rows: kept.map(({ cells }) => Object.fromEntries(header.map((name, j) => [name, cells[j] ?? '']))),
    rowNumbers: kept.map((row) => row.number),
    // Class indices, or the target's numbers for regression.
    y: kept.map(({ cells }) =>
      profile.task === 'regression' ? targetNumber(cells[labelAt]) : (index.get(cells[labelAt] ?? '') ?? 0),
    ),
  };
}

/**
 * Profiles a dataset of any size in one streaming pass (bounded memory): the header, the
 * classes and their counts, each column's kind, the rejections, and each part's lineage.
 */
export async function profileDataset(
  source: DatasetSource,
  options: DatasetOptions = {},
  onProgress?: (progress: PassProgress) => void,
): Promise<{ profile: DatasetProfile; parts: PartLineage[]; extraRows: number }> {
  const where = options.source ? `${options.source}: ` : '';
  const maxBytes = options.maxBytes ?? DATASET_LIMITS.maxBytes;
  const size = source.parts.reduce((sum, part) => sum + (part.size ?? 0), 0);
  checkDatasetSize(size, maxBytes, where);
  let profiler: DatasetProfiler | undefined;
  const pass = await readPass(
    source,
    where,
    (cells, place) => {
      profiler?.add(cells, place);
    },
    {
      onHeader: (header) => {
        profiler = new DatasetProfiler(header, options, where);
      },
      ...(onProgress ? { onProgress } : {}),
    },
  );
  return { profile: (profiler as DatasetProfiler).finish(), parts: pass.parts, extraRows: pass.extraRows };
}

function decodeText(input: Uint8Array | string, maxBytes: number, where: string): string {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  checkDatasetSize(bytes.byteLength, maxBytes, where);
  if (bytes.byteLength === 0) {
    throw new InputError(`${where}the file is empty: upload a CSV with a header line and data rows`);
  }
  const problem = textHeadProblem(bytes);
  if (problem) throw notText(where, problem);
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
