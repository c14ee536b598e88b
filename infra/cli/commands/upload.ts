import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { s3Client } from '../../../shared/aws.ts';
import { dataDirOption, defineCommand, modelOption, UsageError } from '../../../shared/cli/command.ts';
import { describeZodError, TrainingConfigSchema } from '../../../shared/schemas.ts';
import { buckets, datasetKeys } from '../../../shared/topology.ts';
import { attachToLocalStack } from '../../local/attach.ts';
import { putWithProgress } from '../../local/upload.ts';
import { existingFile } from '../files.ts';
import { formatBytes, progressBar } from '../ui.ts';

export const uploadCommand = defineCommand({
  name: 'upload',
  summary: 'put a dataset CSV into the local datasets bucket, which starts a training run',
  usage: 'edgeloop upload FILE --model NAME [--config edgeloop.json] [--data-dir DIR] [--json]',
  examples: [
    'edgeloop upload readings.csv --model pumps',
    'edgeloop upload vibration.csv --model fans --config edgeloop.json',
    'edgeloop upload readings.csv --model pumps --json',
  ],
  options: {
    model: { type: 'string', description: 'the model this dataset trains', valueName: 'NAME' },
    config: {
      type: 'string',
      description: "the model's training config (edgeloop.json), checked and put before the dataset",
      valueName: 'FILE',
    },
    'data-dir': dataDirOption,
  },
  positionals: [1, 1],
  async run({ values, positionals, out }) {
    const file = existingFile(positionals[0] ?? '', 'FILE');
    const model = modelOption(values, true);
    const config =
      typeof values.config === 'string'
        ? await readConfig(existingFile(values.config, '--config'))
        : undefined;
    attachToLocalStack(String(values['data-dir']));
    if (config) {
      // The config first: the dataset's arrival starts the run that reads it.
      await s3Client().send(
        new PutObjectCommand({
          Bucket: buckets.datasets.localName,
          Key: datasetKeys.config(model),
          Body: config,
          ContentType: 'application/json',
        }),
      );
    }
    const body = await readFile(file);
    const key = datasetKeys.dataset(
      model,
      basename(file).endsWith('.csv') ? basename(file) : `${basename(file)}.csv`,
    );
    const bar = progressBar({
      label: 'upload',
      total: body.length,
      format: (sent, total) => `${formatBytes(sent)} / ${formatBytes(total)}`,
      silent: values.json === true || values.quiet === true,
    });
    const put = await putWithProgress({
      bucket: buckets.datasets.localName,
      key,
      body,
      contentType: 'text/csv',
      onProgress: ({ sent }) => bar.update(sent),
    });
    bar.finish();
    const result = {
      bucket: buckets.datasets.localName,
      key,
      ...(config ? { configKey: datasetKeys.config(model) } : {}),
      bytes: body.length,
      etag: put.ETag?.replaceAll('"', ''),
    };
    out(
      values.json
        ? JSON.stringify(result)
        : `uploaded ${formatBytes(body.length)} to s3://${result.bucket}/${key}: training starts now (watch it with 'edgeloop models')`,
    );
    return 0;
  },
});

/** The config file's text once it parses as a training config; a usage error says what is wrong. */
async function readConfig(file: string): Promise<string> {
  const text = await readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not JSON: ${(error as Error).message}`);
  }
  const parsed = TrainingConfigSchema.safeParse(json);
  if (!parsed.success)
    throw new UsageError(`${file} is not a valid training config: ${describeZodError(parsed.error)}`);
  return text;
}
