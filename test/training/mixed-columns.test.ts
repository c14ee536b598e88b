/**
 * Mixed columns are typed honestly: a column mostly of numbers is numeric and its text cells
 * count as missing (with a notice naming them); past the 20% threshold the dataset is
 * rejected with the same detail and the fix; a declared kind in "columns" replaces the guess.
 * Numbers never become categories by accident.
 */
import { describe, expect, it } from 'vitest';
import { parseDataset } from '../../shared/dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { trainFromCsv } from '../../shared/training/train.ts';
import { fixture } from './fixtures.ts';

/** 100 rows: `bad` of them (every k-th) hold 'abc' in the numeric column `reading`. */
function mixedCsv(bad: number): string {
  const lines = ['reading,load,state'];
  const every = bad ? Math.floor(100 / bad) : 0;
  let placed = 0;
  for (let i = 0; i < 100; i++) {
    const state = i % 2 ? 'high' : 'low';
    const isBad = every > 0 && i % every === 0 && placed < bad;
    if (isBad) placed++;
    const reading = isBad ? 'abc' : String(((i * 37) % 50) + (state === 'high' ? 50 : 0));
    lines.push(`${reading},${(i * 13) % 7},${state}`);
  }
  return lines.join('\n');
}

describe('a column of numbers with some text in it', () => {
  it('stays numeric at 20% text and names the column, count, share and first cells', () => {
    // Prepare
    const csv = mixedCsv(20);

    // Act
    const dataset = parseDataset(csv);

    // Assess
    expect(dataset.columns[0]).toMatchObject({ column: 'reading', kind: 'numeric', invalid: 20 });
    expect(dataset.notices).toContain(
      "column 'reading' is numeric: 20 of 100 values (20.0%) are not numbers and count as missing (e.g. 'abc' (data row 1), 'abc' (data row 6), 'abc' (data row 11))",
    );
  });

  it('is rejected just above 20% with the same detail and the fix', () => {
    // Prepare
    const csv = mixedCsv(21);

    // Act
    const act = () => parseDataset(csv, { source: 'mixed.csv' });

    // Assess
    expect(act).toThrow(InputError);
    expect(act).toThrow(
      /^mixed\.csv: column 'reading' mixes numbers and text: 21 of 100 values \(21\.0%\) are not numbers \(e\.g\. 'abc' \(data row 1\), 'abc' \(data row 5\), 'abc' \(data row 9\)\), over the 20% that may count as missing: clean those cells, or if the column is a category declare it in edgeloop\.json as "columns": \{"reading": "categorical"\}$/,
    );
  });

  it('never turns the half-abc file into a categorical column of numbers', () => {
    // Prepare
    const file = fixture('broken-half-abc.csv');

    // Act
    const act = () => parseDataset(file);

    // Assess
    expect(act).toThrow(/column 'temperature_c' mixes numbers and text: 20 of 40 values \(50\.0%\)/);
  });

  it('trains the half-abc file when the column is declared categorical, as asked', async () => {
    // Prepare
    const config = TrainingConfigSchema.parse({ epochs: 2, columns: { temperature_c: 'categorical' } });

    // Act
    const outcome = await trainFromCsv(fixture('broken-half-abc.csv'), config);

    // Assess
    const spec = outcome.preprocessing.features.find((f) => f.column === 'temperature_c');
    expect(spec?.kind).toBe('categorical');
    expect(outcome.notices.join('\n')).not.toMatch(/temperature_c/);
  });

  it('makes a declared numeric column numeric whatever its share of text', () => {
    // Prepare
    const csv = mixedCsv(40);

    // Act
    const dataset = parseDataset(csv, { columnKinds: { reading: 'numeric' } });

    // Assess
    expect(dataset.columns[0]).toMatchObject({ kind: 'numeric', invalid: 40 });
    expect(dataset.notices.join('\n')).toMatch(/column 'reading' is numeric: 40 of 100 values \(40\.0%\)/);
  });

  it('rejects a declaration of a column that is not in the file', () => {
    // Prepare
    const csv = mixedCsv(0);

    // Act
    const act = () => parseDataset(csv, { columnKinds: { readings: 'categorical' } });

    // Assess
    expect(act).toThrow(/column 'readings' declared in "columns" is not in the header; columns are: reading/);
  });
});

describe('a text column with a few numbers in it', () => {
  it('is categorical and says which values look like numbers', () => {
    // Prepare
    const sizes = ['S', 'M', 'L', 'XL'];
    const lines = ['size,state'];
    for (let i = 0; i < 100; i++) lines.push(`${i % 10 === 3 ? '42' : sizes[i % 4]},${i % 2 ? 'a' : 'b'}`);

    // Act
    const dataset = parseDataset(lines.join('\n'));

    // Assess
    expect(dataset.columns[0]).toMatchObject({ kind: 'categorical', numberLike: 10 });
    expect(dataset.notices.join('\n')).toMatch(
      /column 'size' is categorical: 10 of 100 values \(10\.0%\) are numbers, taken as category names \(e\.g\. '42' \(data row 4\)/,
    );
  });
});

describe('the training config', () => {
  it('takes "columns" with numeric or categorical and refuses anything else', () => {
    // Act
    const good = TrainingConfigSchema.safeParse({ columns: { sepal_length: 'categorical' } });
    const bad = TrainingConfigSchema.safeParse({ columns: { sepal_length: 'text' } });

    // Assess
    expect(good.success).toBe(true);
    expect(bad.success).toBe(false);
  });
});
