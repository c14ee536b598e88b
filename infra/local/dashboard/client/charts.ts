/**
 * Thin helpers over Chart.js: one look for every panel, charts created once and then updated
 * in place (new data, same canvas and Chart instance) on every snapshot.
 */

import * as chartjs from 'chart.js';
import { Chart, type ChartDataset } from 'chart.js';
import { formatMinute } from './format.ts';

// Only what the panels use, so the bundle stays small.
Chart.register(
  chartjs.BarController,
  chartjs.BarElement,
  chartjs.CategoryScale,
  chartjs.Legend,
  chartjs.LinearScale,
  chartjs.LineController,
  chartjs.LineElement,
  chartjs.PointElement,
  chartjs.Tooltip,
);
Chart.defaults.font.family =
  'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif';
Chart.defaults.font.size = 11;
Chart.defaults.color = '#526075';
Chart.defaults.borderColor = '#e6eaf0';
Chart.defaults.animation = false;
Chart.defaults.plugins.legend.labels.boxWidth = 10;
Chart.defaults.plugins.legend.labels.boxHeight = 10;
Chart.defaults.plugins.legend.position = 'bottom';

/** Distinct, colour-blind-friendly hues, one per model version (stable across panels). */
export const palette = [
  '#2f6fdb',
  '#e0752d',
  '#1f9d76',
  '#c2417a',
  '#7a5cd6',
  '#1d95b3',
  '#b8902a',
  '#5f6b7a',
];

export interface AxisFormat {
  /** A value as the axis shows it; `step` is the distance between ticks, when there are several. */
  format: (value: number, step?: number) => string;
  /** Start the axis at zero (default) or fit it to the data. */
  zero?: boolean;
  /** Whole numbers only (counts): no 0.2-step ticks on small ranges. */
  integer?: boolean;
  min?: number;
  max?: number;
  suggestedMax?: number;
}

export interface LinePoint {
  x: number;
  y: number | null;
}

export interface LineSeries {
  label: string;
  color: string;
  points: LinePoint[];
  dashed?: boolean;
}

export interface BarSeries {
  label: string;
  /** One colour, or one per bar. */
  color: string | string[];
  values: (number | null)[];
}

type TimeChart = Chart<'line', LinePoint[]>;
type BarChart = Chart<'bar', (number | null)[], string>;

function yScale(axis: AxisFormat, stacked = false) {
  return {
    stacked,
    beginAtZero: axis.zero ?? true,
    min: axis.min,
    max: axis.max,
    suggestedMax: axis.suggestedMax,
    ticks: {
      callback: (value: number | string, _index: number, ticks: { value: number }[]) =>
        axis.format(
          Number(value),
          ticks.length > 1 ? Math.abs((ticks[1]?.value ?? 0) - (ticks[0]?.value ?? 0)) : undefined,
        ),
      maxTicksLimit: 6,
      precision: axis.integer ? 0 : undefined,
    },
  };
}

const MINUTE = 60_000;
const minuteSteps = [1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440];

/** Ticks on whole minutes, at most ~6 of them, between the first and last data point. */
export function minuteTicks(min: number, max: number): { value: number }[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) return [];
  const span = (max - min) / MINUTE;
  const step = (minuteSteps.find((s) => span / s <= 6) ?? 1440) * MINUTE;
  const ticks: { value: number }[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push({ value: t });
  return ticks;
}

/** A line chart over minutes (x = epoch ms). */
export function timeChart(canvas: HTMLCanvasElement, axis: AxisFormat): TimeChart {
  return new Chart<'line', LinePoint[]>(canvas, {
    type: 'line',
    data: { datasets: [] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      scales: {
        x: {
          type: 'linear',
          bounds: 'data',
          afterBuildTicks: (scale) => {
            const hasData = scale.chart.data.datasets.some((d) => d.data.length > 0);
            scale.ticks = hasData ? minuteTicks(scale.min, scale.max) : [];
          },
          grid: { display: false },
          ticks: { callback: (value) => formatMinute(Number(value)), maxTicksLimit: 7, maxRotation: 0 },
        },
        y: yScale(axis),
      },
      plugins: {
        legend: {
          labels: {
            usePointStyle: true,
            pointStyle: 'line',
            pointStyleWidth: 22,
            // With point styles the legend reads the point's style, not the line's dash.
            generateLabels: (chart) =>
              Chart.defaults.plugins.legend.labels.generateLabels(chart).map((item) => ({
                ...item,
                lineDash:
                  (chart.data.datasets[item.datasetIndex ?? 0] as { borderDash?: number[] } | undefined)
                    ?.borderDash ?? [],
              })),
          },
        },
        tooltip: {
          callbacks: {
            title: (items) => (items[0] ? formatMinute(items[0].parsed.x ?? 0) : ''),
            label: (item) => `${item.dataset.label}: ${axis.format(item.parsed.y ?? 0)}`,
          },
        },
      },
    },
  });
}

/** How much time a minute chart shows at least, ending at the snapshot's minute. */
export const MIN_WINDOW_MS = 15 * MINUTE;

/**
 * The x range of a minute chart: from the first point (or MIN_WINDOW_MS back, whichever is
 * earlier) to the later of the snapshot's minute and the last point, padded by half a minute. Without it Chart.js pads
 * a single point by 5% of its epoch value, i.e. years.
 */
export function minuteRange(series: LineSeries[], now: number): { min: number; max: number } {
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const nowMinute = Math.floor(now / MINUTE) * MINUTE;
  const last = Math.max(nowMinute, ...xs);
  // Half a minute either side, so points on the first and last minute are drawn whole.
  return { min: Math.min(last - MIN_WINDOW_MS, ...xs) - MINUTE / 2, max: last + MINUTE / 2 };
}

export function setLines(chart: TimeChart, series: LineSeries[], now: number): void {
  const x = chart.options.scales?.x;
  if (x) Object.assign(x, minuteRange(series, now));
  chart.data.datasets = series.map(
    (s): ChartDataset<'line', LinePoint[]> => ({
      label: s.label,
      data: s.points,
      borderColor: s.color,
      backgroundColor: s.color,
      borderWidth: 2,
      borderDash: s.dashed ? [5, 4] : [],
      // A lone point has no line to show its dash: the dashed series gets diamond points.
      pointStyle: s.dashed ? 'rectRot' : 'circle',
      // Few points (a short demo has one or two minutes) are drawn as clear dots.
      pointRadius: s.points.length > 40 ? 0 : s.points.length > 5 ? 2 : 4,
      pointHoverRadius: 4,
      tension: 0.25,
      spanGaps: false,
    }),
  );
  chart.update();
}

/** A category bar chart; `stacked` stacks the series. */
export function barChart(canvas: HTMLCanvasElement, axis: AxisFormat, stacked = false): BarChart {
  return new Chart<'bar', (number | null)[], string>(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { stacked, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 6 } },
        y: yScale(axis, stacked),
      },
      plugins: {
        tooltip: {
          callbacks: { label: (item) => `${item.dataset.label}: ${axis.format(item.parsed.y ?? 0)}` },
        },
      },
    },
  });
}

export function setBars(chart: BarChart, labels: string[], series: BarSeries[]): void {
  chart.data.labels = labels;
  chart.data.datasets = series.map(
    (s): ChartDataset<'bar', (number | null)[]> => ({
      label: s.label,
      data: s.values,
      backgroundColor: s.color,
      borderRadius: 3,
      maxBarThickness: 42,
    }),
  );
  chart.update();
}

export type { BarChart, TimeChart };
