/**
 * Hard examples ("feedback"): the CSV layout gateways upload under datasetKeys.feedbackPrefix,
 * and the pure operations on it: writing lines, parsing, labelling, and merging labelled rows
 * into a training dataset by column name.
 *
 * Layout: the meta columns below, then the model's raw feature columns, then the label column
 * (named as in the training data) LAST. The label is the reading's truth when it had one,
 * empty when it still needs labelling (`edgeloop feedback label`).
 */
import { type Delimiter, parseCsv, sniffDelimiter } from './dataset.ts';

export const FEEDBACK_META_COLUMNS = [
  'feedback_id',
  'feedback_ts',
  'feedback_thing',
  'feedback_version',
  'feedback_predicted',
  'feedback_confidence',
] as const;

/**
 * An anomaly model has no label: its hard examples are anomalous readings, and their last
 * column is a reviewer's verdict instead. Rows a reviewer marks `normal` join the next run as
 * normal operation (the verdict column itself is not in the dataset); any other verdict
 * keeps them out.
 */
export const VERDICT_COLUMN = 'feedback_verdict';
export const NORMAL_VERDICT = 'normal';

/** The last column of a model's feedback files: its label column, or an anomaly model's verdict. */
export function feedbackLabelColumn(preprocessing: { task?: string; label: string }): string {
  return preprocessing.task === 'anomaly' ? VERDICT_COLUMN : preprocessing.label;
}

export interface FeedbackRow {
  id: string;
  ts: number;
  thing: string;
  version: number;
  /** The class, a regression model's value, or an anomaly model's score. */
  predicted: string;
  /** A classifier's confidence (absent for regression). */
  confidence?: number;
  /** Raw feature values by column. */
  features: Record<string, string | number | null | undefined>;
  /** The truth, when the reading carried one. */
  label?: string;
}

export interface FeedbackTable {
  header: string[];
  rows: string[][];
}

/** One CSV field: quoted when it holds a delimiter, a quote or a line break. */
export function csvField(value: string | number | null | undefined, delimiter: Delimiter = ','): string {
  const text = value === null || value === undefined ? '' : String(value);
  return text.includes(delimiter) || /["\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvLine(
  values: readonly (string | number | null | undefined)[],
  delimiter: Delimiter = ',',
): string {
  return values.map((value) => csvField(value, delimiter)).join(delimiter);
}

export function feedbackHeader(featureColumns: readonly string[], labelColumn: string): string[] {
  return [...FEEDBACK_META_COLUMNS, ...featureColumns, labelColumn];
}

export function feedbackLine(row: FeedbackRow, featureColumns: readonly string[]): string {
  return csvLine([
    row.id,
    row.ts,
    row.thing,
    row.version,
    row.predicted,
    row.confidence ?? '',
    ...featureColumns.map((column) => row.features[column]),
    row.label ?? '',
  ]);
}

export function parseFeedback(text: string): FeedbackTable {
  const [header = [], ...rows] = parseCsv(text, ',');
  return { header: header.map((name) => name.trim()), rows };
}

export function formatFeedback(table: FeedbackTable): string {
  return `${[table.header, ...table.rows].map((cells) => csvLine(cells)).join('\n')}\n`;
}

/** The label column (the last one) of a feedback table. */
export function labelColumnOf(table: FeedbackTable): string | undefined {
  return table.header.length > FEEDBACK_META_COLUMNS.length ? table.header.at(-1) : undefined;
}

export function countLabelled(table: FeedbackTable): { labelled: number; unlabelled: number } {
  const at = table.header.length - 1;
  let labelled = 0;
  for (const row of table.rows) if ((row[at] ?? '').trim() !== '') labelled++;
  return { labelled, unlabelled: table.rows.length - labelled };
}

/**
 * Sets labels: `labels` maps a feedback_id to its label; `all` labels every row not in the
 * map. Returns the new table and how many rows changed.
 */
export function applyLabels(
  table: FeedbackTable,
  labels: { byId?: ReadonlyMap<string, string>; all?: string },
): { table: FeedbackTable; changed: number } {
  const idAt = table.header.indexOf('feedback_id');
  const labelAt = table.header.length - 1;
  let changed = 0;
  const rows = table.rows.map((row) => {
    const label = labels.byId?.get(row[idAt] ?? '') ?? labels.all;
    if (label === undefined || row[labelAt] === label) return row;
    changed++;
    const next = [...row];
    while (next.length < table.header.length) next.push('');
    next[labelAt] = label;
    return next;
  });
  return { table: { header: table.header, rows }, changed };
}

/**
 * Appends the labelled rows of feedback tables to a dataset CSV, matched by column name
 * (dataset columns a feedback row lacks stay empty; feedback meta columns are dropped).
 * Rows without a label are skipped; the same reading sampled by many gateways (identical
 * values and label) is added once; at most `maxRows` rows are added (default: as many as
 * the dataset has), the last ones given first, so hard examples cannot swamp the data.
 */
export function mergeFeedback(
  datasetCsv: string,
  feedback: readonly FeedbackTable[],
  options: { maxRows?: number } = {},
): { csv: string; rows: number } {
  const delimiter = sniffDelimiter(datasetCsv);
  const datasetHeader = (parseCsv(datasetCsv.replace(/^\uFEFF/, ''), delimiter, 1)[0] ?? []).map((name) =>
    name.trim(),
  );
  const maxRows = options.maxRows ?? Math.max(0, countDataRows(datasetCsv, delimiter));
  const lines = feedbackRecords(datasetHeader, feedback, maxRows).map((cells) => csvLine(cells, delimiter));
  if (lines.length === 0) return { csv: datasetCsv, rows: 0 };
  const base = /\r?\n$/.test(datasetCsv) ? datasetCsv : `${datasetCsv}\n`;
  return { csv: `${base}${lines.join('\n')}\n`, rows: lines.length };
}

/**
 * The labelled rows of feedback tables as dataset records (cells in `datasetHeader` order),
 * with mergeFeedback's rules: by column name, unlabelled rows skipped (an anomaly model's: all
 * but those marked normal), duplicates once, at
 * most `maxRows`, the last ones first. The streaming trainer appends these after the parts.
 */
export function feedbackRecords(
  datasetHeader: readonly string[],
  feedback: readonly FeedbackTable[],
  maxRows: number,
): string[][] {
  const unique = new Map<string, string[]>();
  for (const table of [...feedback].reverse()) {
    const labelAt = table.header.length - 1;
    const label = table.header[labelAt];
    const index = new Map(table.header.map((name, i) => [name, i]));
    const verdicts = label === VERDICT_COLUMN;
    if (!label || !(verdicts || datasetHeader.includes(label))) continue;
    for (const row of [...table.rows].reverse()) {
      if (unique.size >= maxRows) break;
      const mark = (row[labelAt] ?? '').trim();
      if (mark === '' || (verdicts && mark !== NORMAL_VERDICT)) continue;
      const cells = datasetHeader.map((column) => {
        const at = index.get(column);
        return at === undefined ? '' : (row[at] ?? '');
      });
      const key = csvLine(cells);
      if (!unique.has(key)) unique.set(key, cells);
    }
  }
  return [...unique.values()];
}

function countDataRows(csv: string, delimiter: Delimiter): number {
  return parseCsv(csv, delimiter).length - 1;
}
