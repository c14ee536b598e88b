import { mkdir } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DashboardServer, startDashboard } from '../../infra/local/dashboard/server.ts';
import { type DashboardSnapshot, emptySnapshot } from '../../infra/local/dashboard/snapshot.ts';
import { dashboardPanels } from '../../shared/topology.ts';
import { chromiumMissingReason, type OpenDashboard, openDashboard } from './browser.ts';
import { buildSnapshot } from './fixtures.ts';

const ARTIFACTS = 'test-artifacts';
const missing = chromiumMissingReason();
if (missing) console.log(missing);

const totalInferences = (s: DashboardSnapshot) =>
  s.versions.reduce((n, v) => n + v.minutes.reduce((m, p) => m + p.inferences, 0), 0);

const en = (n: number) => n.toLocaleString('en-US');

/** Reads the text of one key figure. */
const kpi = async (page: OpenDashboard['page'], id: string) =>
  (await page.locator(`[data-kpi="${id}"] .kpi-value`).textContent()) ?? '';

/** The data attributes every panel carries. */
async function panelData(page: OpenDashboard['page']) {
  return page.$$eval('[data-panel]', (nodes) =>
    nodes.map((n) => ({
      id: (n as HTMLElement).dataset.panel ?? '',
      title: n.querySelector('h2')?.textContent ?? '',
      series: Number((n as HTMLElement).dataset.series),
      points: Number((n as HTMLElement).dataset.points),
    })),
  );
}

/** How many pixels of the panel's canvas are painted in exactly this colour. */
function pixelsOfColour(page: OpenDashboard['page'], panel: string, hex: string) {
  return page.$eval(
    `[data-panel="${panel}"] canvas`,
    (canvas, colour) => {
      const c = canvas as HTMLCanvasElement;
      const data = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
      const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(colour.slice(i, i + 2), 16));
      let count = 0;
      for (let i = 0; data && i < data.length; i += 4)
        if (data[i] === r && data[i + 1] === g && data[i + 2] === b && data[i + 3] === 255) count++;
      return count;
    },
    hex,
  );
}

const noHorizontalOverflow = (page: OpenDashboard['page']) =>
  page.evaluate(() => {
    const root = document.scrollingElement ?? document.documentElement;
    return { scrollWidth: root.scrollWidth, innerWidth: window.innerWidth };
  });

describe.runIf(process.env.CI === 'true')('dashboard browser test in CI', () => {
  it('has chromium, so the page tests below really run', () => {
    expect(missing).toBeUndefined();
  });
});

describe.runIf(!missing)('dashboard page in chromium', () => {
  let server: DashboardServer;
  let current: DashboardSnapshot = buildSnapshot();

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await startDashboard({ snapshot: async () => current });
  });

  afterAll(async () => {
    await server?.close();
  });

  const opened: OpenDashboard[] = [];
  const open = async (viewport = { width: 1280, height: 800 }) => {
    const dashboard = await openDashboard(server.url, { viewport });
    opened.push(dashboard);
    return dashboard;
  };

  beforeEach(() => {
    current = buildSnapshot();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((d) => d.close()));
  });

  it('renders every panel with the numbers of the snapshot it is served', async () => {
    // Prepare
    const dashboard = await open({ width: 1280, height: 800 });

    // Act
    await dashboard.waitForRender();
    const panels = await panelData(dashboard.page);

    // Assess: key figures
    expect(await kpi(dashboard.page, 'inferences')).toBe(en(totalInferences(current)));
    expect(await kpi(dashboard.page, 'devices')).toBe('3 / 4');
    // Two models are served (the classifier and a regression model): the figure names the model.
    expect(await kpi(dashboard.page, 'released')).toBe('vibration v3');
    expect(await kpi(dashboard.page, 'errors')).toBe(en(current.errors.count));

    // Assess: every panel of the shared list, titled as in CloudWatch, showing data
    expect(panels.map((p) => p.id)).toEqual(Object.keys(dashboardPanels));
    for (const panel of panels) {
      expect(panel.title).toBe(dashboardPanels[panel.id as keyof typeof dashboardPanels].title);
      expect(panel.points, `${panel.id} shows data`).toBeGreaterThan(0);
    }
    const byId = Object.fromEntries(panels.map((p) => [p.id, p]));
    const versions = current.versions.length;
    expect(byId.inferences?.series).toBe(versions);
    expect(byId.latency?.series).toBe(2 * versions); // p50 and p99 per version
    // Class views leave the regression and anomaly versions out and say so; the prediction
    // and anomaly panels show them.
    const classifiers = current.versions.filter((v) => v.task === undefined).length;
    expect(classifiers).toBe(versions - 2);
    for (const id of ['classMix', 'confidence', 'lowConfidence', 'liveAccuracy'])
      expect(byId[id]?.series, id).toBe(classifiers);
    expect(byId.prediction?.series).toBe(2); // mean and live RMSE of the one regression version
    const classNote = await dashboard.page.locator('[data-panel="classMix"] .not-applicable').textContent();
    expect(classNote).toBe(
      `1 regression version(s) not shown: they answer numbers, not classes (see ${dashboardPanels.prediction.title}); ` +
        `1 anomaly version(s) not shown: they answer a score against normal operation, not classes (see ${dashboardPanels.anomaly.title})`,
    );
    // The anomaly panel: the one anomaly version's rate, and its events per series in time.
    expect(byId.anomaly?.series).toBe(1);
    const anomaly = dashboard.page.locator('[data-panel="anomaly"]');
    expect(await anomaly.getAttribute('data-events')).toBe('2');
    const rows = await anomaly.locator('tbody tr').allTextContents();
    expect(rows[0]).toMatch(/^gw-01 \/ pump-3.*9\.5.*vibration 90%/);
    expect(rows[1]).toMatch(/^gw-02 \/ pump-7.*open.*41\.2.*pressure 71%, flow 20%/);
    expect(await anomaly.locator('p.note:not(.not-applicable)').textContent()).toBe(
      '2 event(s) in this window, 1 open now',
    );
    expect(byId.rollout?.points).toBe(current.rollout.fleet.length);
    expect(byId.inferences?.points).toBe(current.versions.reduce((n, v) => n + v.minutes.length, 0));

    // Assess: the lines are really drawn, in each version's colour (v1 first, v3 third)
    expect(await pixelsOfColour(dashboard.page, 'inferences', '#2f6fdb')).toBeGreaterThan(20);
    expect(await pixelsOfColour(dashboard.page, 'inferences', '#1f9d76')).toBeGreaterThan(20);

    // Assess: tables and lists carry the snapshot's words
    const reasons = await dashboard.page.locator('[data-panel="errors"] .reason').allTextContents();
    expect(reasons).toEqual(current.errors.latest.map((e) => e.reason));
    const trainingText = await dashboard.page.locator('[data-panel="training"] tbody').textContent();
    expect(trainingText).toContain('rejected-by-gate');
    expect(trainingText).toContain(current.training.runs[1]?.reason ?? 'missing reason');
    expect(trainingText).toContain(current.training.runs[2]?.notices?.[0] ?? 'missing notice');
    const rolloutNote = await dashboard.page.locator('[data-panel="rollout"] .note').textContent();
    expect(rolloutNote).toBe('vibration v3 rolled out to 3 of 4 devices');
    const deviceText = await dashboard.page.locator('[data-panel="rollout"] tbody').textContent();
    expect(deviceText).toContain('verify: manifest signature does not verify with the fleet key');

    // Assess: layout, offline, clean console
    const size = await noHorizontalOverflow(dashboard.page);
    expect(size.scrollWidth).toBeLessThanOrEqual(size.innerWidth);
    expect(dashboard.foreignRequests).toEqual([]);
    expect(dashboard.errors).toEqual([]);
    await dashboard.page.screenshot({ path: `${ARTIFACTS}/dashboard-1280x800.png`, fullPage: true });
  });

  it('fits a 390x844 phone screen without horizontal overflow', async () => {
    // Prepare
    const dashboard = await open({ width: 390, height: 844 });

    // Act
    await dashboard.waitForRender();
    const size = await noHorizontalOverflow(dashboard.page);
    const widest = await dashboard.page.$$eval('.panel, .kpi', (nodes) =>
      Math.max(...nodes.map((n) => n.getBoundingClientRect().right)),
    );

    // Assess
    expect(size.scrollWidth).toBeLessThanOrEqual(size.innerWidth);
    expect(widest).toBeLessThanOrEqual(390);
    expect(dashboard.errors).toEqual([]);
    await dashboard.page.screenshot({ path: `${ARTIFACTS}/dashboard-390x844.png`, fullPage: true });
  });

  it('shows an empty stack as empty panels, not as errors', async () => {
    // Prepare
    current = emptySnapshot(new Date('2025-06-01T12:00:00Z'));
    const dashboard = await open({ width: 1280, height: 800 });

    // Act
    await dashboard.waitForRender();
    const panels = await panelData(dashboard.page);
    const emptyPanels = await dashboard.page.locator('.panel.is-empty').count();

    // Assess
    expect(panels.every((p) => p.points === 0)).toBe(true);
    expect(emptyPanels).toBe(panels.length - 1); // the errors panel shows a clean zero instead
    expect(await kpi(dashboard.page, 'devices')).toBe('0 / 0');
    expect(await kpi(dashboard.page, 'released')).toBe('—');
    expect(await dashboard.page.locator('[data-panel="errors"] .big-number').textContent()).toBe('0');
    expect(dashboard.errors).toEqual([]);
    await dashboard.page.screenshot({ path: `${ARTIFACTS}/dashboard-empty.png`, fullPage: true });
  });

  it('updates the same charts in place when the snapshot changes', async () => {
    // Prepare
    const dashboard = await open();
    const seen = await dashboard.waitForRender();
    const canvas = await dashboard.page.$('[data-panel="inferences"] canvas');

    // Act
    current = buildSnapshot({ minutes: 14, errorCount: 9, now: new Date('2025-06-01T12:02:30Z') });
    await dashboard.page.waitForFunction(
      (count) => document.querySelector('[data-kpi="errors"] .kpi-value')?.textContent === count,
      '9',
      { timeout: 15_000 },
    );

    // Assess
    expect(await dashboard.waitForRender(seen + 1)).toBeGreaterThan(seen);
    expect(await kpi(dashboard.page, 'inferences')).toBe(en(totalInferences(current)));
    const sameCanvas = await canvas?.evaluate(
      (c) => c === document.querySelector('[data-panel="inferences"] canvas'),
    );
    expect(sameCanvas).toBe(true);
    const points = await dashboard.page.$eval('[data-panel="inferences"]', (n) =>
      Number((n as HTMLElement).dataset.points),
    );
    expect(points).toBe(current.versions.reduce((n, v) => n + v.minutes.length, 0));
    expect(dashboard.errors).toEqual([]);
  });

  it('keeps the last data and says so when the snapshot cannot be read', async () => {
    // Prepare
    const dashboard = await open();
    await dashboard.waitForRender();

    // Act
    const valid = current;
    current = { ...valid, errors: { count: -1, latest: [] } };
    await dashboard.page.waitForSelector('#status[data-state="error"]', { timeout: 15_000 });
    const status = await dashboard.page.locator('#status').textContent();

    // Assess
    expect(status).toContain('errors.count');
    expect(await kpi(dashboard.page, 'inferences')).toBe(en(totalInferences(valid)));
  });
});
