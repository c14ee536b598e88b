/**
 * CSV through csv-parse: the sync form for small texts (feedback files, sniffing) and the
 * streaming form for datasets of any size. Both use the same options: RFC 4180 quoting with
 * "" escapes and line breaks inside quotes, CRLF/LF/CR, blank lines skipped, whitespace
 * around fields trimmed (so `a, "b, c"` works), a stray quote inside an unquoted field kept
 * as it is, and rows of any width (the dataset profiler counts the ragged ones).
 */
import { pipeline, Readable } from 'node:stream';
import { type Options, parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { InputError } from '../errors.ts';
import { DATASET_LIMITS } from './profile.ts';

export type Delimiter = ',' | ';';

const SNIFF_BYTES = 64 * 1024;
const SNIFF_ROWS = 20;

function csvOptions(delimiter: Delimiter): Options {
  return {
    delimiter,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    trim: true,
    // A field that never ends (an unclosed quote, a binary blob) stops here, not at OOM.
    max_record_size: DATASET_LIMITS.maxRecordChars,
  };
}

/** The rejection of a record wider than DATASET_LIMITS.maxColumns, or undefined. */
export function columnsProblem(columns: number, where: string, line: string): InputError | undefined {
  if (columns <= DATASET_LIMITS.maxColumns) return undefined;
  return new InputError(
    `${where}${line} has ${columns} columns, over the limit of ${DATASET_LIMITS.maxColumns}: check the delimiter, or reduce the columns`,
  );
}

/** Rows of a CSV text (header included); stops after `maxRows` rows when given. */
export function parseCsv(text: string, delimiter: Delimiter, maxRows?: number): string[][] {
  const rows = parseSync(text, {
    ...csvOptions(delimiter),
    ...(maxRows !== undefined && Number.isFinite(maxRows) ? { to: maxRows } : {}),
  }) as string[][];
  return rows.filter((row) => !(row.length === 1 && row[0] === ''));
}

/**
 * Each record of a CSV text or file (the header first) handed to `onRecord` in turn and not
 * kept, so a large file never exists as one array of records: parseCsv's rules, and a
 * leading byte-order mark skipped.
 */
export function eachCsvRecord(
  data: string | Buffer,
  delimiter: Delimiter,
  onRecord: (cells: string[]) => void,
): void {
  parseSync(data, {
    ...csvOptions(delimiter),
    bom: true,
    on_record: (record: string[]) => {
      if (!(record.length === 1 && record[0] === '')) onRecord(record);
      return null;
    },
  });
}

/** Picks `,` or `;`: the one whose field count is consistent over the first lines and > 1. */
export function sniffDelimiter(text: string | Buffer): Delimiter {
  const sample = sniffSample(
    typeof text === 'string'
      ? text
      : text
          .subarray(0, SNIFF_BYTES)
          .toString('utf8')
          .replace(/^\uFEFF/, ''),
  );
  const score = (delimiter: Delimiter) => {
    let table: string[][];
    try {
      table = parseCsv(sample, delimiter, SNIFF_ROWS);
    } catch {
      return 0;
    }
    const width = table[0]?.length ?? 0;
    if (width <= 1) return 0;
    const consistent = table.filter((row) => row.length === width).length;
    return consistent * 1000 + width;
  };
  return score(';') > score(',') ? ';' : ',';
}

/** The first lines of a text, cut at a line end so a sample does not end inside a field. */
function sniffSample(text: string): string {
  const head = text.slice(0, SNIFF_BYTES);
  let at = -1;
  for (let line = 0; line <= SNIFF_ROWS * 2; line++) {
    const next = head.indexOf('\n', at + 1);
    if (next < 0) return head;
    at = next;
  }
  return head.slice(0, at + 1);
}

/**
 * Records of a CSV text stream, each an array of raw cells (the header is the first). The
 * delimiter is sniffed from the first 64 KiB. A broken quote becomes an InputError naming the
 * line.
 */
export async function openCsvText(
  text: AsyncIterable<string>,
  where: string,
): Promise<{ delimiter: Delimiter; records: AsyncIterable<string[]> }> {
  const iterator = text[Symbol.asyncIterator]();
  let head = '';
  let done = false;
  while (head.length < SNIFF_BYTES) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    head += next.value;
  }
  const delimiter = sniffDelimiter(head);
  async function* rest(): AsyncGenerator<string> {
    if (head) yield head;
    if (done) return;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  async function* records(): AsyncGenerator<string[]> {
    const parser = parse(csvOptions(delimiter));
    // pipeline passes a failure of the text (bad UTF-8, a size limit) on to the parser.
    pipeline(Readable.from(rest(), { objectMode: true }), parser, () => {});
    let row = 0;
    try {
      for await (const record of parser as AsyncIterable<string[]>) {
        if (record.length === 1 && record[0] === '') continue;
        const wide = columnsProblem(record.length, where, row === 0 ? 'the header' : `row ${row}`);
        if (wide) throw wide;
        row++;
        yield record;
      }
    } catch (error) {
      if (error instanceof InputError) throw error;
      const code = (error as { code?: string }).code;
      if (code === 'CSV_MAX_RECORD_SIZE')
        throw new InputError(
          `${where}a record is longer than ${DATASET_LIMITS.maxRecordChars} characters (an unclosed quote, or not a CSV): check the quoting near that line`,
        );
      if (typeof code === 'string' && code.startsWith('CSV_')) {
        throw new InputError(
          `${where}the CSV cannot be parsed (${(error as Error).message}): check the quoting near that line`,
        );
      }
      throw error;
    }
  }
  return { delimiter, records: records() };
}
