/**
 * The demo dataset: gateway machine telemetry generated deterministically from a seed, so
 * nothing is ever downloaded. Each row is one reading; `condition` is the label. Classes
 * overlap a little (noise and borderline machines), so a good model scores above 90% but
 * not 100%.
 */
import { gaussian, seededRandom } from './training/random.ts';

export const DEMO_LABEL = 'condition';
export const DEMO_CONDITIONS = ['normal', 'overheating', 'bearing_wear', 'imbalance'] as const;
const SITES = ['north', 'south', 'east', 'west'] as const;

export interface DemoDatasetOptions {
  rows?: number;
  seed?: number;
  /** Without the timestamp column (6 columns, about 34 bytes a row: the scale bench's telemetry). */
  timestamp?: boolean;
}

interface Profile {
  temperature: [number, number];
  vibration: [number, number];
  current: [number, number];
  humidity: [number, number];
}

/** Mean and spread per condition: each fault moves a different pair of signals. */
const PROFILES: Record<(typeof DEMO_CONDITIONS)[number], Profile> = {
  normal: { temperature: [55, 5], vibration: [1.2, 0.35], current: [12, 1.6], humidity: [45, 10] },
  overheating: { temperature: [73, 4.5], vibration: [1.4, 0.4], current: [14.5, 1.8], humidity: [40, 10] },
  bearing_wear: { temperature: [60, 5], vibration: [3.3, 0.55], current: [12.5, 1.6], humidity: [50, 10] },
  imbalance: { temperature: [57, 5], vibration: [2.2, 0.45], current: [17, 1.6], humidity: [46, 10] },
};
/** Share of each condition: imbalanced on purpose, as real fleets are. */
const SHARES = [0.55, 0.15, 0.15, 0.15];

export function generateDemoDataset(options: DemoDatasetOptions = {}): string {
  return `${[...demoDatasetLines(options)].join('\n')}\n`;
}

/** The demo dataset line by line (header first), so a bench can write millions of rows to a file. */
export function* demoDatasetLines(options: DemoDatasetOptions = {}): Generator<string> {
  const rows = options.rows ?? 1500;
  const withTimestamp = options.timestamp ?? true;
  const random = seededRandom(options.seed ?? 7);
  const start = Date.UTC(2026, 0, 1);
  const columns = ['site', 'temperature_c', 'vibration_rms', 'current_a', 'humidity_pct', 'condition'];
  yield (withTimestamp ? ['timestamp', ...columns] : columns).join(',');
  for (let i = 0; i < rows; i++) {
    const condition = pickCondition(random());
    const profile = PROFILES[condition];
    const site = SITES[Math.floor(random() * SITES.length)] ?? 'north';
    // Sites differ a little in ambient temperature: a weak, real signal for the categorical.
    const siteOffset = site === 'south' ? 3 : site === 'north' ? -2 : 0;
    const sample = ([mean, spread]: [number, number]) => mean + spread * gaussian(random);
    const timestamp = new Date(start + i * 600_000 + Math.floor(random() * 60_000)).toISOString();
    const cells = [
      site,
      (sample(profile.temperature) + siteOffset).toFixed(2),
      Math.max(0.05, sample(profile.vibration)).toFixed(3),
      Math.max(0, sample(profile.current)).toFixed(2),
      Math.min(100, Math.max(0, sample(profile.humidity))).toFixed(1),
      condition,
    ];
    yield (withTimestamp ? [timestamp, ...cells] : cells).join(',');
  }
}

function pickCondition(u: number): (typeof DEMO_CONDITIONS)[number] {
  let acc = 0;
  for (let i = 0; i < SHARES.length; i++) {
    acc += SHARES[i] ?? 0;
    if (u < acc) return DEMO_CONDITIONS[i] ?? 'normal';
  }
  return 'normal';
}

/** The regression demo's target: energy a machine draws per production cycle, in kWh. */
export const ENERGY_LABEL = 'kwh';

/**
 * The regression demo dataset: per production cycle, a machine's load (%), spindle speed
 * (rpm), coolant temperature (°C) and line, and the energy the cycle drew. Energy grows with
 * load and with the square of speed, a hot coolant costs extra, line `c` runs older motors,
 * and metering noise of about 0.6 kWh leaves an RMSE floor no model can beat.
 */
export function generateEnergyDataset(options: { rows?: number; seed?: number } = {}): string {
  const random = seededRandom(options.seed ?? 11);
  const lines = ['load,speed,coolant,line,kwh'];
  for (let i = 0; i < (options.rows ?? 2000); i++) {
    const load = 20 + random() * 80;
    const speed = 800 + random() * 2400;
    const coolant = 18 + random() * 22;
    const line = (['a', 'b', 'c'] as const)[Math.floor(random() * 3)] as string;
    const kwh =
      2 +
      0.05 * load +
      0.9 * (speed / 1000) ** 2 +
      (coolant > 32 ? 0.12 * (coolant - 32) : 0) +
      (line === 'c' ? 0.8 : 0) +
      gaussian(random) * 0.6;
    lines.push(`${load.toFixed(1)},${Math.round(speed)},${coolant.toFixed(1)},${line},${kwh.toFixed(3)}`);
  }
  return `${lines.join('\n')}\n`;
}
