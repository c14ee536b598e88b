/**
 * One pass over a dataset's records, in bounded memory: the header checks, label counts,
 * ragged rows, and per-column statistics that `decideColumnKind` types the columns from.
 * The same profiler serves the in-memory `parseDataset` and the streaming trainer, so a file
 * gets the same typing and the same rejections whichever way it is read.
 */
import { InputError } from '../errors.ts';
import { isMissing } from '../preprocess.ts';
import type { Task } from '../schemas.ts';
import { targetNumber } from '../target.ts';
import {
  type CellExample,
  type ColumnProfile,
  ColumnStatistics,
  type DeclaredColumnKind,
  decideColumnKind,
  describeExamples,
  describeShare,
} from './column-kind.ts';

export interface DatasetOptions {
  /** Classes (default) or a numeric target: it decides how the label column is read. */
  task?: Task;
  /** Label column; default: the last column (anomaly models have none). */
  label?: string;
  /** The time column: never a feature. */
  time?: string;
  /** The series column (a machine's id): never a feature. */
  series?: string;
  /** Feature columns to use; default: every other column that is usable. */
  features?: string[];
  minRowsPerClass?: number;
  maxBytes?: number;
  maxCategories?: number;
  /** Share of non-numeric cells a column of numbers may have (they are imputed); above: rejected. */
  numericTolerance?: number;
  /** Declared column kinds (`"columns"` in edgeloop.json), used instead of the guess. */
  columnKinds?: Readonly<Record<string, DeclaredColumnKind>>;
  maxClasses?: number;
  /** Used in messages ("where"): the file name or S3 key. */
  source?: string;
}

export const DATASET_LIMITS = {
  /** No size cliff: streaming keeps memory bounded; this only refuses absurd uploads. */
  maxBytes: 1024 ** 4,
  /** One-hot slots per categorical column (64 keeps gapminder's 62 countries whole). */
  maxCategories: 64,
  numericTolerance: 0.2,
  maxClasses: 50,
  minRowsPerClass: 5,
  /**
   * Parsing limits, so one upload cannot exhaust a training function: one record (a CSV row
   * or a JSON line) in characters, the columns of a row, and how much more a gzip part may
   * inflate to than it is stored (after the first 16 MiB; CSV compresses 5-20x, a bomb 1000x).
   */
  maxRecordChars: 1024 * 1024,
  maxColumns: 10_000,
  maxGzipRatio: 200,
} as const;

export function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

/** Output a gzip part may reach before its ratio is judged (small files may compress far). */
export const GZIP_RATIO_FLOOR_BYTES = 16 * 1024 * 1024;

/** Label values counted before the profiler stops adding new ones (far above maxClasses). */
const TRACKED_LABELS = 10_000;
/** Ragged row numbers listed in the notice. */
const LISTED_RAGGED = 20;

export interface DatasetProfile {
  header: string[];
  label: string;
  task: Task;
  /** Class names, sorted; class indices point into this list (empty for regression). */
  labels: string[];
  /** Rows per class, by class index (regression: one count, every kept row). */
  classCounts: number[];
  /** Regression: the label column's values over the kept rows. */
  target?: TargetProfile;
  columns: ColumnProfile[];
  /** Feature columns kept for training, in header order. */
  features: string[];
  notices: string[];
  stats: {
    rowsRead: number;
    rowsKept: number;
    droppedMissingLabel: number;
    /** Regression: rows whose label is not a number. */
    droppedNonNumericTarget?: number;
    droppedRagged: number;
    missingCells: number;
  };
}

export interface TargetProfile {
  min: number;
  max: number;
  mean: number;
  distinct: number;
}

/** Rows a regression dataset needs at least (a train, validation and test split of a few each). */
export const MIN_REGRESSION_ROWS = 20;

/** Where a record came from, for messages: its part (when there are several) and data row. */
export interface RecordPlace {
  part?: string;
  row: number;
}

export function placeText(place: RecordPlace): string {
  return place.part ? `${place.part} data row ${place.row}` : `data row ${place.row}`;
}

/** Header cells -> column names; rejects duplicates; drops an empty trailing column. */
export function headerNames(header: readonly string[], where: string): string[] {
  const cells = [...header];
  // A trailing delimiter on every line is a common export quirk: drop the empty last column.
  while (cells.length > 1 && cells[cells.length - 1]?.trim() === '') cells.pop();
  const names = cells.map((cell, i) => cell.trim() || `column_${i + 1}`);
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const first = seen.get(name);
    if (first !== undefined) {
      throw new InputError(
        `${where}column name '${name}' appears twice in the header (columns ${first + 1} and ${i + 1}): rename one`,
      );
    }
    seen.set(name, i);
  });
  return names;
}

/**
 * A record's cells when it has the header's width (a trailing empty cell, a common export
 * quirk, is accepted), else undefined (a ragged row).
 */
export function fitToHeader(cells: string[], width: number): string[] | undefined {
  if (cells.length === width) return cells;
  if (cells.length === width + 1 && cells[width]?.trim() === '') return cells.slice(0, width);
  return undefined;
}

export class DatasetProfiler {
  readonly label: string;
  readonly labelIndex: number;
  private readonly featureIndex: number[];
  private readonly columnStats: ColumnStatistics[];
  private readonly labelCounts = new Map<string, number>();
  private labelsOverflow = false;
  private rowsRead = 0;
  private rowsKept = 0;
  private droppedMissingLabel = 0;
  private readonly task: Task;
  private readonly target = { n: 0, sum: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
  private readonly targetValues = new Set<number>();
  private nonNumericTargets = 0;
  private readonly nonNumericTargetExamples: CellExample[] = [];
  private ragged: RecordPlace[] = [];
  private raggedCount = 0;

  constructor(
    readonly header: string[],
    private readonly options: DatasetOptions,
    private readonly where: string,
  ) {
    this.task = options.task ?? 'classification';
    if (this.task === 'anomaly' && options.label)
      throw new InputError(
        `${where}an anomaly model trains on normal operation without labels, but "label" names '${options.label}': remove it (labelled event ranges go in events.csv)`,
      );
    const label = this.task === 'anomaly' ? '' : (options.label ?? (header[header.length - 1] as string));
    if (this.task !== 'anomaly' && !header.includes(label)) {
      throw new InputError(
        `${where}label column '${label}' is not in the header; columns are: ${header.join(', ')} (set --label or "label" in edgeloop.json)`,
      );
    }
    if (options.time && !header.includes(options.time))
      throw new InputError(
        `${where}time column '${options.time}' is not in the header; columns are: ${header.join(', ')} (set --time or "time" in edgeloop.json)`,
      );
    this.label = label;
    this.labelIndex = header.indexOf(label);
    if (options.series && !header.includes(options.series))
      throw new InputError(
        `${where}series column '${options.series}' is not in the header; columns are: ${header.join(', ')} (set --series or "series" in edgeloop.json)`,
      );
    const wanted =
      options.features ??
      header.filter((column) => column !== label && column !== options.time && column !== options.series);
    for (const column of wanted) {
      if (!header.includes(column)) {
        throw new InputError(
          `${where}feature column '${column}' is not in the header; columns are: ${header.join(', ')}`,
        );
      }
      if (column === label)
        throw new InputError(`${where}column '${label}' cannot be both label and feature`);
      if (column === options.time)
        throw new InputError(`${where}column '${column}' is the time column: it cannot be a feature`);
    }
    for (const column of Object.keys(options.columnKinds ?? {})) {
      if (!header.includes(column)) {
        throw new InputError(
          `${where}column '${column}' declared in "columns" is not in the header; columns are: ${header.join(', ')}`,
        );
      }
    }
    this.featureIndex = wanted.map((column) => header.indexOf(column));
    this.columnStats = wanted.map((column) => new ColumnStatistics(column));
  }

  /** Adds one record; returns its cells (label trimmed) when the row is kept. */
  add(raw: string[], place: RecordPlace): string[] | undefined {
    this.rowsRead++;
    const cells = fitToHeader(raw, this.header.length);
    if (!cells) {
      this.raggedCount++;
      if (this.ragged.length < LISTED_RAGGED) this.ragged.push(place);
      return undefined;
    }
    if (this.task === 'anomaly') return this.keep(cells, place);
    const labelValue = cells[this.labelIndex] ?? '';
    if (isMissing(labelValue)) {
      this.droppedMissingLabel++;
      return undefined;
    }
    const label = labelValue.trim();
    cells[this.labelIndex] = label;
    if (this.task === 'regression') {
      if (!this.addTarget(label, place)) return undefined;
    } else this.countClass(label);
    return this.keep(cells, place);
  }

  /** Counts a kept row and adds its feature cells to the column statistics. */
  private keep(cells: string[], place: RecordPlace): string[] {
    this.rowsKept++;
    const where = () => placeText(place);
    for (let i = 0; i < this.featureIndex.length; i++) {
      (this.columnStats[i] as ColumnStatistics).add(cells[this.featureIndex[i] as number] ?? '', where);
    }
    return cells;
  }

  /** A regression row's target; false (the row is dropped and counted) when it is not a number. */
  private addTarget(label: string, place: RecordPlace): boolean {
    const value = targetNumber(label);
    if (Number.isNaN(value)) {
      this.nonNumericTargets++;
      if (this.nonNumericTargetExamples.length < 3)
        this.nonNumericTargetExamples.push({ value: label.slice(0, 40), place: placeText(place) });
      return false;
    }
    const t = this.target;
    t.n++;
    t.sum += value;
    if (value < t.min) t.min = value;
    if (value > t.max) t.max = value;
    if (this.targetValues.size <= TRACKED_LABELS) this.targetValues.add(value);
    return true;
  }

  private countClass(label: string): void {
    const count = this.labelCounts.get(label);
    if (count !== undefined) this.labelCounts.set(label, count + 1);
    else if (this.labelCounts.size < TRACKED_LABELS) this.labelCounts.set(label, 1);
    else this.labelsOverflow = true;
  }

  /** The profile, or the rejection the records earned. */
  finish(): DatasetProfile {
    const { where, header, label } = this;
    const notices: string[] = [];
    if (this.rowsRead === 0) {
      throw new InputError(
        `${where}the file has a header (${header.join(', ')}) but no data rows: add at least one row per class`,
      );
    }
    const ragged = this.raggedCount;
    if (ragged > Math.max(1, this.rowsRead * 0.01) || ragged === this.rowsRead) {
      throw new InputError(
        `${where}${ragged} of ${this.rowsRead} rows do not have ${header.length} fields like the header (first: ${placeText(this.ragged[0] as RecordPlace)}): check the delimiter and quoting`,
      );
    }
    if (ragged > 0) {
      const listed = this.ragged.map((place) => (place.part ? placeText(place) : String(place.row)));
      notices.push(
        `dropped ${ragged} row(s) with the wrong number of fields (data row ${listed.join(', ')}${ragged > listed.length ? ', ...' : ''})`,
      );
    }
    if (this.droppedMissingLabel > 0) {
      notices.push(`dropped ${this.droppedMissingLabel} row(s) with no value in label column '${label}'`);
    }
    const { labels, classCounts, target } =
      this.task === 'regression'
        ? this.checkTarget(notices)
        : this.task === 'anomaly'
          ? { labels: [], classCounts: [this.rowsKept], target: undefined }
          : this.checkClasses();
    const maxCategories = this.options.maxCategories ?? DATASET_LIMITS.maxCategories;
    const kindOptions = {
      maxCategories,
      numericTolerance: this.options.numericTolerance ?? DATASET_LIMITS.numericTolerance,
      ...(this.options.columnKinds ? { declared: this.options.columnKinds } : {}),
    };
    const columns = this.columnStats.map((stats) => decideColumnKind(stats, kindOptions, where));
    let missingCells = 0;
    for (const profile of columns) {
      if (profile.kind === 'dropped') {
        notices.push(`dropped column '${profile.column}': ${profile.reason}`);
        continue;
      }
      missingCells += profile.missing + profile.invalid;
      if (profile.missing > 0) {
        notices.push(`column '${profile.column}': ${profile.missing} missing value(s) imputed`);
      }
      if (profile.kind === 'categorical' && profile.distinct > maxCategories) {
        notices.push(
          `column '${profile.column}': ${profile.distinctExact === false ? 'about ' : ''}${profile.distinct} distinct values; the ${maxCategories} most frequent get their own slot, the rest share one "other" slot`,
        );
      }
      const present = this.rowsKept - profile.missing;
      if (profile.invalid > 0) {
        notices.push(
          `column '${profile.column}' is numeric: ${describeShare(profile.invalid, present)} are not numbers and count as missing (${describeExamples(profile.examples ?? [])})`,
        );
      }
      if (profile.numberLike) {
        notices.push(
          `column '${profile.column}' is categorical: ${describeShare(profile.numberLike, present)} are numbers, taken as category names (${describeExamples(profile.examples ?? [])}); declare "columns": {"${profile.column}": "numeric"} in edgeloop.json if they are measurements`,
        );
      }
    }
    const features = columns.filter((profile) => profile.kind !== 'dropped').map((profile) => profile.column);
    if (features.length === 0) {
      throw new InputError(
        `${where}no usable feature columns besides label '${label}' (${columns.map((c) => `${c.column}: ${c.reason}`).join('; ') || 'the file has only the label column'}): add numeric or categorical columns`,
      );
    }
    return {
      header,
      label,
      task: this.task,
      labels,
      classCounts,
      ...(target ? { target } : {}),
      columns,
      features,
      notices,
      stats: {
        rowsRead: this.rowsRead,
        rowsKept: this.rowsKept,
        droppedMissingLabel: this.droppedMissingLabel,
        ...(this.task === 'regression' ? { droppedNonNumericTarget: this.nonNumericTargets } : {}),
        droppedRagged: ragged,
        missingCells,
      },
    };
  }

  /**
   * A regression label: a number in (nearly) every row. Rows whose label is text are dropped
   * with a notice up to the share a numeric feature may have; beyond it the column is not a
   * numeric target, and the rejection says so.
   */
  private checkTarget(notices: string[]): { labels: string[]; classCounts: number[]; target: TargetProfile } {
    const { where, label, target: t } = this;
    const bad = this.nonNumericTargets;
    const present = t.n + bad;
    const tolerance = this.options.numericTolerance ?? DATASET_LIMITS.numericTolerance;
    if (present > 0 && bad / present > tolerance) {
      throw new InputError(
        `${where}label column '${label}' is not numeric: ${describeShare(bad, present)} are not numbers (${describeExamples(this.nonNumericTargetExamples)}): "task": "regression" needs a number in every row; fix those cells, or train a classifier ("task": "classification")`,
      );
    }
    if (bad > 0) {
      notices.push(
        `dropped ${bad} row(s) whose label '${label}' is not a number (${describeExamples(this.nonNumericTargetExamples)})`,
      );
    }
    if (t.n < MIN_REGRESSION_ROWS) {
      throw new InputError(
        `${where}label column '${label}' has a number in only ${t.n} rows: regression needs at least ${MIN_REGRESSION_ROWS} to train, validate and test on`,
      );
    }
    if (t.max === t.min) {
      throw new InputError(
        `${where}label column '${label}' is ${t.min} in every row: there is nothing to predict; check the label column`,
      );
    }
    return {
      labels: [],
      classCounts: [t.n],
      target: { min: t.min, max: t.max, mean: t.sum / t.n, distinct: this.targetValues.size },
    };
  }

  private checkClasses(): { labels: string[]; classCounts: number[]; target?: undefined } {
    const { where, label, options, labelCounts: counts } = this;
    const labels = [...counts.keys()].sort();
    if (labels.length === 0) {
      throw new InputError(`${where}label column '${label}' has no values: fill in the label for each row`);
    }
    if (labels.length === 1) {
      throw new InputError(
        `${where}label column '${label}' has only one class ('${labels[0]}') in ${this.rowsKept} rows: a classifier needs rows of at least two classes`,
      );
    }
    const maxClasses = options.maxClasses ?? DATASET_LIMITS.maxClasses;
    if (labels.length > maxClasses) {
      throw new InputError(
        `${where}label column '${label}' has ${this.labelsOverflow ? 'over ' : ''}${labels.length} distinct values (limit ${maxClasses}): to predict a number set "task": "regression" (--task regression); to classify, pick a categorical label column or bin the values`,
      );
    }
    const minRows = options.minRowsPerClass ?? DATASET_LIMITS.minRowsPerClass;
    const rare = labels.filter((name) => (counts.get(name) ?? 0) < minRows);
    if (rare.length > 0) {
      const list = rare.map((name) => `'${name}' (${counts.get(name)})`).join(', ');
      throw new InputError(
        `${where}too few rows per class in label column '${label}': ${list}; each class needs at least ${minRows} rows: add rows or merge/remove those classes`,
      );
    }
    return { labels, classCounts: labels.map((name) => counts.get(name) ?? 0) };
  }
}
