/**
 * The dashboard page: polls the snapshot, renders the key figures and every panel in place.
 * `?interval=MS` changes the poll period (default 2000 ms).
 */
import type { DashboardSnapshot } from '../snapshot.ts';
import { el } from './dom.ts';
import { formatClock, formatInt, formatNumber, formatPercent } from './format.ts';
import { createPanels, type RenderContext, renderContext } from './panels.ts';

const SNAPSHOT_URL = '/api/snapshot';
const DEFAULT_INTERVAL_MS = 2000;

interface Kpi {
  id: string;
  label: string;
  value(s: DashboardSnapshot, ctx: RenderContext): { value: string; note: string };
}

function latestRelease(s: DashboardSnapshot) {
  return s.training.runs
    .filter((r) => r.status === 'released')
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || b.version - a.version)[0];
}

const kpis: Kpi[] = [
  {
    id: 'released',
    label: 'Released model',
    value(s, ctx) {
      const r = latestRelease(s);
      if (!r) return { value: '—', note: 'no release yet' };
      return {
        value: ctx.look(r.model, r.version).label,
        note: `${r.model} · accuracy ${formatPercent(r.accuracy)}`,
      };
    },
  },
  {
    id: 'devices',
    label: 'Devices online',
    value(s) {
      const fleet = s.rollout.fleet;
      const online = fleet.filter((d) => d.online).length;
      return { value: `${online} / ${fleet.length}`, note: `${fleet.length - online} offline` };
    },
  },
  {
    id: 'inferences',
    label: 'Inferences',
    value(s) {
      const total = s.versions.reduce((n, v) => n + v.minutes.reduce((m, p) => m + p.inferences, 0), 0);
      const n = s.versions.length;
      return { value: formatInt(total), note: `across ${n} version${n === 1 ? '' : 's'}` };
    },
  },
  {
    id: 'lowConfidence',
    label: 'Low confidence',
    value(s) {
      let low = 0;
      let total = 0;
      for (const v of s.versions)
        for (const p of v.minutes) {
          if (p.lowConfidenceRate === null) continue;
          low += p.lowConfidenceRate * p.inferences;
          total += p.inferences;
        }
      return { value: total > 0 ? formatPercent(low / total) : '—', note: 'of all results in the window' };
    },
  },
  {
    id: 'drift',
    label: 'Drift (PSI)',
    value(s, ctx) {
      const r = latestRelease(s);
      const series = r ? s.versions.find((v) => v.model === r.model && v.version === r.version) : undefined;
      const last = series?.minutes.filter((p) => p.drift !== null).at(-1);
      if (!r || !series || !last) return { value: '—', note: 'no live data for the release' };
      return {
        value: formatNumber(last.drift),
        note: `${ctx.look(r.model, r.version).label}, latest minute`,
      };
    },
  },
  {
    id: 'errors',
    label: 'Aggregator errors',
    value(s) {
      const latest = s.errors.latest[0];
      return {
        value: formatInt(s.errors.count),
        note: latest ? `latest at ${formatClock(Date.parse(latest.at))}` : 'none',
      };
    },
  },
];

function mount() {
  const kpiRoot = document.getElementById('kpis');
  const grid = document.getElementById('panels');
  const status = document.getElementById('status');
  if (!kpiRoot || !grid || !status) throw new Error('the dashboard page is missing its containers');

  const kpiNodes = kpis.map((k) => {
    const value = el('p', { class: 'kpi-value' }, '—');
    const note = el('p', { class: 'kpi-note' });
    kpiRoot.append(
      el('div', { class: 'kpi', 'data-kpi': k.id }, el('p', { class: 'kpi-label' }, k.label), value, note),
    );
    return { kpi: k, value, note };
  });
  const panels = createPanels();
  grid.append(...panels.map((p) => p.root));

  let generation = 0;
  const render = (snapshot: DashboardSnapshot) => {
    const ctx = renderContext(snapshot);
    for (const { kpi, value, note } of kpiNodes) {
      const shown = kpi.value(snapshot, ctx);
      value.textContent = shown.value;
      note.textContent = shown.note;
    }
    for (const panel of panels) panel.render(snapshot, ctx);
    generation++;
    document.body.dataset.generation = String(generation);
    document.body.dataset.generatedAt = snapshot.generatedAt;
  };

  const setStatus = (state: 'live' | 'error', text: string) => {
    status.dataset.state = state;
    const label = status.querySelector('.text');
    if (label) label.textContent = text;
  };

  const requested = Number(new URLSearchParams(location.search).get('interval'));
  const interval = Number.isFinite(requested) && requested >= 100 ? requested : DEFAULT_INTERVAL_MS;

  const poll = async () => {
    try {
      const response = await fetch(SNAPSHOT_URL, { cache: 'no-store' });
      if (!response.ok) {
        const failure = (await response.json().catch(() => ({}))) as { error?: string };
        throw new Error(failure.error ?? `HTTP ${response.status}`);
      }
      const body = (await response.json()) as DashboardSnapshot;
      render(body);
      setStatus('live', `Live · data from ${formatClock(Date.parse(body.generatedAt))}`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      setStatus('error', `No fresh data (${reason}); retrying every ${interval / 1000} s`);
    } finally {
      setTimeout(poll, interval);
    }
  };
  void poll();
}

mount();
