/**
 * A dataset as a sequence of parts read pass by pass: every part must carry the same
 * columns (in any order); records come out in the first part's column order, with where they
 * came from. Labelled feedback rows may follow the parts.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.ts';
import type { Delimiter } from './csv.ts';
import { headerNames, type RecordPlace } from './profile.ts';
import { type DatasetPart, openPart, type PartFormat } from './source.ts';

export interface DatasetSource {
  /** The dataset's name in messages and lineage: a file, an S3 key, a prefix. */
  name: string;
  parts: DatasetPart[];
  /** Rows appended after the parts, given the header and the parts' row count (feedback). */
  extra?: (header: readonly string[], partRows: number) => string[][];
}

/** What a pass saw of one part. */
export interface PartLineage {
  key: string;
  format: PartFormat;
  versionId?: string;
  etag?: string;
  bytes: number;
  sha256: string;
  rows: number;
}

export interface PassProgress {
  rowsParsed: number;
  bytesRead: number;
  /** Bytes of the whole dataset, when the parts' sizes are known. */
  bytesTotal?: number;
}

export interface PassResult {
  header: string[];
  delimiter?: Delimiter;
  parts: PartLineage[];
  /** Rows that came from `extra`. */
  extraRows: number;
}

const PROGRESS_EVERY = 50_000;

/**
 * Reads every record once: `visit` gets the cells (in the first part's column order) and the
 * record's place. `onHeader` sees the header before the first record.
 */
export async function readPass(
  source: DatasetSource,
  where: string,
  visit: (cells: string[], place: RecordPlace) => void,
  options: { onHeader?: (header: string[]) => void; onProgress?: (progress: PassProgress) => void } = {},
): Promise<PassResult> {
  if (source.parts.length === 0) {
    throw new InputError(
      `${where}the dataset has no parts: upload at least one CSV, JSON Lines or Parquet file`,
    );
  }
  const sizes = source.parts.map((part) => part.size);
  const bytesTotal = sizes.every((size) => size !== undefined)
    ? sizes.reduce<number>((a, b) => a + (b ?? 0), 0)
    : undefined;
  const progress: PassProgress = {
    rowsParsed: 0,
    bytesRead: 0,
    ...(bytesTotal !== undefined ? { bytesTotal } : {}),
  };
  let header: string[] | undefined;
  let delimiter: Delimiter | undefined;
  const parts: PartLineage[] = [];
  const several = source.parts.length > 1;
  for (const part of source.parts) {
    const hash = createHash('sha256');
    const counters = { bytesRead: 0, onChunk: (chunk: Uint8Array) => hash.update(chunk) };
    const partWhere = several ? `${where}${part.name}: ` : where;
    const opened = await openPart(part, partWhere, counters);
    const names = headerNames(opened.header, partWhere);
    let order: number[] | undefined;
    if (!header) {
      header = names;
      delimiter = opened.delimiter;
      options.onHeader?.(header);
    } else if (names.join('\u0000') !== header.join('\u0000')) {
      const missing = header.filter((name) => !names.includes(name));
      const extra = names.filter((name) => !header?.includes(name));
      if (missing.length || extra.length) {
        throw new InputError(
          `${partWhere}the part's columns differ from the first part's (${[
            missing.length ? `missing ${missing.join(', ')}` : '',
            extra.length ? `extra ${extra.join(', ')}` : '',
          ]
            .filter(Boolean)
            .join('; ')}): write every part with the same columns`,
        );
      }
      order = header.map((name) => names.indexOf(name));
    }
    let rows = 0;
    let bytesBefore = progress.bytesRead;
    for await (const record of opened.records) {
      rows++;
      const cells = order ? order.map((at) => record[at] ?? '') : record;
      visit(cells, several ? { part: part.name, row: rows } : { row: rows });
      if (++progress.rowsParsed % PROGRESS_EVERY === 0 && options.onProgress) {
        progress.bytesRead = bytesBefore + counters.bytesRead;
        options.onProgress(progress);
      }
    }
    progress.bytesRead = bytesBefore + counters.bytesRead;
    bytesBefore = progress.bytesRead;
    parts.push({
      key: part.name,
      format: opened.format,
      ...(part.versionId ? { versionId: part.versionId } : {}),
      ...(part.etag ? { etag: part.etag } : {}),
      bytes: counters.bytesRead,
      sha256: hash.digest('hex'),
      rows,
    });
  }
  const extra = source.extra?.(header as string[], progress.rowsParsed) ?? [];
  extra.forEach((cells, i) => {
    visit(cells, { part: 'feedback', row: i + 1 });
  });
  options.onProgress?.(progress);
  return { header: header as string[], ...(delimiter ? { delimiter } : {}), parts, extraRows: extra.length };
}

/** One digest for a dataset: the part's own sha256 when it has one part, else over the parts' digests. */
export function datasetDigest(parts: readonly PartLineage[]): string {
  if (parts.length === 1) return (parts[0] as PartLineage).sha256;
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.key}\u0000${part.sha256}\n`);
  return hash.digest('hex');
}
