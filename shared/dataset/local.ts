/** A dataset on local disk: one file, or a folder of parts (`part-*.csv.gz`, ...) read in name order. */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError } from '../errors.ts';
import { type DatasetSource, readPass } from './read.ts';
import { type Reading, readingOf } from './readings.ts';
import { DATASET_SUFFIXES, filePart, isDataPartName } from './source.ts';

export async function localDatasetSource(path: string): Promise<DatasetSource> {
  const info = await stat(path);
  if (!info.isDirectory()) return { name: basename(path), parts: [await filePart(path, basename(path))] };
  const names = (await readdir(path)).filter(isDataPartName).sort();
  if (names.length === 0) {
    throw new InputError(
      `${path}: the folder holds no dataset parts (files ending in ${DATASET_SUFFIXES.join(', ')})`,
    );
  }
  return {
    name: basename(path),
    parts: await Promise.all(names.map((name) => filePart(join(path, name), name))),
  };
}

/**
 * The records of a local dataset (any supported format: CSV, JSON Lines, Parquet, gzipped) as
 * readings, typed as the gateway's CSV replay types them (shared/dataset/readings.ts).
 */
export async function localReadings(path: string): Promise<Reading[]> {
  let header: string[] = [];
  const readings: Reading[] = [];
  await readPass(
    await localDatasetSource(path),
    `${path}: `,
    (cells) => readings.push(readingOf(header, cells)),
    {
      onHeader: (names) => {
        header = names;
      },
    },
  );
  return readings;
}
