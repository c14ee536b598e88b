/**
 * End to end in a real browser: the live demo runs in this process (local stack, training,
 * machines publishing to a site broker, two gateways reading them over MQTT, aggregators)
 * with its dashboard; chromium opens the page and the numbers it shows
 * are held against `edgeloop stats --json`, run as a child process on the demo's data dir.
 */
import { mkdir } from 'node:fs/promises';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBin } from '../../bench/support/cli.ts';
import { eventually } from '../../bench/support/thing-client.ts';
import type { ErrorsView, ModelStats } from '../../functions/aggregation/queries.ts';
import type { DashboardSnapshot } from '../../infra/local/dashboard/snapshot.ts';
import { type DemoRun, runDemo } from '../../infra/local/demo.ts';
import type { InvokedEvent } from '../../infra/local/stack.ts';
import { iotDataClient } from '../../shared/aws.ts';
import { dashboardPanels, topicFor } from '../../shared/topology.ts';
import { chromiumMissingReason, type OpenDashboard, openDashboard } from './browser.ts';

const ARTIFACTS = 'test-artifacts';
const MODEL = 'demo-sensors';
const missing = chromiumMissingReason();
if (missing) console.log(missing);

/** `edgeloop ARGS --json` against the demo's data dir: the last stdout line, parsed. */
async function cliJson<T>(dataDir: string, args: string[]): Promise<T> {
  const { code, stdout, stderr } = await runBin([...args, '--json', '--data-dir', dataDir], 30_000);
  if (code !== 0) throw new Error(`edgeloop ${args.join(' ')} exited ${code}: ${stderr}`);
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as T;
}

const en = (n: number) => n.toLocaleString('en-US');

describe.runIf(process.env.CI === 'true')('demo dashboard browser test in CI', () => {
  it('has chromium, so the demo dashboard test really runs', () => {
    expect(missing).toBeUndefined();
  });
});

describe.runIf(!missing)('the dashboard during the demo, in chromium', () => {
  let run: DemoRun | undefined;
  let dashboard: OpenDashboard | undefined;

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    // Live: simulated machines publish to the site broker, and the gateways read them over MQTT.
    run = await runDemo({
      devices: 2,
      readingsPerDevice: 300,
      dashboard: true,
      model: MODEL,
      live: { ratePerSec: 300 },
    });
    // One malformed result batch, so the errors panel has a real reason to show.
    let handled = false;
    run.stack.events.on('invoked', ({ fn }: InvokedEvent) => {
      if (fn === 'aggregateResults') handled = true;
    });
    await iotDataClient().send(
      new PublishCommand({
        topic: topicFor('results', { thing: 'gw-1' }),
        qos: 1,
        payload: new TextEncoder().encode('{"batchId": '),
      }),
    );
    await eventually(() => handled, 10_000, 'the results aggregator to set the message aside');
    await run.stack.idle();
  }, 120_000);

  afterAll(async () => {
    await dashboard?.close();
    await run?.stop();
  });

  it('shows every panel with the numbers `edgeloop stats` reports for the same tables', async () => {
    // Prepare
    const demo = run as DemoRun;
    const url = demo.summary.dashboard ?? '';
    const [stats, errors] = await Promise.all([
      cliJson<ModelStats>(demo.summary.dataDir, ['stats', '--model', MODEL, '--since', '1h']),
      cliJson<{ errors: ErrorsView }>(demo.summary.dataDir, ['stats', '--errors', '--since', '1h']),
    ]);

    // Act
    dashboard = await openDashboard(url, { viewport: { width: 1280, height: 800 } });
    await dashboard.waitForRender();
    const page = dashboard.page;
    const served = (await page.evaluate(async () =>
      (await fetch('/api/snapshot')).json(),
    )) as DashboardSnapshot;
    const kpi = async (id: string) =>
      (await page.locator(`[data-kpi="${id}"] .kpi-value`).textContent()) ?? '';
    const panels = await page.$$eval('[data-panel]', (nodes) =>
      nodes.map((n) => ({
        id: (n as HTMLElement).dataset.panel ?? '',
        points: Number((n as HTMLElement).dataset.points),
      })),
    );
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-demo.png`, fullPage: true });

    // Assess: the demo really produced data, and the CLI sees it
    expect(stats.inferences).toBe(demo.summary.results.aggregated);
    expect(stats.inferences).toBeGreaterThan(0);
    expect(errors.errors.count).toBeGreaterThan(0);

    // Assess: key figures on the page match the CLI
    expect(await kpi('inferences')).toBe(en(stats.inferences));
    expect(await kpi('released')).toBe(`v${demo.summary.version}`);
    expect(await kpi('devices')).toBe('2 / 2');
    expect(await kpi('errors')).toBe(en(errors.errors.count));

    // Assess: per version, the page's series add up to the CLI's statistics
    expect(served.versions.map((v) => v.version)).toEqual(stats.versions.map((v) => v.version));
    for (const [i, series] of served.versions.entries()) {
      const cli = stats.versions[i];
      expect(series.minutes.reduce((n, p) => n + p.inferences, 0)).toBe(cli?.inferences);
      expect(series.classMix).toEqual(cli?.classCounts);
      expect(series.confidence.mean).toBeCloseTo(cli?.confidenceMean ?? Number.NaN, 9);
    }
    const reasons = await page.locator('[data-panel="errors"] .reason').allTextContents();
    expect(reasons[0]).toBe(errors.errors.latest[0]?.reason);

    // Assess: every panel draws data (the errors panel shows its count and reasons), except the
    // regression and anomaly views: the demo's model is a classifier, and they say it is not shown.
    expect(panels.map((p) => p.id)).toEqual(Object.keys(dashboardPanels));
    for (const panel of panels.filter((p) => p.id !== 'prediction' && p.id !== 'anomaly'))
      expect(panel.points, `${panel.id} shows data`).toBeGreaterThan(0);
    for (const id of ['prediction', 'anomaly'])
      expect(await page.locator(`[data-panel="${id}"] .not-applicable`).textContent()).toMatch(
        /^\d+ classifier version\(s\) not shown: they answer classes$/,
      );
    expect(dashboard.foreignRequests).toEqual([]);
    expect(dashboard.errors).toEqual([]);
  });

  it('fits the same live data on a 390x844 phone screen', async () => {
    // Prepare
    const opened = dashboard as OpenDashboard;

    // Act
    await opened.page.setViewportSize({ width: 390, height: 844 });
    await opened.waitForRender((await opened.waitForRender()) + 1);
    const size = await opened.page.evaluate(() => ({
      scrollWidth: (document.scrollingElement ?? document.documentElement).scrollWidth,
      widest: Math.max(
        ...[...document.querySelectorAll('.panel, .kpi')].map((n) => n.getBoundingClientRect().right),
      ),
    }));
    await opened.page.screenshot({ path: `${ARTIFACTS}/dashboard-demo-390x844.png`, fullPage: true });

    // Assess
    expect(size.scrollWidth).toBeLessThanOrEqual(390);
    expect(size.widest).toBeLessThanOrEqual(390);
    expect(opened.errors).toEqual([]);
  });
});
