/**
 * A generated run-to-failure dataset for remaining-useful-life models, deterministic for a
 * seed, in long format (`cycle` time in ms at one reading per second, `machine`, sensors, `rul`):
 * - each machine lives a different number of cycles and wears along its own path: health
 *   falls as 1 - (t / life)^shape, with a machine-specific shape, so two machines at the same
 *   sensor level can have very different lives left;
 * - `temp` and `vib` rise with wear (exponentially near the end), `pressure` falls with it,
 *   `load` is the operating regime (three set points the machine switches between) and shifts
 *   temp and pressure, and `noise` carries nothing;
 * - every sensor has machine-specific offsets and gains and measurement noise.
 * `truncate` ends each machine at a random share of its life, as the test machines of a
 * remaining-life benchmark are: their last reading's `rul` is what a model must predict.
 */
import { gaussian, seededRandom } from '../training/random.ts';

export const RUL_CHANNELS = ['temp', 'vib', 'pressure', 'load', 'noise'] as const;
export const RUL_LABEL = 'rul';

export interface RunToFailureOptions {
  machines?: number;
  seed?: number;
  /** First machine's name index (so a second file holds machines the first never had). */
  firstMachine?: number;
  /** End each machine at a random 30-90% of its life instead of at failure. */
  truncate?: boolean;
  /** Shortest and longest life in cycles. */
  life?: [number, number];
}

const REGIMES = [
  { load: 0.3, temp: -4, pressure: 3 },
  { load: 0.6, temp: 0, pressure: 0 },
  { load: 0.9, temp: 6, pressure: -4 },
];

export function generateRunToFailureCsv(options: RunToFailureOptions = {}): string {
  const random = seededRandom(options.seed ?? 21);
  const [shortest, longest] = options.life ?? [140, 320];
  const lines = [`cycle,machine,${RUL_CHANNELS.join(',')},${RUL_LABEL}`];
  for (let m = 0; m < (options.machines ?? 24); m++) {
    const name = `m${String((options.firstMachine ?? 0) + m + 1).padStart(3, '0')}`;
    const life = Math.round(shortest + random() * (longest - shortest));
    const shape = 1.4 + random() * 2;
    const machine = {
      temp: 60 + gaussian(random) * 3,
      tempGain: 14 + random() * 8,
      vib: 0.8 + random() * 0.4,
      vibGain: 1.5 + random() * 1.5,
      pressure: 100 + gaussian(random) * 2,
      pressureGain: 6 + random() * 5,
    };
    const end = options.truncate ? Math.round(life * (0.3 + random() * 0.6)) : life;
    let regime = Math.floor(random() * REGIMES.length);
    for (let t = 0; t < end; t++) {
      if (random() < 0.05) regime = Math.floor(random() * REGIMES.length);
      const r = REGIMES[regime] as (typeof REGIMES)[number];
      const wear = (t / life) ** shape;
      const late = Math.exp(4 * (t / life - 1));
      const temp = machine.temp + r.temp + machine.tempGain * wear + 4 * late + gaussian(random) * 1.2;
      const vib = machine.vib * (1 + machine.vibGain * wear + 1.5 * late) + gaussian(random) * 0.15;
      const pressure = machine.pressure + r.pressure - machine.pressureGain * wear + gaussian(random) * 0.8;
      const load = r.load + gaussian(random) * 0.02;
      const noise = gaussian(random);
      lines.push(
        `${t * 1000},${name},${temp.toFixed(3)},${vib.toFixed(4)},${pressure.toFixed(3)},${load.toFixed(3)},${noise.toFixed(3)},${life - t - 1}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
