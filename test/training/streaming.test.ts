/**
 * The streaming pieces on their own: the split that holds no rows, the per-column statistics
 * and the one typing function, every format through the same profiler, and a capped run
 * that trains on a seeded stratified sample and says so.
 */
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { ColumnStatistics, decideColumnKind } from '../../shared/dataset/column-kind.ts';
import { bytesPart } from '../../shared/dataset/source.ts';
import { parseDataset, profileDataset } from '../../shared/dataset.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { planSplit, StratifiedSplitter, stratifiedSplit } from '../../shared/training/split.ts';
import { trainFromCsv } from '../../shared/training/train.ts';

const KIND_OPTIONS = { maxCategories: 32, numericTolerance: 0.2 };

describe('the streaming split', () => {
  it('splits a million rows without a stack overflow, every class in every part', () => {
    // Prepare
    const y = Array.from({ length: 1_000_000 }, (_, i) => (i % 7 === 0 ? 1 : 0));

    // Act
    const split = stratifiedSplit(y, { seed: 3 });

    // Assess
    expect(split.train.length + split.validation.length + split.test.length).toBe(1_000_000);
    for (const part of [split.validation, split.test]) {
      const share = part.filter((i) => y[i] === 1).length / part.length;
      expect(share).toBeCloseTo(1 / 7, 3);
    }
  });

  it('caps each role at a stratified sample and gives every class exactly its planned rows', () => {
    // Prepare
    const counts = [90_000, 9_000, 1_000];
    const plan = planSplit(counts, { seed: 1, maxTrainRows: 10_000, maxEvalRows: 2_000 });
    const splitter = new StratifiedSplitter(plan, 1);
    const seen = counts.map(() => ({ train: 0, validation: 0, test: 0, unused: 0 }));

    // Act
    counts.forEach((n, cls) => {
      for (let i = 0; i < n; i++) {
        const role = splitter.assign(cls);
        const tally = seen[cls] as Record<string, number>;
        tally[role ?? 'unused'] = (tally[role ?? 'unused'] ?? 0) + 1;
      }
    });

    // Assess
    expect(plan.kept).toEqual({ train: 10_000, validation: 2_000, test: 2_000 });
    expect(plan.planned.train).toBe(70_000);
    expect(seen.map((tally) => tally.train)).toEqual([9000, 900, 100]);
    expect(seen.map((tally) => tally.test)).toEqual(plan.classes.map((c) => c.keep.test));
    expect(() => splitter.assign(2)).toThrow(/more rows of class 2 than the profiling pass counted/);
  });
});

describe('column statistics and decideColumnKind', () => {
  it('drops a column of 200,000 unique ids from an estimate, counting only 10,000 exactly', () => {
    // Prepare
    const stats = new ColumnStatistics('serial');
    const where = () => 'data row 1';

    // Act
    for (let i = 0; i < 200_000; i++) stats.add(`SN-${(i * 7919) % 1_000_003}`, where);
    const profile = decideColumnKind(stats, KIND_OPTIONS, '');

    // Assess
    expect(stats.counts.size).toBe(10_000);
    expect(profile).toMatchObject({ kind: 'dropped', distinctExact: false });
    expect(profile.reason).toMatch(/looks like an id/);
    expect(Math.abs(profile.distinct - 200_000) / 200_000).toBeLessThan(0.1);
  });

  it('types numbers, dates and categories, and rejects a numeric column with too much text', () => {
    // Prepare
    const column = (values: string[]) => {
      const stats = new ColumnStatistics('c');
      values.forEach((value, i) => {
        stats.add(value, () => `data row ${i + 1}`);
      });
      return stats;
    };
    const numbers = Array.from({ length: 100 }, (_, i) => String((i * 37) % 11));

    // Act
    const kinds = [
      numbers,
      numbers.map((_, i) => `2026-01-${String((i % 28) + 1).padStart(2, '0')}`),
      numbers.map((_, i) => ['north', 'south'][i % 2] as string),
    ].map((values) => decideColumnKind(column(values), KIND_OPTIONS, '').kind);
    const mixed = () =>
      decideColumnKind(column([...numbers.slice(0, 70), ...Array(30).fill('hot')]), KIND_OPTIONS, 'f: ');

    // Assess
    // A timestamp is left out unless declared a date.
    expect(kinds).toEqual(['numeric', 'dropped', 'categorical']);
    const dates = numbers.map((_, i) => `2026-01-${String((i % 28) + 1).padStart(2, '0')}`);
    const dropped = decideColumnKind(column(dates), KIND_OPTIONS, '');
    expect(dropped).toMatchObject({
      kind: 'dropped',
      reason: expect.stringMatching(/"columns": \{"c": "date"\}/),
    });
    expect(decideColumnKind(column(dates), { ...KIND_OPTIONS, declared: { c: 'date' } }, '').kind).toBe(
      'date',
    );
    expect(() =>
      decideColumnKind(column(numbers.map(String)), { ...KIND_OPTIONS, declared: { c: 'date' } }, 'f: '),
    ).toThrow(
      /^f: column 'c' is declared a date in "columns" but only 0 of 100 values \(0\.0%\) are ISO dates/,
    );
    expect(mixed).toThrow(InputError);
    expect(mixed).toThrow(/^f: column 'c' mixes numbers and text: 30 of 100 values .*'hot' \(data row 71\)/);
  });
});

describe('every format through one profiler', () => {
  const csv = generateDemoDataset({ rows: 300, seed: 5 });
  const [headerLine = '', ...lines] = csv.trim().split('\n');
  const header = headerLine.split(',');
  const rows = lines.map((line) => line.split(','));
  const numeric = (name: string) => !['timestamp', 'site', 'condition'].includes(name);
  const jsonl = rows
    .map((cells) =>
      JSON.stringify(
        Object.fromEntries(header.map((name, j) => [name, numeric(name) ? Number(cells[j]) : cells[j]])),
      ),
    )
    .join('\n');
  const parquet = new Uint8Array(
    parquetWriteBuffer({
      columnData: header.map((name, j) => ({
        name,
        data: rows.map((cells) => (numeric(name) ? Number(cells[j]) : (cells[j] ?? ''))),
        type: numeric(name) ? 'DOUBLE' : 'STRING',
      })),
    }),
  );

  it('gives CSV, CSV.gz, JSON Lines(.gz) and Parquet the same columns, kinds, classes and rows', async () => {
    // Prepare
    const files: [string, Uint8Array | string][] = [
      ['d.csv', csv],
      ['d.csv.gz', gzipSync(csv)],
      ['d.jsonl', jsonl],
      ['d.jsonl.gz', gzipSync(jsonl)],
      ['d.parquet', parquet],
    ];

    // Act
    const profiles = await Promise.all(
      files.map(
        async ([name, bytes]) => (await profileDataset({ name, parts: [bytesPart(name, bytes)] })).profile,
      ),
    );

    // Assess
    const expected = parseDataset(csv);
    for (const profile of profiles) {
      expect(profile.columns.map((c) => [c.column, c.kind])).toEqual(
        expected.columns.map((c) => [c.column, c.kind]),
      );
      expect(profile.classCounts).toEqual(expected.classCounts);
      expect(profile.stats.rowsKept).toBe(300);
    }
  });

  it('rejects a JSON Lines line that is not an object, and parts with other columns, naming them', async () => {
    // Prepare
    const broken = `${jsonl.split('\n').slice(0, 3).join('\n')}\n[1,2]\n`;
    const other = csv.replace('humidity_pct', 'humidity');

    // Act
    const notObject = profileDataset(
      { name: 'a.jsonl', parts: [bytesPart('a.jsonl', broken)] },
      { source: 'a.jsonl' },
    );
    const mismatch = profileDataset({
      name: 'run/',
      parts: [bytesPart('p0.csv', csv), bytesPart('p1.csv', other)],
    });

    // Assess
    await expect(notObject).rejects.toThrow(/^a\.jsonl: line 4 is not a JSON object/);
    await expect(mismatch).rejects.toThrow(
      /^p1\.csv: the part's columns differ from the first part's \(missing humidity_pct; extra humidity\)/,
    );
  });
});

describe('a capped run', () => {
  it('trains on a seeded stratified sample and records its size', async () => {
    // Prepare
    const csv = generateDemoDataset({ rows: 3000, seed: 2 });
    const config = TrainingConfigSchema.parse({ epochs: 5, sample: { maxTrainRows: 600, maxEvalRows: 200 } });

    // Act
    const outcome = await trainFromCsv(csv, config);

    // Assess
    expect(outcome.sample).toEqual({
      seed: 42,
      trainRows: 600,
      validationRows: expect.any(Number),
      testRows: expect.any(Number),
      of: { trainRows: 2100, validationRows: 450, testRows: 450 },
    });
    expect(outcome.sample?.testRows).toBeLessThanOrEqual(201);
    expect(outcome.metrics.testRows).toBe(outcome.sample?.testRows);
    expect(outcome.notices.join('\n')).toMatch(
      /trained on a seeded stratified sample: 600 of 2100 training rows/,
    );
    expect(outcome.rows).toBe(3000);
  });
});
