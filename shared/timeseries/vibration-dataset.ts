/**
 * A generated long-format vibration dataset, deterministic for a seed: machines with a
 * 3-axis accelerometer at about 100 Hz (a little clock jitter, one dropout per machine),
 * each going through machine states in stretches of several seconds. Every state has the
 * same mean and about the same RMS on every axis, so one reading says little about the
 * state; only a window shows it: `normal` hums at the shaft frequency, `imbalance` at twice
 * it, `looseness` at a high harmonic, and `bearing_wear` rings with sharp periodic impacts.
 * Machines differ in shaft speed, axis gains and noise, so held-out machines are new.
 */
import { gaussian, seededRandom } from '../training/random.ts';

export const VIBRATION_STATES = ['normal', 'imbalance', 'looseness', 'bearing_wear'] as const;
export const VIBRATION_CHANNELS = ['ax', 'ay', 'az'] as const;
export const VIBRATION_LABEL = 'state';

export interface VibrationOptions {
  machines?: number;
  /** Readings per machine. */
  readings?: number;
  frequencyHz?: number;
  seed?: number;
  /** First machine's name index (so a second file can hold machines the first never had). */
  firstMachine?: number;
  /** Epoch ms of the first reading. */
  startMs?: number;
}

/** A machine's own shaft speed, axis gains and phases, and noise. */
export interface VibrationMachine {
  shaftHz: number;
  gains: number[];
  phase: number[];
  noise: number;
}

/** A machine drawn from `random` (the same draws in the same order give the same machine). */
export function vibrationMachine(random: () => number): VibrationMachine {
  return {
    shaftHz: 6 + random() * 3,
    gains: [0.7 + random() * 0.5, 0.7 + random() * 0.5, 0.7 + random() * 0.5],
    phase: [random() * 6.28, random() * 6.28, random() * 6.28],
    noise: 0.45 + random() * 0.3,
  };
}

/** One machine's reading at time t (s) in a state: 3 axes, about unit RMS, gravity on az. */
export function vibrationSignal(
  state: (typeof VIBRATION_STATES)[number],
  t: number,
  machine: VibrationMachine,
  random: () => number,
): number[] {
  const { shaftHz, gains, phase, noise } = machine;
  return gains.map((gain, axis) => {
    const p = phase[axis] as number;
    let v: number;
    if (state === 'normal') v = Math.SQRT2 * Math.sin(2 * Math.PI * shaftHz * t + p);
    else if (state === 'imbalance') v = Math.SQRT2 * Math.sin(2 * Math.PI * 2 * shaftHz * t + p);
    else if (state === 'looseness')
      v = Math.sin(2 * Math.PI * shaftHz * t + p) + Math.sin(2 * Math.PI * 3.5 * shaftHz * t + 2 * p);
    else {
      // Impacts every 1/(1.6 shaft) s, each a decaying ring: peaky, same RMS as the others.
      const impactEvery = 1 / (1.6 * shaftHz);
      const since = (t + p / 10) % impactEvery;
      v = 3.2 * Math.exp(-since * 60) * Math.sin(2 * Math.PI * 30 * since);
    }
    return gain * v + noise * gaussian(random) + (axis === 2 ? 1 : 0);
  });
}

/** The dataset as CSV text: ts,machine,ax,ay,az,state. */
export function generateVibrationCsv(options: VibrationOptions = {}): string {
  return `${[...vibrationLines(options)].join('\n')}\n`;
}

export function* vibrationLines(options: VibrationOptions = {}): Generator<string> {
  const machines = options.machines ?? 24;
  const readings = options.readings ?? 4000;
  const frequencyHz = options.frequencyHz ?? 100;
  const random = seededRandom(options.seed ?? 7);
  const period = 1000 / frequencyHz;
  yield ['ts', 'machine', ...VIBRATION_CHANNELS, VIBRATION_LABEL].join(',');
  for (let m = 0; m < machines; m++) {
    const name = `m${String((options.firstMachine ?? 0) + m + 1).padStart(2, '0')}`;
    const machine = vibrationMachine(random);
    const start = (options.startMs ?? 1_700_000_000_000) + m * 7_919;
    // One dropout (about 0.4 s without readings) somewhere in each machine's stream.
    const dropAt = Math.floor(readings * (0.2 + random() * 0.6));
    let state = Math.floor(random() * VIBRATION_STATES.length);
    let stateLeft = Math.round(frequencyHz * (8 + random() * 12));
    for (let i = 0; i < readings; i++) {
      if (i >= dropAt && i < dropAt + Math.round(frequencyHz * 0.4)) continue;
      if (stateLeft-- <= 0) {
        state = (state + 1 + Math.floor(random() * (VIBRATION_STATES.length - 1))) % VIBRATION_STATES.length;
        stateLeft = Math.round(frequencyHz * (8 + random() * 12));
      }
      const jitter = period >= 5 ? (random() - 0.5) * 0.2 * period : 0;
      const ts = Math.round(start + i * period + jitter);
      const name_ = VIBRATION_STATES[state] as (typeof VIBRATION_STATES)[number];
      const values = vibrationSignal(name_, (ts - start) / 1000, machine, random);
      yield [ts, name, ...values.map((v) => v.toFixed(4)), name_].join(',');
    }
  }
}
