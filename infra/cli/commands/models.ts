import { listRegistry } from '../../../functions/training/registry.ts';
import { dynamoClient } from '../../../shared/aws.ts';
import { dataDirOption, defineCommand, modelOption } from '../../../shared/cli/command.ts';
import type { LabelledMetrics, RegistryItem } from '../../../shared/schemas.ts';
import { describeWindow } from '../../../shared/timeseries/spec.ts';
import { tables } from '../../../shared/topology.ts';
import { attachToLocalStack } from '../../local/attach.ts';

export const modelsCommand = defineCommand({
  name: 'models',
  summary: 'list model versions in the registry: status, accuracy, gate result',
  usage: 'edgeloop models [--model NAME] [--data-dir DIR] [--json]',
  examples: ['edgeloop models', 'edgeloop models --model pump --json'],
  options: {
    model: { type: 'string', description: 'only this model', valueName: 'NAME' },
    'data-dir': dataDirOption,
  },
  async run({ values, out }) {
    const model = modelOption(values, false);
    attachToLocalStack(String(values['data-dir']));
    {
      const items = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, model);
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
    }
  },
});

export function formatRegistry(items: readonly RegistryItem[]): string[] {
  const rows = items.map((item) => [
    item.model,
    `v${item.version}`,
    item.status,
    scoreText(item.metrics?.accuracy, item.metrics?.regression?.rmse, item.metrics?.anomaly?.falseAlarmRate),
    scoreText(item.baselineAccuracy, item.baselineRmse),
    item.updatedAt.replace(/\.\d+Z$/, 'Z'),
    item.status === 'released' ? '' : (item.reason ?? ''),
  ]);
  // Regression versions are scored by RMSE: the column then says SCORE.
  const scored = items.some((item) => item.metrics?.regression || item.metrics?.anomaly)
    ? 'SCORE'
    : 'ACCURACY';
  const header = ['MODEL', 'VERSION', 'STATUS', scored, 'BASELINE', 'UPDATED', 'REASON'];
  // Windowed versions get a WINDOW column (before REASON, which runs to the end of the line).
  if (items.some((item) => item.window)) {
    header.splice(6, 0, 'WINDOW');
    items.forEach((item, i) => {
      rows[i]?.splice(6, 0, item.window ? describeWindow(item.window) : 'rows');
    });
  }
  // Anomaly versions scored against labelled event ranges get an EVENTS column (before REASON).
  if (items.some((item) => item.metrics?.anomaly?.labelled)) {
    header.splice(header.length - 1, 0, 'EVENTS');
    items.forEach((item, i) => {
      rows[i]?.splice(rows[i].length - 1, 0, eventsText(item.metrics?.anomaly?.labelled));
    });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Labelled event ranges' figures: "recall 0.95 prec 0.80 F1 0.87 delay 12m". */
function eventsText(labelled: LabelledMetrics | undefined): string {
  if (!labelled) return '-';
  const delay =
    labelled.medianDelayMs === undefined ? '-' : `${Math.round(labelled.medianDelayMs / 60_000)}m`;
  return `recall ${labelled.recall.toFixed(2)} prec ${labelled.precision.toFixed(2)} F1 ${labelled.f1.toFixed(2)} delay ${delay}`;
}

/**
 * A classifier's accuracy ("0.912"), a regression model's RMSE ("rmse 3.41"), or an anomaly
 * model's share of held-out normal results over its threshold ("over 2.6%").
 */
function scoreText(accuracy: number | undefined, rmse: number | undefined, overThreshold?: number): string {
  if (overThreshold !== undefined) return `over ${(overThreshold * 100).toFixed(1)}%`;
  if (rmse !== undefined) return `rmse ${Number(rmse.toPrecision(4))}`;
  return accuracy !== undefined ? accuracy.toFixed(3) : '-';
}
