import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { listRegistry } from '../../../functions/training/registry.ts';
import { EdgeloopError } from '../../../shared/errors.ts';
import { ModelName, type RegistryItem } from '../../../shared/schemas.ts';
import { tables } from '../../../shared/topology.ts';
import { defineCommand, UsageError } from '../command.ts';

/**
 * The DynamoDB endpoint of the local stack on `dataDir`. Stand-in for infra/local's
 * readEndpoints(dataDir) until that module is merged: this one function is the swap point.
 */
export function localDynamoEndpoint(dataDir: string): string {
  try {
    const endpoints = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as {
      dynamodb?: unknown;
    };
    if (typeof endpoints.dynamodb === 'string') return endpoints.dynamodb;
  } catch {
    // fall through to the user-facing error
  }
  throw new EdgeloopError(`no local stack in ${resolve(dataDir)}: start one with \`edgeloop up\``);
}

export const modelsCommand = defineCommand({
  name: 'models',
  summary: 'list model versions in the registry: status, accuracy, gate result',
  usage: 'edgeloop models [--model NAME] [--data-dir DIR] [--json]',
  examples: ['edgeloop models', 'edgeloop models --model pump --json'],
  options: {
    model: { type: 'string', description: 'only this model', valueName: 'NAME' },
    'data-dir': {
      type: 'string',
      description: 'local stack data dir',
      default: '.edgeloop',
      valueName: 'DIR',
    },
  },
  async run({ values, out }) {
    const model = typeof values.model === 'string' ? values.model : undefined;
    if (model !== undefined && !ModelName.safeParse(model).success) {
      throw new UsageError(`--model '${model}' is not a valid model name: use a-z, 0-9 and -`);
    }
    const endpoint = localDynamoEndpoint(String(values['data-dir']));
    const client = new DynamoDBClient({
      endpoint,
      region: process.env.AWS_REGION ?? 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const items = await listRegistry(
        { ddb: DynamoDBDocumentClient.from(client), table: tables.registry.localName },
        model,
      );
      if (values.json) {
        out(JSON.stringify({ models: items }));
        return 0;
      }
      if (items.length === 0) {
        out(model ? `no versions of ${model} yet: upload a dataset with edgeloop upload` : 'no models yet');
        return 0;
      }
      for (const line of formatRegistry(items)) out(line);
      return 0;
    } finally {
      client.destroy();
    }
  },
});

export function formatRegistry(items: readonly RegistryItem[]): string[] {
  const rows = items.map((item) => [
    item.model,
    `v${item.version}`,
    item.status,
    item.metrics ? item.metrics.accuracy.toFixed(3) : '-',
    item.baselineAccuracy !== undefined ? item.baselineAccuracy.toFixed(3) : '-',
    item.updatedAt.replace(/\.\d+Z$/, 'Z'),
    item.status === 'released' ? '' : (item.reason ?? ''),
  ]);
  const header = ['MODEL', 'VERSION', 'STATUS', 'ACCURACY', 'BASELINE', 'UPDATED', 'REASON'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
