/**
 * Where dataset records come from: one or more parts (a file, an S3 object, bytes in
 * memory), each CSV, CSV.gz, JSON Lines (.jsonl, .jsonl.gz) or Parquet, read as a stream of
 * string cells under a header. Every part is read again on every pass, so nothing holds the
 * whole dataset; gzip is detected by its magic bytes, whatever the name says.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  type AsyncBuffer,
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetRead,
  parquetSchema,
} from 'hyparquet';
import { InputError } from '../errors.ts';
import { columnsProblem, type Delimiter, openCsvText } from './csv.ts';
import { DATASET_LIMITS, formatBytes, GZIP_RATIO_FLOOR_BYTES } from './profile.ts';

export type PartFormat = 'csv' | 'jsonl' | 'parquet';

/** One object or file of a dataset. */
export interface DatasetPart {
  /** File name or S3 key: messages and lineage name it. */
  name: string;
  size?: number;
  versionId?: string;
  etag?: string;
  /** A fresh stream of the part's stored bytes. */
  open(): Promise<AsyncIterable<Uint8Array>>;
  /** Random access to the stored bytes (Parquet reads its footer, then row groups). */
  randomAccess?(): Promise<AsyncBuffer>;
}

/** What one part yields: its header cells, then its records. */
export interface PartRecords {
  format: PartFormat;
  delimiter?: Delimiter;
  header: string[];
  records: AsyncIterable<string[]>;
}

/** Counters a pass updates as it goes (progress and lineage). */
export interface ReadCounters {
  /** Stored bytes read (compressed, for gzip parts). */
  bytesRead: number;
  /** Called with every stored chunk (for the part's digest). */
  onChunk?: (chunk: Uint8Array) => void;
}

const DATA_SUFFIXES: [string, PartFormat][] = [
  ['.csv', 'csv'],
  ['.csv.gz', 'csv'],
  ['.jsonl', 'jsonl'],
  ['.jsonl.gz', 'jsonl'],
  ['.ndjson', 'jsonl'],
  ['.json.gz', 'jsonl'],
  ['.parquet', 'parquet'],
];

/** The format a part's name says, or undefined when it is not a dataset file. */
export function formatOf(name: string): PartFormat | undefined {
  const lower = name.toLowerCase();
  return DATA_SUFFIXES.find(([suffix]) => lower.endsWith(suffix))?.[1];
}

export const DATASET_SUFFIXES = DATA_SUFFIXES.map(([suffix]) => suffix);

export function bytesPart(name: string, input: Uint8Array | string): DatasetPart {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  return {
    name,
    size: bytes.byteLength,
    async open() {
      return (async function* () {
        // Chunks as a stream would give them, so the in-memory path exercises the same code.
        for (let at = 0; at < bytes.byteLength; at += 1 << 20) yield bytes.subarray(at, at + (1 << 20));
      })();
    },
    async randomAccess() {
      const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      return { byteLength: buffer.byteLength, slice: (start, end) => buffer.slice(start, end) };
    },
  };
}

export async function filePart(path: string, name = path): Promise<DatasetPart> {
  const { size } = await stat(path);
  return {
    name,
    size,
    async open() {
      return createReadStream(path, { highWaterMark: 1 << 20 });
    },
    randomAccess: () => asyncBufferFromFile(path),
  };
}

/** Opens one part: its format from the name, gzip from the bytes. */
export async function openPart(
  part: DatasetPart,
  where: string,
  counters: ReadCounters,
): Promise<PartRecords> {
  const format = formatOf(part.name) ?? 'csv';
  if (format === 'parquet') return openParquet(part, where, counters);
  const text = decodeText(await storedBytes(part, counters), where, format);
  if (format === 'jsonl') return openJsonLines(text, where);
  const { delimiter, records } = await openCsvText(text, where);
  const iterator = records[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) {
    throw new InputError(`${where}the file is empty: upload a CSV with a header line and data rows`);
  }
  return {
    format,
    delimiter,
    header: first.value,
    records: { [Symbol.asyncIterator]: () => iterator },
  };
}

async function* storedBytes(part: DatasetPart, counters: ReadCounters): AsyncGenerator<Uint8Array> {
  for await (const chunk of await part.open()) {
    counters.bytesRead += chunk.byteLength;
    counters.onChunk?.(chunk);
    yield chunk;
  }
}

/** Unzips when the bytes start with the gzip magic number. */
async function* plainBytes(chunks: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return;
  const head = first.value;
  const all = (async function* () {
    yield head;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  })();
  if (!(head[0] === 0x1f && head[1] === 0x8b)) {
    yield* all;
    return;
  }
  const gunzip = createGunzip();
  let stored = 0;
  let inflated = 0;
  const counted = (async function* () {
    for await (const chunk of all) {
      stored += chunk.byteLength;
      yield chunk;
    }
  })();
  pipeline(Readable.from(counted), gunzip, () => {});
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      inflated += chunk.byteLength;
      // A gzip bomb: a few KB stored that inflate to gigabytes keep a function busy for nothing.
      if (inflated > GZIP_RATIO_FLOOR_BYTES && inflated > stored * DATASET_LIMITS.maxGzipRatio)
        throw new InputError(
          `${where}the gzip part inflates more than ${DATASET_LIMITS.maxGzipRatio} times its stored size (${formatBytes(stored)} to over ${formatBytes(inflated)}): not a dataset export; upload it uncompressed or recompress it`,
        );
      yield chunk;
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`${where}the file is not valid gzip (${(error as Error).message}): upload it again`);
  }
}

/**
 * UTF-8 text of a part, checked as it streams: NUL or control bytes in the first 8 KiB and
 * invalid UTF-8 anywhere are rejections; a BOM is dropped.
 */
async function* decodeText(
  chunks: AsyncIterable<Uint8Array>,
  where: string,
  format: PartFormat,
): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let first = true;
  let total = 0;
  const kind = format === 'jsonl' ? 'JSON Lines file' : 'CSV';
  const notText = (why: string) =>
    new InputError(
      `${where}the file is not a text ${kind} (${why}): export the data as UTF-8 ${format === 'jsonl' ? 'JSON, one object per line' : 'CSV with a header line'}`,
    );
  for await (const chunk of plainBytes(chunks, where)) {
    total += chunk.byteLength;
    if (first) {
      first = false;
      const problem = textHeadProblem(chunk);
      if (problem) throw notText(problem);
    }
    let text: string;
    try {
      text = decoder.decode(chunk, { stream: true });
    } catch {
      throw notText('it is not valid UTF-8');
    }
    if (text) yield text;
  }
  try {
    const tail = decoder.decode();
    if (tail) yield tail;
  } catch {
    throw notText('it is not valid UTF-8');
  }
  if (total === 0) {
    throw new InputError(
      `${where}the file is empty: upload a ${format === 'jsonl' ? 'JSON Lines file with one object per line' : 'CSV with a header line and data rows'}`,
    );
  }
}

/** Why bytes do not look like text (NUL or many control bytes in the first 8 KiB), if they do not. */
export function textHeadProblem(bytes: Uint8Array): string | undefined {
  const head = bytes.subarray(0, 8192);
  let control = 0;
  for (const byte of head) {
    if (byte === 0) return 'it contains NUL bytes';
    if (byte < 32 && byte !== 9 && byte !== 10 && byte !== 13) control++;
  }
  return control > head.byteLength * 0.01 ? `${control} control characters in the first bytes` : undefined;
}

/** A JSON value as the cell text a CSV would have held. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? '' : value.toISOString();
  return JSON.stringify(value);
}

/** JSON Lines: the first object's keys are the header; later objects are read by those keys. */
async function openJsonLines(text: AsyncIterable<string>, where: string): Promise<PartRecords> {
  const lines = jsonLines(text, where);
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) {
    throw new InputError(`${where}the file is empty: upload a JSON Lines file with one object per line`);
  }
  const header = Object.keys(first.value.object);
  const wide = columnsProblem(header.length, where, 'the first object');
  if (wide) throw wide;
  async function* records(): AsyncGenerator<string[]> {
    yield header.map((key) => cellText(first.value?.object[key]));
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      const { object } = next.value;
      yield header.map((key) => cellText(object[key]));
    }
  }
  return { format: 'jsonl', header, records: records() };
}

async function* jsonLines(
  text: AsyncIterable<string>,
  where: string,
): AsyncGenerator<{ object: Record<string, unknown>; line: number }> {
  let pending = '';
  let line = 0;
  const parseLine = (raw: string) => {
    line++;
    const trimmed = raw.trim();
    if (trimmed === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw new InputError(
        `${where}line ${line} is not valid JSON (${(error as Error).message}): write one JSON object per line`,
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new InputError(
        `${where}line ${line} is not a JSON object: write one object per line, keys as columns`,
      );
    }
    return { object: value as Record<string, unknown>, line };
  };
  const tooLong = () =>
    new InputError(
      `${where}line ${line + 1} is longer than ${DATASET_LIMITS.maxRecordChars} characters: write one JSON object per line`,
    );
  for await (const chunk of text) {
    pending += chunk;
    let at = pending.indexOf('\n');
    let start = 0;
    while (at >= 0) {
      if (at - start > DATASET_LIMITS.maxRecordChars) throw tooLong();
      const parsed = parseLine(pending.slice(start, at));
      if (parsed) yield parsed;
      start = at + 1;
      at = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
    // Not held whole: a line with no end in sight is refused as soon as it passes the limit.
    if (pending.length > DATASET_LIMITS.maxRecordChars) throw tooLong();
  }
  const parsed = parseLine(pending);
  if (parsed) yield parsed;
}

/** Parquet, one row group at a time; the digest and byte count come from one stream read. */
async function openParquet(part: DatasetPart, where: string, counters: ReadCounters): Promise<PartRecords> {
  if (!part.randomAccess) throw new Error(`${part.name}: this source cannot read Parquet`);
  // The digest covers the stored bytes, like every other format's.
  for await (const _chunk of storedBytes(part, counters)) {
    // counted and hashed by storedBytes
  }
  const file = await part.randomAccess();
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (error) {
    throw new InputError(`${where}the file is not a readable Parquet file (${(error as Error).message})`);
  }
  const header = parquetSchema(metadata).children.map((child) => child.element.name);
  async function* records(): AsyncGenerator<string[]> {
    let start = 0;
    for (const group of metadata.row_groups) {
      const end = start + Number(group.num_rows);
      const rows = await new Promise<unknown[][]>((resolve, reject) => {
        parquetRead({ file, metadata, rowStart: start, rowEnd: end, onComplete: resolve }).catch(reject);
      });
      for (const row of rows) yield row.map(cellText);
      start = end;
    }
  }
  return { format: 'parquet', header, records: records() };
}

/** Whether a file name is a data part (not a marker like `_SUCCESS`, not hidden). */
export function isDataPartName(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return !base.startsWith('_') && !base.startsWith('.') && formatOf(base) !== undefined;
}
