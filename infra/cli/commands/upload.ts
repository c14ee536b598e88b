import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { s3Client } from '../../../shared/aws.ts';
import { ModelName } from '../../../shared/schemas.ts';
import { buckets, datasetKeys } from '../../../shared/topology.ts';
import { attachToLocalStack } from '../../local/attach.ts';
import { dataDirOption, defineCommand, requiredString, UsageError } from '../command.ts';
import { existingFile } from '../files.ts';

export const uploadCommand = defineCommand({
  name: 'upload',
  summary: 'put a dataset CSV into the local datasets bucket, which starts a training run',
  usage: 'edgeloop upload FILE --model NAME [--data-dir DIR] [--json]',
  examples: ['edgeloop upload readings.csv --model pumps'],
  options: {
    model: { type: 'string', description: 'the model this dataset trains', valueName: 'NAME' },
    'data-dir': dataDirOption,
  },
  positionals: [1, 1],
  async run({ values, positionals, out }) {
    const file = existingFile(positionals[0] ?? '', 'FILE');
    const model = requiredString(values, 'model');
    if (!ModelName.safeParse(model).success) {
      throw new UsageError(`--model '${model}' is not a valid name: use a-z, 0-9 and -, up to 63 characters`);
    }
    attachToLocalStack(String(values['data-dir']));
    const body = await readFile(file);
    const key = datasetKeys.dataset(
      model,
      basename(file).endsWith('.csv') ? basename(file) : `${basename(file)}.csv`,
    );
    const put = await s3Client().send(
      new PutObjectCommand({
        Bucket: buckets.datasets.localName,
        Key: key,
        Body: body,
        ContentType: 'text/csv',
      }),
    );
    const result = {
      bucket: buckets.datasets.localName,
      key,
      bytes: body.length,
      etag: put.ETag?.replaceAll('"', ''),
    };
    out(
      values.json ? JSON.stringify(result) : `uploaded ${body.length} bytes to s3://${result.bucket}/${key}`,
    );
    return 0;
  },
});
