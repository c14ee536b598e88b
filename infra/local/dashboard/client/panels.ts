/**
 * The dashboard panels, in the order and with the titles of `dashboardPanels` (the CloudWatch
 * dashboard uses the same). Each panel builds its DOM once and re-renders in place. Every
 * panel root carries `data-series` and `data-points` so tests and scripts can read what it
 * shows without parsing canvases.
 */

import { type DashboardPanel, dashboardPanels } from '../../../../shared/topology.ts';
import type { DashboardSnapshot, MinutePoint, VersionSeries } from '../snapshot.ts';
import {
  type AxisFormat,
  type BarSeries,
  barChart,
  type LineSeries,
  palette,
  setBars,
  setLines,
  timeChart,
} from './charts.ts';
import { badge, el, table } from './dom.ts';
import {
  formatAgo,
  formatClock,
  formatInt,
  formatNumber,
  formatPercent,
  formatPercentTick,
} from './format.ts';

export interface VersionLook {
  label: string;
  color: string;
}

export interface RenderContext {
  /** The snapshot's generatedAt, epoch ms: relative times are computed against it. */
  now: number;
  look(model: string, version: number): VersionLook;
}

export interface Panel {
  id: DashboardPanel;
  root: HTMLElement;
  render(snapshot: DashboardSnapshot, ctx: RenderContext): void;
}

/** Stable colour and label per (model, version) over everything the snapshot mentions. */
export function renderContext(snapshot: DashboardSnapshot): RenderContext {
  const pairs = new Map<string, { model: string; version: number }>();
  const add = (model: string, version: number | null) => {
    if (version !== null) pairs.set(`${model}\u0000${version}`, { model, version });
  };
  for (const run of snapshot.training.runs) add(run.model, run.version);
  for (const series of snapshot.versions) add(series.model, series.version);
  for (const device of snapshot.rollout.fleet) add(device.model, device.version);
  const sorted = [...pairs.values()].sort((a, b) => a.model.localeCompare(b.model) || a.version - b.version);
  const manyModels = new Set(sorted.map((p) => p.model)).size > 1;
  const looks = new Map<string, VersionLook>();
  sorted.forEach((p, i) => {
    looks.set(`${p.model}\u0000${p.version}`, {
      label: manyModels ? `${p.model} v${p.version}` : `v${p.version}`,
      color: palette[i % palette.length] ?? '#5f6b7a',
    });
  });
  return {
    now: Date.parse(snapshot.generatedAt),
    look: (model, version) =>
      looks.get(`${model}\u0000${version}`) ?? { label: `${model} v${version}`, color: '#5f6b7a' },
  };
}

const percentAxis: AxisFormat = { format: formatPercentTick, min: 0, max: 1 };
const countAxis: AxisFormat = { format: (v) => formatInt(v), integer: true };

const statusColors: Record<string, string> = {
  released: '#1f9d55',
  training: '#7b8794',
  rejected: '#d98324',
  'rejected-by-gate': '#d98324',
  failed: '#d64545',
  // Staged rollout (functions/rollout): a canary in progress, a canary the controller rolled back.
  canary: '#3a7bd5',
  'rolled-back': '#d64545',
};
const baselineColor = '#c5ccd6';

function shell(id: DashboardPanel, wide = false) {
  const spec = dashboardPanels[id];
  const note = el('p', { class: 'note' });
  const metrics = [...new Set<string>(spec.metrics)].join(' · ');
  const root = el(
    'section',
    { class: wide ? 'panel panel--wide' : 'panel', 'data-panel': id, 'aria-label': spec.title },
    el('header', {}, el('h2', {}, spec.title), el('p', { class: 'metrics' }, metrics)),
  );
  return { root, note };
}

function chartBox(emptyText: string, label: string) {
  const canvas = el('canvas', { role: 'img', 'aria-label': label });
  const box = el('div', { class: 'chart' }, canvas, el('p', { class: 'empty' }, emptyText));
  return { canvas, box };
}

/** A panel holding one chart (and an optional note above it). */
function chartPanel(id: DashboardPanel, emptyText: string, noteText?: string) {
  const { root, note } = shell(id);
  const { canvas, box } = chartBox(emptyText, dashboardPanels[id].title);
  if (noteText) note.textContent = noteText;
  root.append(note, box);
  return { root, canvas };
}

const NO_RESULTS = 'No results in this window yet';
const NO_DEVICES = 'No devices have reported yet';

/** Records what a panel shows and toggles its empty state. */
function mark(root: HTMLElement, series: number, points: number): void {
  root.dataset.series = String(series);
  root.dataset.points = String(points);
  root.classList.toggle('is-empty', points === 0);
}

const countPoints = (series: { points: { y: number | null }[] }[]) =>
  series.reduce((n, s) => n + s.points.filter((p) => p.y !== null).length, 0);

const countValues = (series: BarSeries[]) =>
  series.reduce((n, s) => n + s.values.filter((v) => v !== null && v > 0).length, 0);

interface MinuteLine {
  /** Appended to the version label, e.g. "p99". */
  suffix?: string;
  dashed?: boolean;
  pick: (point: MinutePoint) => number | null;
}

/**
 * Which versions a panel shows: class, confidence and live accuracy views apply to
 * classifiers only, the prediction view to regression models, the anomaly view to anomaly
 * models. A panel that leaves versions out says so instead of showing an empty chart.
 */
type Applies = 'classifiers' | 'regression' | 'anomaly' | 'all';

const taskOf = (v: VersionSeries): Exclude<Applies, 'all'> =>
  v.task === 'regression' ? 'regression' : v.task === 'anomaly' ? 'anomaly' : 'classifiers';

function shown(versions: readonly VersionSeries[], applies: Applies): VersionSeries[] {
  return versions.filter((v) => applies === 'all' || taskOf(v) === applies);
}

/** Why versions of each other task are not in a panel. */
const leftOut: Record<Exclude<Applies, 'all'>, string> = {
  classifiers: 'classifier version(s) not shown: they answer classes',
  regression: `regression version(s) not shown: they answer numbers, not classes (see ${dashboardPanels.prediction.title})`,
  anomaly: `anomaly version(s) not shown: they answer a score against normal operation, not classes (see ${dashboardPanels.anomaly.title})`,
};

function notApplicable(root: HTMLElement, versions: readonly VersionSeries[], applies: Applies): void {
  const left = versions.filter((v) => applies !== 'all' && taskOf(v) !== applies);
  root.dataset.notApplicable = String(left.length);
  const note =
    root.querySelector<HTMLElement>('.not-applicable') ?? el('p', { class: 'note not-applicable' });
  const tasks = (['classifiers', 'regression', 'anomaly'] as const).filter((task) => task !== applies);
  note.textContent = tasks
    .map((task) => [task, left.filter((v) => taskOf(v) === task).length] as const)
    .filter(([, count]) => count > 0)
    .map(([task, count]) => `${count} ${leftOut[task]}`)
    .join('; ');
  if (!note.isConnected) root.querySelector('header')?.after(note);
}

/** Lines per model version of per-minute values. */
function minuteLinePanel(
  id: DashboardPanel,
  axis: AxisFormat,
  lines: MinuteLine[],
  note?: string,
  applies: Applies = 'all',
): Panel {
  const { root, canvas } = chartPanel(id, NO_RESULTS, note);
  const chart = timeChart(canvas, axis);
  return {
    id,
    root,
    render(snapshot, ctx) {
      notApplicable(root, snapshot.versions, applies);
      const series: LineSeries[] = shown(snapshot.versions, applies).flatMap((v) => {
        const look = ctx.look(v.model, v.version);
        return lines.map((line) => ({
          label: line.suffix ? `${look.label} ${line.suffix}` : look.label,
          color: look.color,
          dashed: line.dashed,
          points: v.minutes.map((m) => ({ x: m.minute, y: line.pick(m) })),
        }));
      });
      setLines(chart, series, ctx.now);
      mark(root, series.length, countPoints(series));
    },
  };
}

function trainingPanel(): Panel {
  const { root } = shell('training', true);
  const { canvas, box } = chartBox('No training runs yet', dashboardPanels.training.title);
  const runs = table(['Version', 'Status', 'Accuracy', 'Baseline', 'Input', 'Reason', 'Notices', 'Started']);
  root.append(el('div', { class: 'split' }, box, runs.wrap));
  const chart = barChart(canvas, percentAxis);
  return {
    id: 'training',
    root,
    render(snapshot, ctx) {
      const ordered = [...snapshot.training.runs].sort(
        (a, b) => a.model.localeCompare(b.model) || a.version - b.version,
      );
      const series: BarSeries[] = [
        {
          label: 'Accuracy',
          color: ordered.map((r) => statusColors[r.status] ?? '#7b8794'),
          values: ordered.map((r) => r.accuracy ?? null),
        },
      ];
      if (ordered.some((r) => r.baselineAccuracy !== undefined)) {
        series.push({
          label: 'Baseline (gate)',
          color: baselineColor,
          values: ordered.map((r) => r.baselineAccuracy ?? null),
        });
      }
      setBars(
        chart,
        ordered.map((r) => ctx.look(r.model, r.version).label),
        series,
      );
      runs.fill(
        [...ordered]
          .reverse()
          .map((r) => [
            ctx.look(r.model, r.version).label,
            badge(r.status, r.status),
            formatPercent(r.accuracy),
            formatPercent(r.baselineAccuracy),
            r.window ?? 'rows',
            r.reason ?? '',
            (r.notices ?? []).join('; '),
            formatAgo(r.createdAt, ctx.now),
          ]),
      );
      mark(root, series.length, ordered.length);
    },
  };
}

function rolloutPanel(): Panel {
  const { root, note } = shell('rollout', true);
  const { canvas, box } = chartBox(NO_DEVICES, dashboardPanels.rollout.title);
  const devices = table(['Device', 'Version', 'State', 'Last seen', 'Last error']);
  root.append(note, el('div', { class: 'split' }, box, devices.wrap));
  const chart = barChart(canvas, countAxis, true);
  return {
    id: 'rollout',
    root,
    render(snapshot, ctx) {
      const fleet = [...snapshot.rollout.fleet].sort((a, b) => a.thing.localeCompare(b.thing));
      const groups = new Map<string, { online: number; offline: number; order: number }>();
      for (const d of fleet) {
        const label = d.version === null ? 'no model' : ctx.look(d.model, d.version).label;
        const group = groups.get(label) ?? { online: 0, offline: 0, order: d.version ?? 0 };
        if (d.online) group.online++;
        else group.offline++;
        groups.set(label, group);
      }
      const labels = [...groups.entries()].sort((a, b) => a[1].order - b[1].order).map(([label]) => label);
      const series: BarSeries[] = [
        { label: 'Online', color: '#1f9d55', values: labels.map((l) => groups.get(l)?.online ?? 0) },
        { label: 'Offline', color: '#b8c0cc', values: labels.map((l) => groups.get(l)?.offline ?? 0) },
      ];
      setBars(chart, labels, series);
      devices.fill(
        fleet.map((d) => [
          el('span', { class: d.online ? 'device online' : 'device offline' }, d.thing),
          d.version === null ? '—' : ctx.look(d.model, d.version).label,
          badge(d.state, d.state),
          formatAgo(d.lastSeen, ctx.now),
          d.lastError ? `${d.lastError.step}: ${d.lastError.reason}` : '',
        ]),
      );
      const latest = snapshot.training.runs
        .filter((r) => r.status === 'released')
        .sort((a, b) => b.version - a.version)[0];
      if (latest && fleet.length > 0) {
        const on = fleet.filter((d) => d.model === latest.model && d.version === latest.version).length;
        note.textContent = `${ctx.look(latest.model, latest.version).label} rolled out to ${on} of ${fleet.length} devices`;
      } else {
        note.textContent = '';
      }
      mark(root, series.length, fleet.length);
    },
  };
}

function inferencesPanel(): Panel {
  return minuteLinePanel('inferences', countAxis, [{ pick: (m) => m.inferences }]);
}

interface Category {
  label: string;
  count: number;
  /** Categories sort by this, then by label. */
  order: number;
}

/**
 * Bars of each category's share of a version's results, one series per version, so that
 * versions with different traffic compare.
 */
function sharePanel(
  id: DashboardPanel,
  categoriesOf: (v: VersionSeries) => Category[],
  legend: (v: VersionSeries, look: VersionLook) => string,
): Panel {
  const { root, canvas } = chartPanel(id, NO_RESULTS);
  const chart = barChart(canvas, { format: formatPercentTick, min: 0 });
  return {
    id,
    root,
    render(snapshot, ctx) {
      notApplicable(root, snapshot.versions, 'classifiers');
      const perVersion = shown(snapshot.versions, 'classifiers').map((v) => ({
        v,
        categories: categoriesOf(v),
      }));
      const order = new Map<string, number>();
      for (const { categories } of perVersion) for (const c of categories) order.set(c.label, c.order);
      const labels = [...order.entries()]
        .sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))
        .map(([label]) => label);
      const series: BarSeries[] = perVersion.map(({ v, categories }) => {
        const total = categories.reduce((n, c) => n + c.count, 0);
        const counts = new Map(categories.map((c) => [c.label, c.count]));
        const look = ctx.look(v.model, v.version);
        return {
          label: legend(v, look),
          color: look.color,
          values: labels.map((l) => (total > 0 ? (counts.get(l) ?? 0) / total : null)),
        };
      });
      setBars(chart, labels, series);
      mark(root, series.length, countValues(series));
    },
  };
}

function classMixPanel(): Panel {
  return sharePanel(
    'classMix',
    (v) => Object.entries(v.classMix).map(([label, count]) => ({ label, count, order: 0 })),
    (_, look) => look.label,
  );
}

/** Confidence histogram per version, with each version's mean in its legend. */
function confidencePanel(): Panel {
  return sharePanel(
    'confidence',
    (v) =>
      v.confidence.histogram.map((b) => ({
        label: `${formatNumber(b.from, 2)}–${formatNumber(b.to, 2)}`,
        count: b.count,
        order: b.from,
      })),
    (v, look) => `${look.label} · mean ${formatNumber(v.confidence.mean)}`,
  );
}

function lowConfidencePanel(): Panel {
  return minuteLinePanel(
    'lowConfidence',
    { format: formatPercentTick, min: 0, suggestedMax: 0.2 },
    [{ pick: (m) => m.lowConfidenceRate }],
    'Share of results below the model’s low-confidence threshold',
    'classifiers',
  );
}

function latencyPanel(): Panel {
  return minuteLinePanel('latency', { format: (v) => `${Number(v.toFixed(1))} ms` }, [
    { suffix: 'p50', pick: (m) => m.latencyP50Ms },
    { suffix: 'p99', dashed: true, pick: (m) => m.latencyP99Ms },
  ]);
}

function liveAccuracyPanel(): Panel {
  return minuteLinePanel(
    'liveAccuracy',
    { format: formatPercentTick, max: 1, zero: false },
    [{ pick: (m) => m.liveAccuracy }],
    'Results that carried ground truth and matched it',
    'classifiers',
  );
}

function predictionPanel(): Panel {
  return minuteLinePanel(
    'prediction',
    { format: (v) => formatNumber(v) },
    [
      { suffix: 'mean', pick: (m) => m.predictionMean ?? null },
      { suffix: 'live RMSE', dashed: true, pick: (m) => m.liveRmse ?? null },
    ],
    'Regression models: the predictions’ mean per minute, and RMSE where readings carried their true value',
    'regression',
  );
}

/** Anomaly models: the share of results over the threshold per minute, and the events, per series in time. */
function anomalyPanel(): Panel {
  const { root, note } = shell('anomaly', true);
  const { canvas, box } = chartBox(NO_RESULTS, dashboardPanels.anomaly.title);
  const events = table(['Series', 'Version', 'From', 'To', 'Peak score', 'Sensors']);
  root.append(note, el('div', { class: 'split' }, box, events.wrap));
  const chart = timeChart(canvas, { format: formatPercentTick, min: 0 });
  return {
    id: 'anomaly',
    root,
    render(snapshot, ctx) {
      notApplicable(root, snapshot.versions, 'anomaly');
      const series: LineSeries[] = shown(snapshot.versions, 'anomaly').map((v) => {
        const look = ctx.look(v.model, v.version);
        return {
          label: `${look.label} anomaly rate`,
          color: look.color,
          points: v.minutes.map((m) => ({ x: m.minute, y: m.anomalyRate ?? null })),
        };
      });
      setLines(chart, series, ctx.now);
      const timeline = [...snapshot.events].sort(
        (a, b) =>
          `${a.thing}/${a.series}`.localeCompare(`${b.thing}/${b.series}`) || a.start.localeCompare(b.start),
      );
      events.fill(
        timeline.map((e) => [
          e.series ? `${e.thing} / ${e.series}` : e.thing,
          ctx.look(e.model, e.version).label,
          formatClock(Date.parse(e.start)),
          e.state === 'open' ? badge('open', 'open') : formatClock(Date.parse(e.end)),
          `${formatNumber(e.peakScore)} (threshold ${formatNumber(e.threshold)})`,
          e.channels.map((c) => `${c.name} ${formatPercent(c.share, 0)}`).join(', '),
        ]),
      );
      const open = timeline.filter((e) => e.state === 'open').length;
      note.textContent =
        timeline.length === 0
          ? 'No anomaly events in this window'
          : `${timeline.length} event(s) in this window, ${open} open now`;
      root.dataset.events = String(timeline.length);
      mark(root, series.length, countPoints(series) + timeline.length);
    },
  };
}

function driftPanel(): Panel {
  return minuteLinePanel(
    'drift',
    { format: (v) => formatNumber(v), suggestedMax: 0.3 },
    [{ pick: (m) => m.drift }],
    'Live class mix (or predictions) vs training · PSI above 0.25 is a significant shift',
  );
}

function outboxPanel(): Panel {
  const { root, canvas } = chartPanel('outbox', NO_DEVICES);
  const chart = barChart(canvas, countAxis);
  return {
    id: 'outbox',
    root,
    render(snapshot) {
      const fleet = [...snapshot.rollout.fleet].sort((a, b) => a.thing.localeCompare(b.thing));
      const series: BarSeries[] = [
        { label: 'Outbox depth', color: '#2f6fdb', values: fleet.map((d) => d.outboxDepth) },
        { label: 'Dropped', color: '#d64545', values: fleet.map((d) => d.dropped) },
      ];
      setBars(
        chart,
        fleet.map((d) => d.thing),
        series,
      );
      mark(root, series.length, fleet.length);
    },
  };
}

function errorsPanel(): Panel {
  const { root } = shell('errors');
  const count = el('p', { class: 'big-number' });
  const caption = el('p', { class: 'note' });
  const list = el('ol', { class: 'error-list' });
  root.append(el('div', { class: 'errors-head' }, count, caption), list);
  return {
    id: 'errors',
    root,
    render(snapshot) {
      const { count: total, latest } = snapshot.errors;
      count.textContent = formatInt(total);
      caption.textContent =
        total === 0 ? 'No malformed messages: every payload was valid' : 'messages set aside with a reason';
      list.replaceChildren(
        ...latest.map((e) =>
          el(
            'li',
            {},
            el(
              'div',
              { class: 'error-meta' },
              el('time', { datetime: e.at }, formatClock(Date.parse(e.at))),
              el('span', { class: 'thing' }, e.thing),
              el('code', {}, e.topic),
            ),
            el('p', { class: 'reason' }, e.reason),
          ),
        ),
      );
      root.dataset.series = String(latest.length);
      root.dataset.points = String(total);
      root.classList.toggle('is-clean', total === 0);
    },
  };
}

/** All panels in dashboard order. */
export function createPanels(): Panel[] {
  const factories: Record<DashboardPanel, () => Panel> = {
    training: trainingPanel,
    rollout: rolloutPanel,
    inferences: inferencesPanel,
    classMix: classMixPanel,
    confidence: confidencePanel,
    lowConfidence: lowConfidencePanel,
    latency: latencyPanel,
    liveAccuracy: liveAccuracyPanel,
    prediction: predictionPanel,
    anomaly: anomalyPanel,
    drift: driftPanel,
    outbox: outboxPanel,
    errors: errorsPanel,
  };
  return (Object.keys(dashboardPanels) as DashboardPanel[]).map((id) => factories[id]());
}
