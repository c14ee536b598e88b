import { type DemoPhase, type DemoSummary, runDemo } from '../../local/demo.ts';
import { defineCommand, intOption } from '../command.ts';
import { existingFile } from '../files.ts';

export const demoCommand = defineCommand({
  name: 'demo',
  summary: 'the whole loop in one process: dataset -> model -> gateways -> aggregated results',
  usage: 'edgeloop demo [--devices N] [--dataset FILE] [--label COL] [--readings N] [--keep] [--json]',
  examples: [
    'edgeloop demo',
    'edgeloop demo --devices 3 --json',
    'edgeloop demo --dataset pumps.csv --label state',
  ],
  options: {
    devices: { type: 'string', description: 'simulated gateways', default: '3', valueName: 'N' },
    dataset: {
      type: 'string',
      description: 'a CSV of your own (default: the generated sensor dataset)',
      valueName: 'FILE',
    },
    label: {
      type: 'string',
      description: 'label column of --dataset (default: the last column)',
      valueName: 'COL',
    },
    readings: {
      type: 'string',
      description: 'readings each gateway replays',
      default: '500',
      valueName: 'N',
    },
    model: { type: 'string', description: 'model name', default: 'demo-sensors', valueName: 'NAME' },
    keep: {
      type: 'boolean',
      description: 'keep the local stack running after the summary (Ctrl-C stops it)',
    },
  },
  async run({ values, out, err }) {
    const devices = intOption(values, 'devices') ?? 3;
    const readingsPerDevice = intOption(values, 'readings') ?? 500;
    const datasetFile =
      values.dataset === undefined ? undefined : existingFile(String(values.dataset), '--dataset');
    const quiet = values.quiet === true;
    let phaseStarted = Date.now();
    const onPhase = (phase: DemoPhase, detail: string) => {
      const now = Date.now();
      if (!quiet)
        err(`[${phase.padEnd(7)}] ${detail}${phase === 'stack' ? '' : ` (+${now - phaseStarted} ms)`}`);
      phaseStarted = now;
    };
    const run = await runDemo({
      devices,
      readingsPerDevice,
      model: String(values.model),
      ...(datasetFile ? { datasetFile } : {}),
      ...(typeof values.label === 'string' ? { label: values.label } : {}),
      onPhase,
    });
    try {
      if (values.json) out(JSON.stringify(run.summary));
      else for (const line of summaryTable(run.summary)) out(line);
      if (values.keep) {
        err(
          `local stack kept running on ${run.summary.dataDir}: ${JSON.stringify(run.stack.endpoints)} (Ctrl-C stops it)`,
        );
        await new Promise((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
      }
    } finally {
      await run.stop();
    }
    return 0;
  },
});

function summaryTable(summary: DemoSummary): string[] {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const rows: [string, string][] = [
    ['model', `${summary.model} v${summary.version}`],
    ['accuracy', `${summary.metrics.accuracy.toFixed(3)} on the held-out test split`],
    ['devices', summary.devices.map((d) => `${d.thing} v${d.modelVersion ?? '-'}`).join(', ')],
    ['results', `published ${summary.results.published}, aggregated ${summary.results.aggregated}`],
    [
      'timings',
      `train ${seconds(summary.timings.trainMs)}, rollout ${seconds(summary.timings.rolloutMs)}, total ${seconds(summary.timings.totalMs)}`,
    ],
  ];
  return rows.map(([name, value]) => `${name.padEnd(9)} ${value}`);
}
