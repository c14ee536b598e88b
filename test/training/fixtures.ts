/** The dataset fixture corpus: broken files with the rejection each must get, and awkward valid ones. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURE_DIR = join(import.meta.dirname, '..', 'fixtures', 'datasets');

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURE_DIR, name));
}

export interface BrokenFixture {
  file: string;
  label?: string;
  /** The specific rejection: what and where. */
  message: RegExp;
}

export const BROKEN: readonly BrokenFixture[] = [
  { file: 'broken-empty.csv', message: /the file is empty/ },
  { file: 'broken-blank-lines.csv', message: /the file is empty/ },
  { file: 'broken-header-only.csv', message: /has a header \(temperature_c, .*\) but no data rows/ },
  {
    file: 'broken-missing-label.csv',
    label: 'condition',
    message:
      /label column 'condition' is not in the header; columns are: temperature_c, vibration_rms, current_a, state/,
  },
  { file: 'broken-one-class.csv', message: /label column 'condition' has only one class \('normal'\)/ },
  {
    file: 'broken-too-few-per-class.csv',
    message: /too few rows per class .*'bearing_wear' \(2\); each class needs at least 5/,
  },
  {
    file: 'broken-half-abc.csv',
    message:
      /column 'temperature_c' mixes numbers and text: 20 of 40 values \(50\.0%\) are not numbers \(e\.g\. 'abc' \(data row 1\), 'abc' \(data row 3\), 'abc' \(data row 5\)\), over the 20% .*declare it in edgeloop\.json as "columns": \{"temperature_c": "categorical"\}/,
  },
  { file: 'broken-binary.csv', message: /not a text CSV \(it contains NUL bytes\)/ },
  { file: 'broken-latin1.csv', message: /not a text CSV \(it is not valid UTF-8\)/ },
  {
    file: 'broken-duplicate-header.csv',
    message: /column name 'temperature_c' appears twice in the header \(columns 1 and 3\)/,
  },
  {
    file: 'broken-ragged.csv',
    message: /10 of 30 rows do not have 4 fields like the header \(first: data row 1\)/,
  },
  { file: 'broken-semicolon-garbage-text.csv', message: /1 of 1 rows do not have 2 fields like the header/ },
  {
    file: 'broken-continuous-label.csv',
    message: /label column 'temperature_c' has 79 distinct values \(limit 50\)/,
  },
  {
    file: 'broken-label-only.csv',
    message: /no usable feature columns besides label 'condition' \(the file has only the label column\)/,
  },
  {
    file: 'broken-all-missing-features.csv',
    message:
      /no usable feature columns .*temperature_c: every value is missing; vibration_rms: every value is missing/,
  },
];

export const AWKWARD: readonly string[] = readdirSync(FIXTURE_DIR)
  .filter((name) => name.startsWith('ok-'))
  .sort();
