/**
 * `edgeloop feedback list|label|accept`: the hard examples gateways uploaded
 * (datasetKeys.feedbackPrefix in the datasets bucket). A file joins the next training run once
 * reviewed: `label` gives rows their labels, `accept` takes the gateway's own labels as they
 * are; both write the reviewed copy training reads (unless the model's config trusts gateway
 * labels, see functions/rollout/feedback-store.ts).
 */
import { readFileSync } from 'node:fs';
import {
  listFeedbackObjects,
  oversized,
  readFeedbackTable,
  readModelFeedback,
  writeFeedbackTable,
} from '../../../functions/rollout/feedback-store.ts';
import { s3Client } from '../../../shared/aws.ts';
import {
  type CommandContext,
  dataDirOption,
  defineCommand,
  modelOption,
  UsageError,
} from '../../../shared/cli/command.ts';
import { parseCsv, sniffDelimiter } from '../../../shared/dataset.ts';
import { EdgeloopError, errorMessage } from '../../../shared/errors.ts';
import { applyLabels, countLabelled, labelColumnOf } from '../../../shared/feedback.ts';
import { buckets, datasetKeys } from '../../../shared/topology.ts';
import { attachToLocalStack } from '../../local/attach.ts';

type Values = Record<string, string | boolean | undefined>;

export const feedbackCommand = defineCommand({
  name: 'feedback',
  summary: 'list hard examples from the gateways and label them for the next training run',
  usage:
    'edgeloop feedback list --model NAME [--rows] | edgeloop feedback label KEY (--label CLASS [--ids ID,..] | --labels FILE.csv) | edgeloop feedback accept KEY',
  examples: [
    'edgeloop feedback list --model pump',
    'edgeloop feedback label feedback/pump/gw-1/1764342000000-v3-1-0.csv --label bearing_wear',
    'edgeloop feedback label feedback/pump/gw-1/1764342000000-v3-1-0.csv --labels labels.csv',
    'edgeloop feedback accept feedback/pump/gw-1/1764342000000-v3-1-0.csv',
  ],
  positionals: [1, 2],
  options: {
    model: { type: 'string', description: 'the model whose feedback to list', valueName: 'NAME' },
    rows: { type: 'boolean', description: 'list: also print each unlabelled row' },
    label: { type: 'string', description: 'label: the class for the rows', valueName: 'CLASS' },
    ids: {
      type: 'string',
      description: 'label: only these feedback_id values (comma-separated)',
      valueName: 'ID,..',
    },
    labels: {
      type: 'string',
      description: 'label: a CSV with feedback_id and label columns',
      valueName: 'FILE',
    },
    'data-dir': dataDirOption,
  },
  async run(ctx: CommandContext<Values>) {
    const [action, key] = ctx.positionals;
    if (action === 'list') {
      if (key !== undefined) throw new UsageError(`unexpected argument '${key}': ${feedbackCommand.usage}`);
      return list(ctx);
    }
    if (action === 'label' || action === 'accept') {
      if (key === undefined)
        throw new UsageError(`${action} needs the feedback KEY: ${feedbackCommand.usage}`);
      return action === 'label' ? label(ctx, key) : accept(ctx, key);
    }
    throw new UsageError(`unknown action '${action}': use 'list', 'label' or 'accept'`);
  },
});

async function list({ values, out }: CommandContext<Values>): Promise<number> {
  const model = modelOption(values, true);
  attachToLocalStack(String(values['data-dir']));
  const feedback = await readModelFeedback(s3Client(), buckets.datasets.localName, model);
  if (values.json) {
    out(
      JSON.stringify({
        model,
        labelled: feedback.labelled,
        unlabelled: feedback.unlabelled,
        files: feedback.tables.map(({ key, labelled, unlabelled, reviewed }) => ({
          key,
          labelled,
          unlabelled,
          reviewed,
        })),
        skipped: feedback.skipped,
      }),
    );
    return 0;
  }
  if (feedback.tables.length === 0) {
    out(
      `no hard examples for ${model} yet (gateways upload them under ${datasetKeys.feedbackPrefix(model)})`,
    );
    return 0;
  }
  for (const { key, reason } of feedback.skipped) out(`${key}  skipped: ${reason}`);
  for (const { key, table, labelled, unlabelled, reviewed } of feedback.tables) {
    out(
      `${key}  ${labelled} labelled, ${unlabelled} unlabelled, ${reviewed ? 'reviewed' : 'awaiting review'}`,
    );
    if (!values.rows) continue;
    const at = (name: string) => table.header.indexOf(name);
    for (const row of table.rows)
      if ((row[table.header.length - 1] ?? '') === '')
        out(
          `  ${row[at('feedback_id')]}  predicted ${row[at('feedback_predicted')]} (${row[at('feedback_confidence')]})`,
        );
  }
  out(
    `labelled rows of reviewed files join the next training run; ${feedback.unlabelled} rows need a label (edgeloop feedback label KEY --label CLASS; an anomaly model's false alarms: --label normal), and a gateway's own labels need review (edgeloop feedback accept KEY)`,
  );
  return 0;
}

async function label({ values, out }: CommandContext<Values>, key: string): Promise<number> {
  const one = typeof values.label === 'string' ? values.label : undefined;
  const file = typeof values.labels === 'string' ? values.labels : undefined;
  if ((one === undefined) === (file === undefined))
    throw new UsageError('give either --label CLASS or --labels FILE.csv');
  if (file && values.ids) throw new UsageError('--ids goes with --label, not with --labels');
  const byId = file ? readLabelsFile(file) : idsMap(values.ids, one);
  const { s3, bucket, table, column } = await openFeedbackFile(values, key);
  const result = applyLabels(table, { ...(byId ? { byId } : {}), ...(byId ? {} : { all: one }) });
  if (result.changed > 0) await writeFeedbackTable(s3, bucket, key, result.table);
  // Labelled by a person: this is the reviewed copy training reads.
  await writeFeedbackTable(s3, bucket, datasetKeys.reviewedFeedbackKey(key), result.table);
  const counts = countLabelled(result.table);
  if (values.json) out(JSON.stringify({ key, changed: result.changed, reviewed: true, ...counts }));
  else
    out(
      `${key}: ${result.changed} rows labelled (${column}); ${counts.labelled} labelled, ${counts.unlabelled} unlabelled; reviewed`,
    );
  return 0;
}

/** Takes the file's labels (the gateway's, or earlier ones) as reviewed, exactly as they are now. */
async function accept({ values, out }: CommandContext<Values>, key: string): Promise<number> {
  const { s3, bucket, table } = await openFeedbackFile(values, key);
  await writeFeedbackTable(s3, bucket, datasetKeys.reviewedFeedbackKey(key), table);
  const counts = countLabelled(table);
  if (values.json) out(JSON.stringify({ key, reviewed: true, ...counts }));
  else
    out(
      `${key}: accepted; its ${counts.labelled} labelled rows join the next training run (${counts.unlabelled} unlabelled rows do not)`,
    );
  return 0;
}

/** A gateway's feedback file in the local stack's datasets bucket, size-checked and read. */
async function openFeedbackFile(values: Values, key: string) {
  if (!key.startsWith('feedback/') || !key.endsWith('.csv'))
    throw new UsageError(
      `'${key}' is not a feedback key: list them with edgeloop feedback list --model NAME`,
    );
  attachToLocalStack(String(values['data-dir']));
  const s3 = s3Client();
  const bucket = buckets.datasets.localName;
  const model = key.split('/')[1] ?? '';
  const object = (await listFeedbackObjects(s3, bucket, model)).find((listed) => listed.key === key);
  if (!object)
    throw new EdgeloopError(
      `no feedback file s3://${bucket}/${key}: list them with edgeloop feedback list --model ${model}`,
    );
  const tooBig = oversized(object);
  if (tooBig) throw new EdgeloopError(tooBig);
  const table = await readFeedbackTable(s3, bucket, key);
  const column = labelColumnOf(table);
  if (!column) throw new EdgeloopError(`s3://${bucket}/${key} has no label column: is it a feedback file?`);
  return { s3, bucket, table, column };
}

function idsMap(ids: string | boolean | undefined, labelValue: string | undefined) {
  if (typeof ids !== 'string' || labelValue === undefined) return undefined;
  return new Map(
    ids
      .split(',')
      .map((id) => id.trim())
      .filter(Boolean)
      .map((id) => [id, labelValue] as const),
  );
}

/** A labels CSV: a feedback_id (or id) column and a label column. */
function readLabelsFile(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new EdgeloopError(`cannot read the labels file ${file}: ${errorMessage(error)}`);
  }
  const [header = [], ...rows] = parseCsv(text, sniffDelimiter(text));
  const names = header.map((name) => name.trim());
  const idAt = names.includes('feedback_id') ? names.indexOf('feedback_id') : names.indexOf('id');
  const labelAt = names.indexOf('label');
  if (idAt < 0 || labelAt < 0)
    throw new EdgeloopError(
      `${file} needs a header with feedback_id (or id) and label columns, e.g. "feedback_id,label"`,
    );
  const labels = new Map<string, string>();
  for (const row of rows) {
    const id = row[idAt]?.trim();
    const value = row[labelAt]?.trim();
    if (id && value) labels.set(id, value);
  }
  if (labels.size === 0) throw new EdgeloopError(`${file} has no rows with both an id and a label`);
  return labels;
}
