import { describe, expect, it } from 'vitest';
import { parseCsvReadings, readReadingTable } from '../../shared/dataset/readings.ts';

const readingsOf = (table: NonNullable<ReturnType<typeof readReadingTable>>) =>
  Array.from({ length: table.length }, (_, i) => table.at(i));

describe('ReadingTable: a replay file as typed columns', () => {
  it('gives every reading exactly as parseCsvReadings reads it', () => {
    const text = [
      '\uFEFF ts ; machine ;temp;label;note',
      '1;m1;21.5;ok;"a; b"',
      '2;m1;21.50;ok;NA',
      '3;m2;0.1230;1.0;',
      '4;m2;-0;0;1e5',
      '5;m1;-3;2;0x10',
      '6;m2; 7 ;"ok";"line',
      'break"',
      '7;m1;12345678901234567890.5;fault;-0.000',
      '8;m1',
      '9;m2;nan;Infinity;3.14159265358979311600',
      '',
    ].join('\r\n');
    const expected = parseCsvReadings(text, '').rows;
    const table = readReadingTable(Buffer.from(text), '');
    expect(table?.header).toEqual(['ts', 'machine', 'temp', 'label', 'note']);
    expect(table && readingsOf(table)).toEqual(expected);
    // Text that only looks numeric stays text; exact numbers are numbers.
    expect(expected[1]?.temp).toBe('21.50');
    expect(expected[2]?.label).toBe('1.0');
    expect(expected[0]?.temp).toBe(21.5);
    // A short record's missing cells are absent, not empty.
    expect(expected[7]).toEqual({ ts: 8, machine: 'm1' });
    expect(table?.at(-1)).toBeUndefined();
    expect(table?.at(expected.length)).toBeUndefined();
  });

  it('spans many blocks and keeps columns that turn to text late', () => {
    const lines = ['t,v,label'];
    for (let i = 0; i < 5000; i++)
      lines.push(`${i},${i === 4000 ? 'bad' : (i / 8).toFixed(3)},${i % 3 === 0 ? 'a' : i}`);
    const text = lines.join('\n');
    const table = readReadingTable(Buffer.from(text), '');
    expect(table?.length).toBe(5000);
    expect(table && readingsOf(table)).toEqual(parseCsvReadings(text, '').rows);
    expect(table?.at(4000)?.v).toBe('bad');
    expect(table?.at(3998)?.v).toBe('499.750');
    expect(table?.at(3999)?.v).toBe(499.875);
  });

  it('reads a file with only a header as no readings, and a broken one with a clear error', () => {
    expect(readReadingTable(Buffer.from('a,b\n'), '')?.length).toBe(0);
    expect(readReadingTable(Buffer.from(''), '')).toBeUndefined();
    expect(() => readReadingTable(Buffer.from('a,a\n1,2\n'), 'the CSV source x.csv: ')).toThrow(
      /the CSV source x.csv: column name 'a' appears twice/,
    );
  });
});
