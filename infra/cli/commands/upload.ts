import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { buckets, datasetKeys } from '../../../shared/topology.ts';
import { attachToLocalStack } from '../../local/attach.ts';
import { putWithProgress } from '../../local/upload.ts';
import { dataDirOption, defineCommand, modelOption } from '../command.ts';
import { existingFile } from '../files.ts';
import { formatBytes, progressBar } from '../ui.ts';

export const uploadCommand = defineCommand({
  name: 'upload',
  summary: 'put a dataset CSV into the local datasets bucket, which starts a training run',
  usage: 'edgeloop upload FILE --model NAME [--data-dir DIR] [--json]',
  examples: [
    'edgeloop upload readings.csv --model pumps',
    'edgeloop upload readings.csv --model pumps --json',
  ],
  options: {
    model: { type: 'string', description: 'the model this dataset trains', valueName: 'NAME' },
    'data-dir': dataDirOption,
  },
  positionals: [1, 1],
  async run({ values, positionals, out }) {
    const file = existingFile(positionals[0] ?? '', 'FILE');
    const model = modelOption(values, true);
    attachToLocalStack(String(values['data-dir']));
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
