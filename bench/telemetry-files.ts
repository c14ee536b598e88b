/**
 * Telemetry datasets for the scale bench, written deterministically to a folder (never
 * committed): the demo generator without its timestamp (6 columns, 4 imbalanced classes,
 * about 34 bytes a row), as one CSV or as parts in CSV.gz, JSON Lines.gz or Parquet.
 */
import { once } from 'node:events';
import { createWriteStream, existsSync, renameSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync as zlibGzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { demoDatasetLines } from '../shared/demo-dataset.ts';

export type PartsFormat = 'csv' | 'csv.gz' | 'jsonl.gz' | 'parquet';

/** Writes `rows` rows to `path` (once: an existing file of the same name is reused). */
export async function writeTelemetryCsv(path: string, rows: number, seed = 7): Promise<string> {
  if (existsSync(path)) return path;
  const partial = `${path}.partial`;
  const out = createWriteStream(partial);
  let buffer = '';
  for (const line of demoDatasetLines({ rows, seed, timestamp: false })) {
    buffer += `${line}\n`;
    if (buffer.length > 1 << 20) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer);
  await once(out, 'finish');
  renameSync(partial, path);
  return path;
}

/** The same rows split into `parts` part files of one format under `dir`, plus a `_SUCCESS` marker. */
export async function writeTelemetryParts(
  dir: string,
  rows: number,
  parts: number,
  format: PartsFormat,
  seed = 7,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const lines = demoDatasetLines({ rows, seed, timestamp: false });
  const header = (lines.next().value as string).split(',');
  const perPart = Math.ceil(rows / parts);
  const names: string[] = [];
  for (let p = 0; p < parts; p++) {
    const chunk: string[][] = [];
    for (let i = 0; i < perPart; i++) {
      const next = lines.next();
      if (next.done) break;
      chunk.push(next.value.split(','));
    }
    const name = `part-${String(p).padStart(5, '0')}.${format}`;
    await writeFile(join(dir, name), encodePart(header, chunk, format));
    names.push(name);
  }
  await writeFile(join(dir, '_SUCCESS'), '');
  return names;
}

function encodePart(header: string[], rows: string[][], format: PartsFormat): Uint8Array {
  if (format === 'parquet') {
    const numeric = (name: string) => name !== 'site' && name !== 'condition';
    return new Uint8Array(
      parquetWriteBuffer({
        columnData: header.map((name, j) => ({
          name,
          data: rows.map((row) => (numeric(name) ? Number(row[j]) : (row[j] ?? ''))),
          type: numeric(name) ? 'DOUBLE' : 'STRING',
        })),
      }),
    );
  }
  const text =
    format === 'jsonl.gz'
      ? rows
          .map((row) =>
            JSON.stringify(
              Object.fromEntries(
                header.map((name, j) => [
                  name,
                  name === 'site' || name === 'condition' ? row[j] : Number(row[j]),
                ]),
              ),
            ),
          )
          .join('\n')
      : [header.join(','), ...rows.map((row) => row.join(','))].join('\n');
  const bytes = Buffer.from(`${text}\n`);
  return format === 'csv' ? bytes : gzipSync(bytes);
}

function gzipSync(bytes: Buffer): Buffer {
  // zlib's sync form: the parts are small (a few MB each).
  return zlibGzipSync(bytes);
}
