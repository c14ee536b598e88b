/**
 * A file of readings (a CSV replay source, a historian export) held as typed columns instead
 * of one object per reading. A reading object with its cells costs 250-700 bytes in V8 (the
 * object, its property array, a heap number or a string per cell); a cell here costs 8 bytes,
 * or 12 in a column that holds any text. A 100,000-reading replay file peaked at 67 MB more
 * RSS than a small one as objects (bench/device-live.ts, spectral workload).
 *
 * `at(i)` gives reading i exactly as `readingOf` reads its record, built when asked: numbers
 * that print back as their text are numbers, every other cell is its text, a short record's
 * missing cells are absent. Text that repeats (series names, labels) is stored once.
 */
import type { RawRow } from '../preprocess.ts';
import type { Reading } from './readings.ts';

/** Readings by index: an array of readings, or a ReadingTable. */
export interface ReadingList {
  readonly length: number;
  at(index: number): RawRow | undefined;
}

/** The readings as an array (the list itself when it is one). */
export function rowArray(rows: ReadingList): readonly RawRow[] {
  return Array.isArray(rows) ? rows : Array.from({ length: rows.length }, (_, i) => rows.at(i) ?? {});
}

/** A cell's code: the number is exact; the cell is absent; k >= 0 is text k; FIXED - d is toFixed(d). */
const EXACT = -1;
const ABSENT = -2;
const FIXED = -3;
/** toFixed's largest digit count. */
const MAX_DIGITS = 100;
const DECIMAL = /^-?\d+\.(\d+)$/;

/** Cells per column block: columns grow a block at a time, never copied (no garbage to collect late). */
const BLOCK_BITS = 12;
const BLOCK = 1 << BLOCK_BITS;

export class ReadingTable implements ReadingList {
  length = 0;
  /** Per column, its blocks of numbers. */
  private readonly numbers: Float64Array[][];
  /** Per column and block, the cells' codes; undefined while every cell of the block is an exact number. */
  private readonly codes: (Int32Array | undefined)[][];
  private readonly texts: string[] = [];
  private readonly textIndex = new Map<string, number>();

  constructor(readonly header: readonly string[]) {
    this.numbers = header.map(() => []);
    this.codes = header.map(() => []);
  }

  /** Appends one record's cells (as `readingOf` reads them: cells past the header are ignored). */
  add(cells: readonly string[]): void {
    const i = this.length++;
    const block = i >>> BLOCK_BITS;
    const at = i & (BLOCK - 1);
    if (at === 0)
      for (let c = 0; c < this.header.length; c++) {
        (this.numbers[c] as Float64Array[]).push(new Float64Array(BLOCK));
        (this.codes[c] as (Int32Array | undefined)[]).push(undefined);
      }
    for (let c = 0; c < this.header.length; c++) {
      const text = cells[c];
      if (text === undefined) {
        this.code(c, block)[at] = ABSENT;
        continue;
      }
      const value = Number(text);
      if (text !== '' && Number.isFinite(value)) {
        ((this.numbers[c] as Float64Array[])[block] as Float64Array)[at] = value;
        if (String(value) === text) continue; // EXACT, a block's codes start so
        // "21.50", "0.1230": the number and its digit count give the text back.
        const digits = DECIMAL.exec(text)?.[1]?.length;
        if (digits !== undefined && digits <= MAX_DIGITS && value.toFixed(digits) === text) {
          this.code(c, block)[at] = FIXED - digits;
          continue;
        }
      }
      this.code(c, block)[at] = this.textCode(text);
    }
  }

  /** Reading `index`, as `readingOf` reads its record; undefined outside the table. */
  at(index: number): Reading | undefined {
    if (!(index >= 0 && index < this.length)) return undefined;
    const reading: Reading = {};
    for (let c = 0; c < this.header.length; c++) {
      const value = this.cell(index, c);
      if (value !== undefined) reading[this.header[c] as string] = value;
    }
    return reading;
  }

  /** Reading `index`'s cell in column `column`: a number, its text, or undefined when absent. */
  cell(index: number, column: number): string | number | undefined {
    const block = index >>> BLOCK_BITS;
    const at = index & (BLOCK - 1);
    const code = this.codes[column]?.[block]?.[at] ?? EXACT;
    if (code >= 0) return this.texts[code] as string;
    if (code === ABSENT) return undefined;
    const value = ((this.numbers[column] as Float64Array[])[block] as Float64Array)[at] as number;
    return code === EXACT ? value : value.toFixed(FIXED - code);
  }

  private code(column: number, block: number): Int32Array {
    const blocks = this.codes[column] as (Int32Array | undefined)[];
    let codes = blocks[block];
    if (!codes) {
      // Every earlier cell of the block was an exact number.
      codes = new Int32Array(BLOCK).fill(EXACT);
      blocks[block] = codes;
    }
    return codes;
  }

  private textCode(text: string): number {
    let code = this.textIndex.get(text);
    if (code === undefined) {
      code = this.texts.push(text) - 1;
      this.textIndex.set(text, code);
    }
    return code;
  }
}
