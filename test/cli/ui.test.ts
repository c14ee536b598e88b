import { describe, expect, it } from 'vitest';
import { summaryTable } from '../../infra/cli/commands/demo.ts';
import {
  activity,
  colourEnabled,
  formatBytes,
  palette,
  progressBar,
  renderTable,
  stripAnsi,
  type TermStream,
} from '../../infra/cli/ui.ts';
import type { DemoSummary } from '../../infra/local/demo.ts';

/** A stream that records what was written; a terminal of 80 columns when `tty`. */
function recorder(tty: boolean): TermStream & { text: () => string } {
  const chunks: string[] = [];
  return {
    isTTY: tty,
    columns: tty ? 80 : undefined,
    write: (text: string) => chunks.push(text),
    text: () => chunks.join(''),
  };
}

describe('colour', () => {
  it('is on only for a terminal without NO_COLOR', () => {
    // Act
    const cases = [
      colourEnabled({ isTTY: true }, {}),
      colourEnabled({ isTTY: true }, { NO_COLOR: '' }),
      colourEnabled({ isTTY: false }, {}),
      colourEnabled({}, {}),
    ];

    // Assess
    expect(cases).toEqual([true, false, false, false]);
  });

  it('leaves text untouched when off, and wraps it in SGR codes when on', () => {
    // Act
    const off = palette(false).red('failed');
    const on = palette(true).red('failed');

    // Assess
    expect(off).toBe('failed');
    expect(on).toBe('\u001b[31mfailed\u001b[39m');
    expect(stripAnsi(on)).toBe('failed');
  });
});

describe('progress bar', () => {
  it('redraws one line in place on a terminal and ends it with a newline', () => {
    // Prepare
    const stream = recorder(true);
    const bar = progressBar({ label: 'upload', total: 200, stream, env: { NO_COLOR: '1' } });

    // Act
    bar.update(50);
    bar.update(200, 'fast');
    bar.finish();
    const frames = stream.text().split('\r\u001b[2K').filter(Boolean);

    // Assess
    expect(frames).toHaveLength(3);
    expect(frames[0]).toBe(`upload   ${'█'.repeat(6)}${'░'.repeat(18)}  25% 50/200`);
    expect(frames[1]).toBe(`upload   ${'█'.repeat(24)} 100% 200/200 fast`);
    expect(frames[2]?.endsWith('\n')).toBe(true);
    expect(stream.text().split('\n')).toHaveLength(2);
  });

  it('writes only the final line where output is not a terminal, at the amount reached', () => {
    // Prepare
    const stream = recorder(false);
    const bar = progressBar({
      label: 'train',
      total: 60,
      stream,
      format: (epoch, epochs) => `epoch ${epoch}/${epochs}`,
    });

    // Act
    for (let epoch = 1; epoch <= 23; epoch++) bar.update(epoch, `loss ${1 / epoch}`);
    bar.finish('stopped early');

    // Assess
    expect(stream.text()).toBe('train: epoch 23/60 stopped early\n');
  });

  it('writes nothing at all when silent (--quiet, --json)', () => {
    // Prepare
    const stream = recorder(true);
    const bar = progressBar({ label: 'upload', total: 10, stream, silent: true });
    const spinner = activity({ label: 'train', stream, silent: true });

    // Act
    bar.update(5);
    bar.finish();
    spinner.update('v1 training');
    spinner.finish('v1 released');

    // Assess
    expect(stream.text()).toBe('');
  });

  it('clips a terminal line to the terminal width so it never wraps', () => {
    // Prepare
    const stream = recorder(true);
    const bar = progressBar({ label: 'rollout', total: 3, stream, env: { NO_COLOR: '1' } });

    // Act
    bar.update(1, 'x'.repeat(200));
    const frame = stream.text().replace('\r\u001b[2K', '');

    // Assess
    expect(frame.length).toBe(79);
  });
});

describe('activity', () => {
  it('spins on a terminal and prints one line elsewhere', () => {
    // Prepare
    const tty = recorder(true);
    const log = recorder(false);

    // Act
    for (const stream of [tty, log]) {
      const step = activity({ label: 'train', stream, env: { NO_COLOR: '1' } });
      step.update('v1 training, 0.5 s');
      step.finish('v1 released after 2.0 s');
    }

    // Assess
    expect(tty.text()).toContain('v1 training, 0.5 s');
    expect(tty.text().endsWith('✔ v1 released after 2.0 s\n')).toBe(true);
    expect(log.text()).toBe('train: v1 released after 2.0 s\n');
  });
});

describe('tables', () => {
  it('aligns columns, right-aligns numbers and rules the header', () => {
    // Act
    const lines = renderTable(
      [
        ['gw-1', 'v2', '12'],
        ['gateway-10', 'v1', '3'],
      ],
      { header: ['thing', 'version', 'outbox'], alignRight: [2] },
    );

    // Assess
    expect(lines).toEqual([
      'thing       version  outbox',
      '──────────  ───────  ──────',
      'gw-1        v2           12',
      'gateway-10  v1            3',
    ]);
  });

  it('measures cells without their colour codes', () => {
    // Act
    const lines = renderTable([
      [palette(true).bold('a'), 'x'],
      ['bbb', 'y'],
    ]);

    // Assess
    expect(lines.map(stripAnsi)).toEqual(['a    x', 'bbb  y']);
  });

  it('formats byte counts for people', () => {
    // Act / Assess
    expect([formatBytes(512), formatBytes(93_900), formatBytes(5 * 1024 * 1024)]).toEqual([
      '512 B',
      '91.7 KiB',
      '5.0 MiB',
    ]);
  });
});

describe('demo summary table', () => {
  const summary: DemoSummary = {
    model: 'demo-sensors',
    version: 2,
    metrics: { accuracy: 0.9213 },
    devices: [
      { thing: 'gw-1', modelVersion: 2 },
      { thing: 'gw-2', modelVersion: null },
    ],
    results: { published: 600, aggregated: 600 },
    timings: { trainMs: 2100, rolloutMs: 80, totalMs: 3400 },
    dataDir: '/tmp/x',
    dashboard: 'http://127.0.0.1:4000/',
  };

  it('lists the model, accuracy, gateways, results, timings and the dashboard when kept', () => {
    // Act
    const lines = summaryTable(summary, { kept: true });

    // Assess
    expect(lines).toEqual([
      'edgeloop demo: the loop closed',
      'model      demo-sensors v2',
      'accuracy   92.1% on the held-out test split',
      'gateways   gw-1 v2, gw-2 (no model)',
      'results    published 600, aggregated 600',
      'timings    train 2.1 s, rollout 0.1 s, total 3.4 s',
      'dashboard  http://127.0.0.1:4000/',
    ]);
  });

  it('does not offer a dashboard URL that closed with the demo', () => {
    // Act
    const last = summaryTable(summary).at(-1);

    // Assess
    expect(last).toBe("dashboard  closed with the demo (run 'edgeloop demo --keep' to browse it)");
  });
});

describe('a failed step', () => {
  it('ends its half-drawn terminal line so the error gets its own line', () => {
    // Prepare
    const drawn = recorder(true);
    const untouched = recorder(true);
    const bar = progressBar({ label: 'rollout', total: 3, stream: drawn });
    const spinner = activity({ label: 'train', stream: untouched });

    // Act
    bar.update(1);
    bar.abandon();
    bar.finish('too late');
    spinner.abandon();

    // Assess
    expect(drawn.text().endsWith('1/3\n')).toBe(true);
    expect(untouched.text()).toBe('');
  });
});
