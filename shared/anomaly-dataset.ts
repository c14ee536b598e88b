/**
 * Generated pump telemetry for anomaly models, deterministic for a seed: one reading a
 * minute per pump, with channels that move together as a pump's do. Flow follows a daily
 * demand cycle; pressure rises with the square of flow; motor current with flow times
 * pressure; bearing temperature follows current slowly; vibration is noise around a
 * pump-specific level. Every pump has its own gains (the same in every file, from its
 * number), so pumps a model never saw are new to it.
 *
 * Faults can be injected into stretches of chosen pumps: a spike on one channel, a slow
 * drift, a stuck sensor, a noise burst, and a broken correlation (pressure no longer
 * follows flow, as with a leak). `faults` lists where each went, for scoring events.
 */
import { VIBRATION_CHANNELS, vibrationMachine, vibrationSignal } from './timeseries/vibration-dataset.ts';
import { gaussian, seededRandom } from './training/random.ts';

export const PUMP_CHANNELS = ['flow', 'pressure', 'current', 'temp', 'vibration'] as const;
export type PumpChannel = (typeof PUMP_CHANNELS)[number];
export type FaultKind = 'spike' | 'drift' | 'stuck' | 'noise' | 'decoupled';
export const FAULT_KINDS: readonly FaultKind[] = ['spike', 'drift', 'stuck', 'noise', 'decoupled'];

export interface InjectedFault<Kind extends string = FaultKind> {
  /** The machine (the file's series column). */
  series: string;
  kind: Kind;
  channel: string;
  /** Epoch ms of the first and last faulty reading. */
  start: number;
  end: number;
}

export interface PumpDataOptions {
  pumps?: number;
  /** Readings per pump, one a minute. */
  minutes?: number;
  /** The measurements' noise and the demand's wiggle (a pump's own gains come from its number). */
  seed?: number;
  firstPump?: number;
  /** Epoch ms of the first reading. */
  startMs?: number;
  /** Faults to inject: `count` per pump, each `minutes` long (default 60), at seeded places. */
  faults?: { perPump: number; minutes?: number };
}

const CHANNEL_OF: Record<FaultKind, PumpChannel> = {
  spike: 'current',
  drift: 'temp',
  stuck: 'flow',
  noise: 'vibration',
  decoupled: 'pressure',
};

/**
 * The tests' usual pair: normal operation to train on (seed 1), and a stretch to score (seed 2:
 * other days' noise; other pumps with `firstPump`, faults as `faulty.faults` asks).
 */
export function normalAndFaulty(
  normal: { pumps: number; minutes: number },
  faulty: Omit<PumpDataOptions, 'seed'>,
): { normal: ReturnType<typeof generatePumpCsv>; faulty: ReturnType<typeof generatePumpCsv> } {
  return { normal: generatePumpCsv({ ...normal, seed: 1 }), faulty: generatePumpCsv({ ...faulty, seed: 2 }) };
}

export function generatePumpCsv(options: PumpDataOptions = {}): { csv: string; faults: InjectedFault[] } {
  const random = seededRandom(options.seed ?? 5);
  const minutes = options.minutes ?? 1440;
  const start = options.startMs ?? Date.UTC(2026, 10, 2);
  const lines = [`ts,pump,${PUMP_CHANNELS.join(',')}`];
  const faults: InjectedFault[] = [];
  for (let p = 0; p < (options.pumps ?? 3); p++) {
    const number = (options.firstPump ?? 0) + p + 1;
    const pump = `pump-${String(number).padStart(2, '0')}`;
    // A pump is the same pump in every file: its gains and demand phase follow its number.
    const own = seededRandom(7919 * number);
    const gain = { pressure: 2 + own(), current: 0.8 + own() * 0.4, vibration: 1 + own() };
    const phase = own() * 2 * Math.PI;
    const planned = planFaults(pump, p, options.faults?.perPump ?? 0, {
      steps: minutes,
      length: options.faults?.minutes ?? 60,
      stepMs: 60_000,
      start,
      kinds: FAULT_KINDS,
      channelOf: CHANNEL_OF,
      random,
    });
    faults.push(...planned);
    // Every file is a stretch of running operation: the bearing starts warm, at its steady
    // state for the first reading's current (a cold start in every file is a transient that
    // training sees once per file, and no fault kind).
    let temp: number | undefined;
    let stuck: number | undefined;
    for (let m = 0; m < minutes; m++) {
      const ts = start + m * 60_000;
      const demand = 0.6 + 0.3 * Math.sin((2 * Math.PI * m) / 1440 + phase) + 0.05 * gaussian(random);
      let flow = 100 * demand + gaussian(random) * 2;
      let pressure = gain.pressure * (flow / 10) ** 2 * 0.1 + 1 + gaussian(random) * 0.15;
      let current = gain.current * (flow / 10) * (pressure / 2) + 5 + gaussian(random) * 0.4;
      temp =
        temp === undefined
          ? 30 + current * 0.8
          : temp + (30 + current * 0.8 - temp) * 0.05 + gaussian(random) * 0.1;
      let vibration = gain.vibration + Math.abs(gaussian(random)) * 0.2;
      let reading = temp;
      const fault = planned.find((f) => ts >= f.start && ts <= f.end);
      if (fault) {
        const into = (ts - fault.start) / Math.max(1, fault.end - fault.start);
        if (fault.kind === 'spike') current *= 1.8;
        else if (fault.kind === 'drift') reading = temp + 12 * into;
        else if (fault.kind === 'stuck') flow = stuck ??= flow;
        else if (fault.kind === 'noise') vibration += gaussian(random) * 2;
        else pressure = 1 + gaussian(random) * 0.15 + (random() < 0.5 ? 0.5 : 0);
      } else stuck = undefined;
      lines.push(
        `${ts},${pump},${flow.toFixed(2)},${pressure.toFixed(3)},${current.toFixed(2)},${reading.toFixed(2)},${vibration.toFixed(3)}`,
      );
    }
  }
  return { csv: `${lines.join('\n')}\n`, faults };
}

/**
 * Where `count` faults of a machine (the `index`-th of its file) go: spread over its `steps`
 * readings apart from each other, each `length` readings long, kinds in turn across machines.
 */
function planFaults<Kind extends string>(
  series: string,
  index: number,
  count: number,
  o: {
    steps: number;
    length: number;
    stepMs: number;
    start: number;
    kinds: readonly Kind[];
    channelOf: Record<Kind, string>;
    random: () => number;
  },
): InjectedFault<Kind>[] {
  const slot = Math.floor(o.steps / Math.max(1, count));
  return Array.from({ length: count }, (_, f) => {
    const kind = o.kinds[(index * count + f) % o.kinds.length] as Kind;
    const at = f * slot + Math.floor(o.random() * Math.max(1, slot - o.length));
    return {
      series,
      kind,
      channel: o.channelOf[kind],
      start: o.start + at * o.stepMs,
      end: o.start + (at + o.length - 1) * o.stepMs,
    };
  });
}

/** Faults of a fan: the vibration classifier's fault states, a stuck axis and a noise burst. */
export type FanFaultKind = 'imbalance' | 'looseness' | 'bearing_wear' | 'stuck' | 'noise';
export const FAN_FAULT_KINDS: readonly FanFaultKind[] = [
  'imbalance',
  'looseness',
  'bearing_wear',
  'stuck',
  'noise',
];
export const FAN_CHANNELS = VIBRATION_CHANNELS;
const FAN_CHANNEL_OF: Record<FanFaultKind, string> = {
  imbalance: 'ax',
  looseness: 'ax',
  bearing_wear: 'ax',
  stuck: 'ay',
  noise: 'az',
};

export interface FanDataOptions {
  fans?: number;
  seconds?: number;
  frequencyHz?: number;
  /** The measurements' noise (a fan's own speed, gains and noise level come from its number). */
  seed?: number;
  firstFan?: number;
  startMs?: number;
  /** Faults to inject: `perFan`, each `seconds` long (default 20), at seeded places. */
  faults?: { perFan: number; seconds?: number };
}

/**
 * Fans for anomaly models at 100 Hz, deterministic for a seed: a 3-axis accelerometer per fan
 * (vibration-dataset.ts's machines in their normal state, humming at the shaft frequency; a
 * fan is the same fan in every file). Injected faults change a stretch's spectrum on every
 * axis (imbalance, looseness, bearing wear, as the vibration classifier's states do), freeze
 * one axis (stuck), or quadruple one axis's noise (noise).
 */
export function generateFanCsv(options: FanDataOptions = {}): {
  csv: string;
  faults: InjectedFault<FanFaultKind>[];
} {
  const random = seededRandom(options.seed ?? 5);
  const hz = options.frequencyHz ?? 100;
  const steps = Math.round((options.seconds ?? 600) * hz);
  const stepMs = 1000 / hz;
  const start = options.startMs ?? Date.UTC(2026, 10, 2);
  const lines = [`ts,fan,${FAN_CHANNELS.join(',')}`];
  const faults: InjectedFault<FanFaultKind>[] = [];
  for (let f = 0; f < (options.fans ?? 3); f++) {
    const number = (options.firstFan ?? 0) + f + 1;
    const fan = `fan-${String(number).padStart(2, '0')}`;
    const machine = vibrationMachine(seededRandom(104_729 * number));
    const planned = planFaults(fan, f, options.faults?.perFan ?? 0, {
      steps,
      length: Math.round((options.faults?.seconds ?? 20) * hz),
      stepMs,
      start,
      kinds: FAN_FAULT_KINDS,
      channelOf: FAN_CHANNEL_OF,
      random,
    });
    faults.push(...planned);
    let stuck: number | undefined;
    for (let i = 0; i < steps; i++) {
      const ts = Math.round(start + i * stepMs);
      const t = i / hz;
      const fault = planned.find((p) => ts >= p.start && ts <= p.end);
      const state = fault && fault.kind !== 'stuck' && fault.kind !== 'noise' ? fault.kind : 'normal';
      const values = vibrationSignal(state, t, machine, random);
      if (fault?.kind === 'stuck') values[1] = stuck ??= values[1] as number;
      else stuck = undefined;
      if (fault?.kind === 'noise') values[2] = (values[2] as number) + 3 * machine.noise * gaussian(random);
      lines.push(`${ts},${fan},${values.map((v) => v.toFixed(4)).join(',')}`);
    }
  }
  return { csv: `${lines.join('\n')}\n`, faults };
}
