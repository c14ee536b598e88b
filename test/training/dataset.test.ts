import { describe, expect, it } from 'vitest';
import { parseCsv, parseDataset, sniffDelimiter } from '../../shared/dataset.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { AWKWARD, BROKEN, fixture } from './fixtures.ts';

describe('CSV parsing', () => {
  it('keeps quoted delimiters, escaped quotes and newlines inside one field', () => {
    // Prepare
    const text = 'a,b\r\n"x, y","say ""hi""\nthere"\r\n\r\n1,2';
    // Act
    const rows = parseCsv(text, ',');
    // Assess
    expect(rows).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"\nthere'],
      ['1', '2'],
    ]);
  });

  it('sniffs a semicolon file even when its fields contain commas', () => {
    expect(sniffDelimiter('t;v;label\n1,5;2,1;a\n3,5;4,0;b\n')).toBe(';');
    expect(sniffDelimiter('t,v,label\n1.5,2.1,a\n')).toBe(',');
  });
});

describe('dataset rejections', () => {
  it.each(BROKEN)('rejects $file with its specific message', ({ file, label, message }) => {
    // Prepare
    const bytes = fixture(file);
    // Act
    const act = () => parseDataset(bytes, { source: file, ...(label ? { label } : {}) });
    // Assess
    expect(act).toThrow(InputError);
    expect(act).toThrow(message);
    expect(act).toThrow(new RegExp(`^${file.replace('.', '\\.')}: `));
  });

  it('rejects a file over the size limit, naming both sizes', () => {
    const act = () => parseDataset(fixture('ok-semicolon.csv'), { maxBytes: 1024 });
    expect(act).toThrow(/the file is .* KiB, over the 1\.0 KiB limit: sample or split the dataset/);
  });

  it('the corpus holds at least 15 broken files', () => {
    expect(BROKEN.length).toBeGreaterThanOrEqual(15);
  });
});

describe('awkward but valid datasets', () => {
  it.each(AWKWARD)('%s parses with every row labelled', (file) => {
    const dataset = parseDataset(fixture(file), { source: file });
    expect(dataset.rows.length).toBeGreaterThanOrEqual(80);
    expect(dataset.labels.length).toBeGreaterThanOrEqual(2);
    expect(dataset.y).toHaveLength(dataset.rows.length);
    expect(dataset.features.length).toBeGreaterThanOrEqual(2);
  });

  it('strips the BOM and CRLF so the first header and the label are clean', () => {
    const dataset = parseDataset(fixture('ok-bom-crlf.csv'));
    expect(dataset.header).toEqual(['temperature_c', 'vibration_rms', 'current_a', 'condition']);
    expect(dataset.labels).toEqual(['bearing_wear', 'normal', 'overheating']);
  });

  it('reads quoted header names and quoted categorical values with commas', () => {
    const dataset = parseDataset(fixture('ok-quoted-headers.csv'));
    expect(dataset.label).toBe('Condition');
    expect(dataset.columns.map((c) => [c.column, c.kind])).toEqual([
      ['Temperature (C)', 'numeric'],
      ['Vibration, RMS', 'numeric'],
      ['Site', 'categorical'],
    ]);
    expect(new Set(dataset.rows.map((row) => row.Site))).toContain('Plant 2, "South"');
  });

  it('counts missing values per column and drops rows without a label', () => {
    const dataset = parseDataset(fixture('ok-na-rows.csv'));
    expect(dataset.stats.droppedMissingLabel).toBe(5);
    const temperature = dataset.columns.find((c) => c.column === 'temperature_c');
    expect(temperature?.missing).toBe(14);
    expect(dataset.notices).toContain("column 'temperature_c': 14 missing value(s) imputed");
  });

  it('drops id-like columns and timestamps with a notice', () => {
    const dataset = parseDataset(fixture('ok-id-and-date.csv'));
    const kinds = Object.fromEntries(dataset.columns.map((c) => [c.column, c.kind]));
    expect(kinds).toMatchObject({
      row_id: 'dropped',
      serial: 'dropped',
      recorded_at: 'dropped',
      site: 'categorical',
    });
    expect(dataset.notices.join('\n')).toMatch(/dropped column 'row_id': it looks like a row id/);
    expect(dataset.notices.join('\n')).toMatch(
      /dropped column 'recorded_at': it is a timestamp, and a time is never a feature by default; .* "columns": \{"recorded_at": "date"\}/,
    );
  });

  it('tolerates a rare non-numeric cell in a numeric column and reports it', () => {
    const dataset = parseDataset(fixture('ok-one-bad-numeric.csv'));
    expect(dataset.columns[0]).toMatchObject({ column: 'temperature_c', kind: 'numeric', invalid: 1 });
  });

  it('keeps a numeric column with 7.5% text numeric and names the cells that count as missing', () => {
    const dataset = parseDataset(fixture('ok-some-non-numeric.csv'));
    expect(dataset.columns[0]).toMatchObject({ column: 'temperature_c', kind: 'numeric', invalid: 6 });
    expect(dataset.notices).toContain(
      "column 'temperature_c' is numeric: 6 of 80 values (7.5%) are not numbers and count as missing (e.g. 'hot' (data row 8), 'hot' (data row 14), 'hot' (data row 22))",
    );
  });

  it('defaults the label to the last column and can take an explicit one', () => {
    const csv = generateDemoDataset({ rows: 200 });
    expect(parseDataset(csv).label).toBe('condition');
    expect(parseDataset(csv, { label: 'site', features: ['temperature_c'] }).labels).toEqual([
      'east',
      'north',
      'south',
      'west',
    ]);
  });
});

describe('demo dataset', () => {
  it('is deterministic for a seed and different across seeds', () => {
    expect(generateDemoDataset({ rows: 50, seed: 3 })).toBe(generateDemoDataset({ rows: 50, seed: 3 }));
    expect(generateDemoDataset({ rows: 50, seed: 3 })).not.toBe(generateDemoDataset({ rows: 50, seed: 4 }));
  });

  it('has the four conditions, imbalanced, with typed sensor columns', () => {
    const dataset = parseDataset(generateDemoDataset());
    expect(dataset.rows).toHaveLength(1500);
    expect(dataset.labels).toEqual(['bearing_wear', 'imbalance', 'normal', 'overheating']);
    const kinds = Object.fromEntries(dataset.columns.map((c) => [c.column, c.kind]));
    expect(kinds).toEqual({
      timestamp: 'dropped',
      site: 'categorical',
      temperature_c: 'numeric',
      vibration_rms: 'numeric',
      current_a: 'numeric',
      humidity_pct: 'numeric',
    });
  });
});
