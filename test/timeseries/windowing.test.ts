import { describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors.ts';
import {
  spectralFeatureNames,
  spectralFeaturesInto,
  spectralWidth,
} from '../../shared/timeseries/features.ts';
import { type CollectedReadings, LongFormatCollector } from '../../shared/timeseries/long-format.ts';
import { prepareWindows, resolveWindow } from '../../shared/timeseries/prepare.ts';
import {
  bandsFor,
  type ResolvedWindow,
  type WindowSpecInput,
  WindowSpecSchema,
} from '../../shared/timeseries/spec.ts';
import { type Window, windowsOf } from '../../shared/timeseries/windower.ts';

const HZ = 10;
const spec10: ResolvedWindow = {
  time: 't',
  timeUnit: 'ms',
  channels: ['x'],
  frequencyHz: HZ,
  samples: 5,
  stride: 2,
  maxGapMs: 300,
  short: 'drop',
};

/** Readings every 100 ms (10 Hz) from t0, x = i, label by index. */
function stream(n: number, t0 = 0, label: (i: number) => string = () => 'a') {
  const times = Float64Array.from({ length: n }, (_, i) => t0 + i * 100);
  const values = Float32Array.from({ length: n }, (_, i) => i);
  const labels = Array.from({ length: n }, (_, i) => label(i));
  return { times, values, labels };
}

function collect(csv: string, window: WindowSpecInput, label = 'y', channels?: string[]): CollectedReadings {
  const [head, ...lines] = csv.trim().split('\n');
  const spec = WindowSpecSchema.parse(window);
  const collector = new LongFormatCollector((head as string).split(','), spec, label, channels);
  lines.forEach((line, i) => {
    collector.add(line.split(','), `data row ${i + 1}`);
  });
  return collector.finish();
}

describe('windows over one series', () => {
  it('cut a full window every stride, and label each with its last reading', () => {
    // Prepare
    const { times, values, labels } = stream(11, 0, (i) => (i < 8 ? 'a' : 'b'));

    // Act
    const windows = windowsOf('s', spec10, times, values, labels);

    // Assess: windows end at samples 4, 6, 8, 10 (5 samples, stride 2); the tail is dropped.
    expect(windows.map((w) => [w.start, w.end])).toEqual([
      [0, 400],
      [200, 600],
      [400, 800],
      [600, 1000],
    ]);
    expect(Array.from(windows[0]?.values ?? [])).toEqual([0, 1, 2, 3, 4]);
    expect(windows.map((w) => w.label)).toEqual(['a', 'a', 'b', 'b']);
  });

  it('never span a gap longer than the limit: the stream after it starts a new segment', () => {
    // Prepare: 6 readings, a 1 s gap, 6 readings.
    const before = stream(6, 0);
    const after = stream(6, 1500);
    const times = Float64Array.from([...before.times, ...after.times]);
    const values = Float32Array.from([...before.values, ...after.values]);

    // Act
    const windows = windowsOf('s', spec10, times, values);

    // Assess: one window from each side, none with samples from both.
    expect(windows.map((w) => [w.start, w.end])).toEqual([
      [0, 400],
      [1500, 1900],
    ]);
    for (const w of windows) expect(w.end - w.start).toBe(400);
  });

  it('pad a segment shorter than a window under "pad", and drop it under "drop"', () => {
    // Prepare
    const short = stream(3, 0);

    // Act
    const dropped = windowsOf('s', spec10, short.times, short.values, short.labels);
    const padded = windowsOf('s', { ...spec10, short: 'pad' }, short.times, short.values, short.labels);

    // Assess
    expect(dropped).toEqual([]);
    expect(padded).toHaveLength(1);
    expect(padded[0]?.valid).toBe(3);
    expect(Array.from(padded[0]?.values ?? []).slice(2)).toEqual([0, 1, 2]);
    expect(padded[0]?.values[0]).toBeNaN();
    expect(padded[0]?.end).toBe(200);
  });
});

describe('resampling', () => {
  it('interpolates readings at another rate onto the window frequency grid', () => {
    // Prepare: x = t/100 at 5 Hz (every 200 ms) and jittered; the grid is 10 Hz.
    const times = Float64Array.from([0, 190, 410, 600, 790, 1000]);
    const values = Float32Array.from(times, (t) => t / 100);

    // Act
    const windows = windowsOf('s', spec10, times, values);

    // Assess: a linear signal resamples exactly: grid point k (k * 100 ms) is k.
    expect(windows[0]?.start).toBe(0);
    expect(Array.from(windows[0]?.values ?? []).map((v) => Number(v.toFixed(4)))).toEqual([0, 1, 2, 3, 4]);
    expect(windows.map((w) => w.end)).toEqual([400, 600, 800, 1000]);
  });

  it('infers the frequency from the median interval when none is given, and says so', () => {
    // Prepare
    const rows = Array.from({ length: 40 }, (_, i) => `${i * 20},${i % 2},a`);
    const collected = collect(['t,x,y', ...rows].join('\n'), { time: 't', sizeMs: 200, strideMs: 100 });

    // Act
    const { resolved, notices } = resolveWindow(
      WindowSpecSchema.parse({ time: 't', sizeMs: 200, strideMs: 100 }),
      collected,
    );

    // Assess
    expect(resolved.frequencyHz).toBe(50);
    expect(resolved.samples).toBe(10);
    expect(resolved.stride).toBe(5);
    expect(notices.join(' ')).toMatch(/inferred from the median interval between readings \(20 ms\)/);
  });
});

describe('long-format readings', () => {
  it('keep series apart: windows never mix readings of two series interleaved in the file', () => {
    // Prepare: two machines interleaved row by row; machine a's x is 0, b's is 100.
    const rows: string[] = [];
    for (let i = 0; i < 30; i++) rows.push(`${i * 100},a,0,on`, `${i * 100 + 5},b,100,off`);
    const collected = collect(['t,m,x,y', ...rows].join('\n'), {
      time: 't',
      series: 'm',
      sizeMs: 400,
      strideMs: 200,
    });

    // Act
    const { resolved: spec } = resolveWindow(
      WindowSpecSchema.parse({ time: 't', series: 'm', sizeMs: 400, strideMs: 200, frequencyHz: 10 }),
      collected,
    );
    const windows = collected.series.flatMap((s) => windowsOf(s.name, spec, s.times, s.values, s.labels));

    // Assess
    expect(collected.series.map((s) => s.name)).toEqual(['a', 'b']);
    for (const w of windows) {
      const expected = w.series === 'a' ? 0 : 100;
      expect(Array.from(w.values).every((v) => v === expected)).toBe(true);
      expect(w.label).toBe(w.series === 'a' ? 'on' : 'off');
    }
  });

  it('reject times that go backwards, repeat, are not times, and channels that are not numbers', () => {
    const window = { time: 't', series: 'm', sizeMs: 400, strideMs: 200 };
    expect(() => collect('t,m,x,y\n100,a,1,p\n50,a,1,p', window)).toThrow(
      /data row 2: time 50 in series 'a' is before the reading at data row 1 \(100\): sort the readings by series and time/,
    );
    expect(() => collect('t,m,x,y\n100,a,1,p\n100,a,2,p', window)).toThrow(
      /repeats the reading at data row 1/,
    );
    // The same time in two series is two readings, not a duplicate.
    expect(() => collect('t,m,x,y\n100,a,1,p\n100,b,2,p', window)).not.toThrow();
    expect(() => collect('t,m,x,y\nlater,a,1,p', window)).toThrow(/neither a number nor an ISO 8601 time/);
    expect(() => collect('t,m,x,y\n100,a,high,p', window)).toThrow(
      /data row 1: channel 'x' is 'high', not a number/,
    );
    expect(() => collect('t,m,x,y\n100,a,1,p', { ...window, time: 'when' })).toThrow(
      /the time column 'when' is not in the header/,
    );
  });

  it('read ISO 8601 times and times in seconds', () => {
    const iso = collect('t,x,y\n2026-01-01T00:00:00.000Z,1,a\n2026-01-01T00:00:00.100Z,2,a', {
      time: 't',
      sizeMs: 100,
      strideMs: 100,
    });
    const seconds = collect('t,x,y\n1.5,1,a\n1.6,2,a', {
      time: 't',
      sizeMs: 100,
      strideMs: 100,
      timeUnit: 's',
    });
    expect(Array.from(iso.series[0]?.times ?? [])).toEqual([
      Date.parse('2026-01-01T00:00:00Z'),
      Date.parse('2026-01-01T00:00:00.100Z'),
    ]);
    expect(Array.from(seconds.series[0]?.times ?? []).map(Math.round)).toEqual([1500, 1600]);
  });
});

/** Long-format CSV: `series` machines, each `n` readings at 10 Hz, states alternating every 20 readings. */
function machinesCsv(series: number, n: number): string {
  const rows = ['t,m,x,y'];
  for (let s = 0; s < series; s++)
    for (let i = 0; i < n; i++)
      rows.push(`${i * 100},m${s},${Math.sin(i + s)},${Math.floor(i / 20) % 2 ? 'b' : 'a'}`);
  return rows.join('\n');
}

describe('the split', () => {
  const window = {
    time: 't',
    series: 'm',
    sizeMs: 500,
    strideMs: 200,
    frequencyHz: 10,
    minWindowsPerClass: 2,
  };

  it('puts each series in exactly one role when there are three or more', () => {
    // Prepare
    const collected = collect(machinesCsv(10, 120), window);

    // Act
    const prepared = prepareWindows(collected, WindowSpecSchema.parse(window), 42);

    // Assess
    const roleOf = new Map<string, string>();
    for (const role of ['train', 'validation', 'test'] as const) {
      for (const w of prepared.windows[role]) {
        expect(roleOf.get(w.series) ?? role).toBe(role);
        roleOf.set(w.series, role);
      }
    }
    expect(prepared.split).toBe('series');
    expect(new Set(roleOf.values())).toEqual(new Set(['train', 'validation', 'test']));
    expect(prepared.seriesOf.test.length).toBeGreaterThanOrEqual(1);
    expect(prepared.testSeries.map((s) => s.name).sort()).toEqual([...prepared.seriesOf.test].sort());
  });

  it('picks a split by series where every class has training windows, whatever the seed', () => {
    // Prepare: six machines, each in one state only (two machines per state).
    const rows = ['t,m,x,y'];
    for (let s = 0; s < 6; s++)
      for (let i = 0; i < 60; i++)
        rows.push(`${i * 100},m${s},${Math.sin(i * (s + 1))},${'abc'[Math.floor(s / 2)]}`);
    const collected = collect(rows.join('\n'), window);

    // Act
    const splits = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) =>
      prepareWindows(collected, WindowSpecSchema.parse(window), seed),
    );

    // Assess
    for (const prepared of splits) {
      expect(new Set(prepared.windows.train.map((w) => w.label))).toEqual(new Set(['a', 'b', 'c']));
      expect(prepared.seriesOf.test).toHaveLength(1);
    }
  });

  it('cuts one series into contiguous time blocks, with no window across a block edge', () => {
    // Prepare
    const collected = collect(machinesCsv(1, 600), window);

    // Act
    const prepared = prepareWindows(collected, WindowSpecSchema.parse(window), 42);

    // Assess: every training window ends before the first validation window starts, and so on.
    const { train, validation, test } = prepared.windows;
    const last = (ws: Window[]) => Math.max(...ws.map((w) => w.end));
    const first = (ws: Window[]) => Math.min(...ws.map((w) => w.start));
    expect(prepared.split).toBe('time-blocks');
    expect(last(train)).toBeLessThan(first(validation));
    expect(last(validation)).toBeLessThan(first(test));
    expect(train.length).toBeGreaterThan(test.length * 3);
  });

  it('rejects a window longer than any series, and too few windows of a class', () => {
    const collected = collect(machinesCsv(4, 30), window);
    expect(() => prepareWindows(collected, WindowSpecSchema.parse({ ...window, sizeMs: 5000 }), 1)).toThrow(
      /a window of 5000 ms \(50 samples at 10 Hz\) is longer than any series: the longest stretch without a gap over 300 ms is 2900 ms/,
    );
    expect(() =>
      prepareWindows(collected, WindowSpecSchema.parse({ ...window, minWindowsPerClass: 50 }), 1),
    ).toThrow(InputError);
    expect(() =>
      prepareWindows(collected, WindowSpecSchema.parse({ ...window, minWindowsPerClass: 50 }), 1),
    ).toThrow(/too few training windows for 'a' \(\d+\), 'b' \(\d+\): each class needs at least 50/);
  });
});

describe('spectral features', () => {
  it('default to 8 bands, and to two FFT bins a band (8 to 64) for an anomaly model; a window that says wins', () => {
    // Act / Assess
    expect(bandsFor('classification', 100)).toBe(8);
    expect(bandsFor('regression', 100)).toBe(8);
    expect(bandsFor(undefined, 100)).toBe(8);
    expect(bandsFor('anomaly', 100)).toBe(25); // 1 s at 100 Hz: 50 bins of 1 Hz, 2 Hz a band
    expect(bandsFor('anomaly', 30)).toBe(8);
    expect(bandsFor('anomaly', 1024)).toBe(64);
    expect(bandsFor('anomaly', 100, 4)).toBe(4);
    expect(WindowSpecSchema.parse({ time: 'ts', sizeMs: 1000, strideMs: 500 }).bands).toBeUndefined();
  });

  it('give a sine its RMS, kurtosis and the FFT band it lies in', () => {
    // Prepare: 128 samples at 100 Hz of a 2-amplitude 30 Hz sine (plus an offset of 5).
    const samples = 128;
    const values = Float32Array.from(
      { length: samples },
      (_, i) => 5 + 2 * Math.sin((2 * Math.PI * 30 * i) / 100),
    );
    const out = new Float32Array(spectralWidth(1, 8));

    // Act
    spectralFeaturesInto(values, samples, 1, samples, 8, out, 0);

    // Assess: mean, RMS, std, skewness, kurtosis, peak-to-peak, then the 8 bands (6.25 Hz each).
    const named = Object.fromEntries(
      spectralFeatureNames(['x'], 8).map((name, i) => [name, out[i] as number]),
    );
    expect(named['x:mean']).toBeCloseTo(5, 1);
    expect(named['x:std']).toBeCloseTo(Math.SQRT2, 1);
    expect(named['x:rms']).toBeCloseTo(Math.sqrt(25 + 2), 1);
    expect(named['x:skew']).toBeCloseTo(0, 1);
    expect(named['x:kurtosis']).toBeCloseTo(1.5, 1);
    expect(named['x:p2p']).toBeGreaterThan(3.7);
    const bands = Array.from(out.slice(6));
    expect(bands.indexOf(Math.max(...bands))).toBe(4); // 30 Hz lies in 25-31.25 Hz
    expect(Math.max(...bands)).toBeGreaterThan(-0.1); // nearly all the power: log10(share) ~ 0
  });

  it("with trend, give each channel its least-squares slope over the window's valid samples", () => {
    // Prepare: 16 samples of 2 channels; a ramp of 0.5 a sample (its first 4 samples padding,
    // NaN, as the windower pads) and a flat channel; the bands follow the slope.
    const samples = 16;
    const values = new Float32Array(samples * 2);
    for (let i = 0; i < samples; i++) {
      values[i * 2] = i < 4 ? Number.NaN : 3 + 0.5 * i;
      values[i * 2 + 1] = 7;
    }
    const out = new Float32Array(spectralWidth(2, 2, true));

    // Act
    spectralFeaturesInto(values, samples, 2, samples - 4, 2, out, 0, true);

    // Assess
    const names = spectralFeatureNames(['ramp', 'flat'], 2, true);
    const named = Object.fromEntries(names.map((name, i) => [name, out[i] as number]));
    expect(names).toHaveLength(2 * (6 + 1 + 2));
    expect(names.slice(6, 9)).toEqual(['ramp:slope', 'ramp:band0', 'ramp:band1']);
    expect(named['ramp:slope']).toBeCloseTo(0.5, 5);
    expect(named['ramp:mean']).toBeCloseTo(3 + 0.5 * 9.5, 5);
    expect(named['flat:slope']).toBe(0);
    expect(spectralWidth(2, 2)).toBe(2 * (6 + 2));
  });
});
