import { defineCommand, intOption, UsageError } from '../../../shared/cli/command.ts';
import { TaskSchema } from '../../../shared/schemas.ts';
import { type DemoPhase, type DemoProgress, type DemoSummary, runDemo } from '../../local/demo.ts';
import { existingFile } from '../files.ts';
import {
  type Activity,
  activity,
  colourEnabled,
  formatBytes,
  type Progress,
  palette,
  progressBar,
  renderTable,
} from '../ui.ts';
import { windowFromFlags, windowOptions } from '../window-options.ts';

export const demoCommand = defineCommand({
  name: 'demo',
  summary: 'the whole loop in one process: dataset -> model -> gateways -> aggregated results',
  usage:
    'edgeloop demo [--devices N] [--dataset FILE] [--label COL] [--task regression | --anomaly] [--readings N] [--live [--rate N]] [--keep] [--no-dashboard] [--json] [--windows | --time COL [--series COL] --window-ms N [--stride-ms N] [--frequency-hz N] [--features raw|spectral]]',
  examples: [
    'edgeloop demo',
    'edgeloop demo --keep          # then open the dashboard URL it prints',
    'edgeloop demo --devices 3 --json',
    'edgeloop demo --dataset pumps.csv --label state',
    'edgeloop demo --windows',
    'edgeloop demo --task regression   # energy per cycle: a number, not a class',
    'edgeloop demo --anomaly           # pumps without labels: events, which sensors, since when',
    'edgeloop demo --live --keep   # machines publish over MQTT; watch the dashboard',
    'edgeloop demo --dataset fans.csv --label state --time ts --series machine --window-ms 1000 --stride-ms 500',
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
      description: 'readings each gateway replays (default 500; windowed: every reading of the replay file)',
      valueName: 'N',
    },
    model: {
      type: 'string',
      description: 'model name (default demo-sensors; windowed: demo-vibration)',
      valueName: 'NAME',
    },
    keep: {
      type: 'boolean',
      description: 'keep the local stack and its dashboard running after the summary (Ctrl-C stops it)',
    },
    'no-dashboard': { type: 'boolean', description: 'do not serve the local dashboard page' },
    live: {
      type: 'boolean',
      description:
        'live readings: simulated machines publish to a site broker and the gateways read them over MQTT',
    },
    rate: {
      type: 'string',
      description: "with --live: readings per second each gateway's machines publish (default 100)",
      valueName: 'N',
    },
    task: {
      type: 'string',
      description:
        'regression: a model that answers a number (generated energy per machine cycle; gateways replay cycles it never saw); anomaly: see --anomaly',
      valueName: 'TASK',
    },
    anomaly: {
      type: 'boolean',
      description:
        "the anomaly demo (--task anomaly): 30-minute windows of pumps' normal operation, no labels; gateways replay a day of pumps it never saw, with faults, and report events",
    },
    windows: {
      type: 'boolean',
      description:
        'the windowed demo: generated 3-axis vibration, 1 s windows every 0.5 s, gateways replay machines the model never saw',
    },
    ...windowOptions,
    features: {
      type: 'string',
      description: 'with --time: what the windowed model sees, spectral or raw',
      valueName: 'KIND',
    },
  },
  async run({ values, out, err }) {
    const devices = intOption(values, 'devices') ?? 3;
    const readings = intOption(values, 'readings');
    const datasetFile =
      values.dataset === undefined ? undefined : existingFile(String(values.dataset), '--dataset');
    const quiet = values.quiet === true;
    const window =
      windowFromFlags(values) ??
      (values.windows === true ? { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 } : undefined);
    const task =
      values.anomaly === true
        ? 'anomaly'
        : values.task === undefined
          ? undefined
          : TaskSchema.safeParse(values.task).data;
    if (values.task !== undefined && !TaskSchema.safeParse(values.task).success)
      throw new UsageError(`--task is classification, regression or anomaly, got '${String(values.task)}'`);
    if (values.anomaly === true && values.task !== undefined && values.task !== 'anomaly')
      throw new UsageError(`--anomaly is --task anomaly; it cannot go with --task ${String(values.task)}`);
    const view = new DemoView(err, quiet);
    // Windowed and anomaly demos replay their whole file (a day of pumps, machines never seen).
    const readingsPerDevice = readings ?? (window || task === 'anomaly' ? undefined : 500);
    const run = await runDemo({
      devices,
      ...(readingsPerDevice !== undefined ? { readingsPerDevice } : {}),
      model:
        typeof values.model === 'string'
          ? values.model
          : window
            ? 'demo-vibration'
            : task === 'regression'
              ? 'demo-energy'
              : task === 'anomaly'
                ? 'demo-pumps'
                : 'demo-sensors',
      ...(task ? { task } : {}),
      ...(datasetFile ? { datasetFile } : {}),
      ...(typeof values.label === 'string' ? { label: values.label } : {}),
      ...(window ? { window } : {}),
      dashboard: values['no-dashboard'] !== true,
      ...(values.live === true ? { live: { ratePerSec: intOption(values, 'rate') ?? 100 } } : {}),
      onPhase: (phase, detail) => view.phase(phase, detail),
      onProgress: (progress) => view.progress(progress),
    }).catch((error: unknown) => {
      view.abandon();
      throw error;
    });
    try {
      if (values.json) out(JSON.stringify(run.summary));
      else
        for (const line of summaryTable(run.summary, {
          colour: colourEnabled(process.stdout),
          kept: values.keep === true,
        }))
          out(line);
      if (values.keep) {
        const where = run.summary.dashboard ? `; dashboard at ${run.summary.dashboard}` : '';
        err(`local stack kept running on ${run.summary.dataDir}${where} (Ctrl-C stops it)`);
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

/** The demo's progress on stderr: a line per phase, a bar (or spinner) within upload, train, rollout. */
class DemoView {
  #phaseStarted = Date.now();
  #upload?: Progress;
  #train?: Activity;
  #rollout?: Progress;
  readonly #colour = palette(colourEnabled(process.stderr));

  constructor(
    private readonly err: (line: string) => void,
    private readonly quiet: boolean,
  ) {}

  phase(phase: DemoPhase, detail: string) {
    const now = Date.now();
    const elapsed = now - this.#phaseStarted;
    this.#phaseStarted = now;
    if (phase === 'train') this.#upload?.finish();
    if (phase === 'results') this.#rollout?.finish(`in ${seconds(elapsed)}`);
    if (this.quiet) return;
    this.err(`${this.#colour.cyan(`[${phase.padEnd(7)}]`)} ${detail}`);
  }

  /** The demo failed: close any half-drawn progress line before the error is printed. */
  abandon() {
    for (const step of [this.#upload, this.#train, this.#rollout]) step?.abandon();
  }

  progress(event: DemoProgress) {
    const silent = this.quiet;
    if (event.phase === 'upload') {
      this.#upload ??= progressBar({
        label: 'upload',
        total: event.total,
        format: (sent, total) => `${formatBytes(sent)} / ${formatBytes(total)}`,
        silent,
      });
      this.#upload.update(event.sent);
    } else if (event.phase === 'train') {
      this.#train ??= activity({ label: 'train', silent });
      const run = event.version === undefined ? 'waiting for the run' : `v${event.version} ${event.status}`;
      const accuracy = event.accuracy === undefined ? '' : `, test accuracy ${percent(event.accuracy)}`;
      if (event.status === 'training' || event.status === undefined)
        this.#train.update(`${run}, ${seconds(event.elapsedMs)}`);
      else this.#train.finish(`${run} after ${seconds(event.elapsedMs)}${accuracy}`);
    } else {
      this.#rollout ??= progressBar({
        label: 'rollout',
        total: event.total,
        format: (serving, total) => `${serving}/${total} gateways on v${event.version}`,
        silent,
      });
      this.#rollout.update(event.serving);
    }
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const percent = (rate: number) => `${(rate * 100).toFixed(1)}%`;

export function summaryTable(
  summary: DemoSummary,
  options: { colour?: boolean; kept?: boolean } = {},
): string[] {
  const c = palette(options.colour === true);
  const rows: string[][] = [
    ['model', `${summary.model} v${summary.version}`],
    summary.anomaly
      ? [
          'false alarms',
          `${summary.metrics.falseAlarmsPerDay?.toFixed(2) ?? '-'} a day per pump on held-out normal data (the budget: 1)`,
        ]
      : summary.metrics.rmse !== undefined
        ? [
            'RMSE',
            `${summary.metrics.rmse.toPrecision(4)} on the held-out test split (R² ${summary.metrics.r2?.toFixed(3)})`,
          ]
        : ['accuracy', `${percent(summary.metrics.accuracy)} on the held-out test split`],
    [
      'gateways',
      summary.devices
        .map((d) => `${d.thing} ${d.modelVersion === null ? '(no model)' : `v${d.modelVersion}`}`)
        .join(', '),
    ],
    ['results', `published ${summary.results.published}, aggregated ${summary.results.aggregated}`],
    ...(summary.window
      ? [
          [
            'windows',
            `${summary.window.samples} samples at ${Number(summary.window.frequencyHz.toPrecision(3))} Hz, every ${summary.window.stride} samples (${summary.window.channels.join(', ')}); one result per window`,
          ],
        ]
      : []),
    ...(summary.anomaly
      ? [
          [
            'anomaly events',
            `${summary.anomaly.events} found by the gateways and stored (${summary.anomaly.open} still open); ${summary.anomaly.anomalyRate === null ? '-' : percent(summary.anomaly.anomalyRate)} of results over the threshold ('edgeloop events' lists them)`,
          ],
        ]
      : []),
    ...(summary.liveRmse !== undefined && summary.liveRmse !== null
      ? [
          [
            'live RMSE',
            `${summary.liveRmse.toPrecision(4)} on the gateways' readings that carried their true value`,
          ],
        ]
      : []),
    ...(summary.window && summary.liveAccuracy !== undefined && summary.liveAccuracy !== null
      ? [['live accuracy', `${percent(summary.liveAccuracy)} on the gateways' labelled readings`]]
      : []),
    [
      'timings',
      `train ${seconds(summary.timings.trainMs)}, rollout ${seconds(summary.timings.rolloutMs)}, total ${seconds(summary.timings.totalMs)}`,
    ],
  ];
  if (summary.dashboard)
    rows.push([
      'dashboard',
      options.kept
        ? c.cyan(summary.dashboard)
        : `closed with the demo (run 'edgeloop demo --keep' to browse it)`,
    ]);
  return [
    c.bold('edgeloop demo: the loop closed'),
    ...renderTable(rows.map(([name, value]) => [c.dim(name ?? ''), value ?? ''])),
  ];
}
