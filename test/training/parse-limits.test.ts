/**
 * Parsing limits: one upload cannot exhaust a training function. An endless record, too many
 * columns and a gzip bomb are each rejected with a reason naming the limit, on the streaming
 * path training uses (and the small-file path where it applies); ordinary files still pass.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bytesPart } from '../../shared/dataset/source.ts';
import { DATASET_LIMITS, parseDataset, profileDataset } from '../../shared/dataset.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { InputError } from '../../shared/errors.ts';

const profile = (name: string, bytes: Uint8Array | string) =>
  profileDataset({ name, parts: [bytesPart(name, bytes)] }, { source: name });

describe('dataset parsing limits', () => {
  it('rejects a record longer than the limit (an unclosed quote running to the end)', async () => {
    // Prepare
    const csv = `a,b,label\n1,"${'x'.repeat(DATASET_LIMITS.maxRecordChars + 10)}\n2,3,y\n`;

    // Act
    const streamed = profile('open-quote.csv', csv);

    // Assess
    await expect(streamed).rejects.toThrow(InputError);
    await expect(streamed).rejects.toThrow(/^open-quote\.csv: a record is longer than 1048576 characters/);
    expect(() => parseDataset(csv, { source: 'open-quote.csv' })).toThrow(
      /open-quote\.csv: the CSV cannot be parsed/,
    );
  });

  it('rejects a JSON line longer than the limit before it is parsed', async () => {
    // Prepare
    const jsonl = `{"a":1,"label":"x"}\n{"a":"${'y'.repeat(DATASET_LIMITS.maxRecordChars + 10)}"}\n`;

    // Act / Assess
    await expect(profile('long.jsonl', jsonl)).rejects.toThrow(
      /^long\.jsonl: line 2 is longer than 1048576 characters: write one JSON object per line/,
    );
  });

  it('rejects more columns than the limit, naming the count, in CSV and JSON Lines', async () => {
    // Prepare
    const columns = DATASET_LIMITS.maxColumns + 1;
    const names = Array.from({ length: columns }, (_, i) => `c${i}`);
    const csv = `${names.join(',')}\n${names.map(() => '1').join(',')}\n`;
    const jsonl = `${JSON.stringify(Object.fromEntries(names.map((name) => [name, 1])))}\n`;

    // Act / Assess
    await expect(profile('wide.csv', csv)).rejects.toThrow(
      /^wide\.csv: the header has 10001 columns, over the limit of 10000: check the delimiter, or reduce the columns/,
    );
    await expect(profile('wide.jsonl', jsonl)).rejects.toThrow(
      /^wide\.jsonl: the first object has 10001 columns/,
    );
    expect(() => parseDataset(csv, { source: 'wide.csv' })).toThrow(
      /wide\.csv: the header has 10001 columns/,
    );
  });

  it('rejects a gzip part that inflates far beyond a dataset export', async () => {
    // Prepare: 32 MiB of one repeated row compresses to about 50 KiB (over 600x).
    const row = '1,2,a\n';
    const bomb = gzipSync(Buffer.from(`x,y,label\n${row.repeat((32 * 1024 * 1024) / row.length)}`));

    // Act / Assess
    await expect(profile('bomb.csv.gz', bomb)).rejects.toThrow(
      /^bomb\.csv\.gz: the gzip part inflates more than 200 times its stored size \(.* to over \d+\.\d MiB\): not a dataset export/,
    );
  });

  it('still reads an ordinary gzip export', async () => {
    // Prepare
    const csv = generateDemoDataset({ rows: 3000, seed: 1 });

    // Act
    const { profile: read } = await profile('demo.csv.gz', gzipSync(Buffer.from(csv)));

    // Assess
    expect(read.classCounts.reduce((a, b) => a + b, 0)).toBe(3000);
  });
});
