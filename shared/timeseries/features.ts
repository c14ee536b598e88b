/**
 * What a model sees of a window. `spectral`: per channel, mean, RMS, standard deviation,
 * skewness, kurtosis, peak-to-peak, with `trend` the least-squares slope per sample (how fast
 * the channel moves: wear shows as drift before it shows as level), and the log share of the
 * power in `bands` equal-width FFT bands (the
 * FFT is fft.js: tf.spectral.rfft has no kernel on the wasm backend), each feature scaled by
 * the training windows' mean and std. `raw`: the window's samples, scaled per channel, for a
 * recurrent model. The trainer and the gateway both call `windowInputInto`.
 */
import FFT from 'fft.js';
import type { ResolvedWindow, WindowFeatures } from './spec.ts';
import type { Window } from './windower.ts';

const STATISTICS = ['mean', 'rms', 'std', 'skew', 'kurtosis', 'p2p'] as const;

export function spectralFeatureNames(channels: readonly string[], bands: number, trend = false): string[] {
  return channels.flatMap((channel) => [
    ...STATISTICS.map((stat) => `${channel}:${stat}`),
    ...(trend ? [`${channel}:slope`] : []),
    ...Array.from({ length: bands }, (_, b) => `${channel}:band${b}`),
  ]);
}

const ffts = new Map<number, { fft: FFT; input: Float64Array; output: number[] }>();

function fftOf(size: number) {
  let entry = ffts.get(size);
  if (!entry) {
    const fft = new FFT(size);
    entry = { fft, input: new Float64Array(size), output: fft.createComplexArray() as number[] };
    ffts.set(size, entry);
  }
  return entry;
}

/** The FFT length for a window: the next power of two (at least 4; fft.js needs a power of two). */
export function fftSize(samples: number): number {
  return Math.max(4, 2 ** Math.ceil(Math.log2(samples)));
}

/**
 * Unscaled spectral features of one window into `out` at `offset`: only its `valid` last
 * samples count (a padded window's leading samples are not data).
 */
export function spectralFeaturesInto(
  values: Float32Array,
  samples: number,
  channels: number,
  valid: number,
  bands: number,
  out: Float32Array,
  offset: number,
  trend = false,
): void {
  const first = samples - valid;
  // The valid samples' times, centered, for the slope: t - (valid - 1) / 2.
  const tMean = (valid - 1) / 2;
  const tVariance = (valid * (valid * valid - 1)) / 12;
  const size = fftSize(samples);
  const { fft, input, output } = fftOf(size);
  const half = size / 2;
  let at = offset;
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    let sumSquares = 0;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = first; i < samples; i++) {
      const v = values[i * channels + c] as number;
      sum += v;
      sumSquares += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const mean = sum / valid;
    let m2 = 0;
    let m3 = 0;
    let m4 = 0;
    let cross = 0;
    input.fill(0);
    for (let i = first; i < samples; i++) {
      const d = (values[i * channels + c] as number) - mean;
      const d2 = d * d;
      m2 += d2;
      m3 += d2 * d;
      m4 += d2 * d2;
      cross += (i - first - tMean) * d;
      input[i - first] = d;
    }
    m2 /= valid;
    m3 /= valid;
    m4 /= valid;
    const std = Math.sqrt(m2);
    // A flat channel has no shape: skewness 0 and the kurtosis of nothing unusual (3).
    const flat = std < 1e-9;
    out[at++] = mean;
    out[at++] = Math.sqrt(sumSquares / valid);
    out[at++] = std;
    out[at++] = flat ? 0 : m3 / (std * std * std);
    out[at++] = flat ? 3 : m4 / (m2 * m2);
    out[at++] = max - min;
    if (trend) out[at++] = tVariance > 0 ? cross / tVariance : 0;
    fft.realTransform(output, input);
    // Bins 1..half (DC is gone with the mean), split into `bands` equal groups; each band's
    // share of the AC power (log), so a louder sensor or machine does not move the spectrum.
    const bandStart = at;
    let total = 0;
    for (let b = 0; b < bands; b++) {
      const from = 1 + Math.floor((b * half) / bands);
      const to = 1 + Math.floor(((b + 1) * half) / bands);
      let power = 0;
      for (let k = from; k < to; k++) {
        const re = output[2 * k] as number;
        const im = output[2 * k + 1] as number;
        power += re * re + im * im;
      }
      out[at++] = power;
      total += power;
    }
    for (let b = bandStart; b < at; b++) out[b] = Math.log10((out[b] as number) / (total + 1e-12) + 1e-6);
  }
}

export function spectralWidth(channels: number, bands: number, trend = false): number {
  return channels * (STATISTICS.length + (trend ? 1 : 0) + bands);
}

/** The model input a window gives: its width, its tensor shape per window, and the transform. */
export interface WindowInput {
  width: number;
  /** Per-window shape: [width] for spectral, [samples, channels] for raw. */
  shape: number[];
  into(window: Pick<Window, 'values' | 'valid'>, out: Float32Array, offset: number): void;
}

export function windowInput(spec: ResolvedWindow, features: WindowFeatures): WindowInput {
  const channels = spec.channels.length;
  const { samples } = spec;
  const { mean, std } = features.scale;
  if (features.kind === 'spectral') {
    const trend = features.trend ?? false;
    const width = spectralWidth(channels, features.bands, trend);
    if (mean.length !== width || std.length !== width)
      throw new Error(`the spectral scaling has ${mean.length} slots, the features ${width}`);
    return {
      width,
      shape: [width],
      into(window, out, offset) {
        spectralFeaturesInto(
          window.values,
          samples,
          channels,
          window.valid,
          features.bands,
          out,
          offset,
          trend,
        );
        for (let j = 0; j < width; j++) {
          out[offset + j] = ((out[offset + j] as number) - (mean[j] as number)) / (std[j] as number);
        }
      },
    };
  }
  if (mean.length !== channels || std.length !== channels)
    throw new Error(`the raw scaling has ${mean.length} channels, the window ${channels}`);
  const width = samples * channels;
  if (samples % features.frame !== 0)
    throw new Error(`a frame of ${features.frame} samples does not divide a window of ${samples}`);
  return {
    width,
    // The same values, row-major: a step is `frame` consecutive samples of every channel.
    shape: [samples / features.frame, features.frame * channels],
    into(window, out, offset) {
      for (let i = 0; i < samples; i++) {
        for (let c = 0; c < channels; c++) {
          const v = window.values[i * channels + c] as number;
          // A padded sample is NaN: zero after scaling, the channel's mean.
          out[offset + i * channels + c] = Number.isNaN(v)
            ? 0
            : (v - (mean[c] as number)) / (std[c] as number);
        }
      }
    },
  };
}

/** Most steps a recurrent model runs over a window: a GRU step costs the same for 1 or 10 samples. */
export const MAX_RECURRENT_STEPS = 16;

/** The smallest frame (a divisor of the window) that keeps the steps at or under the maximum. */
export function recurrentFrame(samples: number): number {
  for (let frame = 1; frame <= samples; frame++) {
    if (samples % frame === 0 && samples / frame <= MAX_RECURRENT_STEPS) return frame;
  }
  return samples;
}

/** Mean and std (floored so a constant slot scales to 0, not NaN) of `rows` vectors of `width`. */
function scaleOf(x: Float32Array, width: number, skipNaN: boolean) {
  const sum = new Float64Array(width);
  const sumSquares = new Float64Array(width);
  const count = new Float64Array(width);
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number;
    if (skipNaN && Number.isNaN(v)) continue;
    const j = i % width;
    sum[j] = (sum[j] as number) + v;
    sumSquares[j] = (sumSquares[j] as number) + v * v;
    count[j] = (count[j] as number) + 1;
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let j = 0; j < width; j++) {
    const n = Math.max(1, count[j] as number);
    const m = (sum[j] as number) / n;
    const variance = Math.max(0, (sumSquares[j] as number) / n - m * m);
    mean.push(Number(m.toPrecision(8)));
    const s = Math.sqrt(variance);
    std.push(s > 1e-6 ? Number(s.toPrecision(8)) : 1);
  }
  return { mean, std };
}

/** Fits the feature scaling on the training windows; `trend` adds each channel's slope (spectral). */
export function fitWindowFeatures(
  spec: ResolvedWindow,
  kind: 'spectral' | 'raw',
  bands: number,
  windows: readonly Pick<Window, 'values' | 'valid'>[],
  trend = false,
): WindowFeatures {
  const channels = spec.channels.length;
  if (kind === 'raw') {
    const all = new Float32Array(windows.length * spec.samples * channels);
    windows.forEach((window, i) => {
      all.set(window.values, i * spec.samples * channels);
    });
    return { kind: 'raw', scale: scaleOf(all, channels, true), frame: recurrentFrame(spec.samples) };
  }
  const width = spectralWidth(channels, bands, trend);
  const x = new Float32Array(windows.length * width);
  windows.forEach((window, i) => {
    spectralFeaturesInto(window.values, spec.samples, channels, window.valid, bands, x, i * width, trend);
  });
  return {
    kind: 'spectral',
    bands,
    ...(trend ? { trend } : {}),
    names: spectralFeatureNames(spec.channels, bands, trend),
    scale: scaleOf(x, width, false),
  };
}

/** The model inputs of many windows, row-major (n x width). */
export function windowInputs(input: WindowInput, windows: readonly Pick<Window, 'values' | 'valid'>[]) {
  const x = new Float32Array(windows.length * input.width);
  windows.forEach((window, i) => {
    input.into(window, x, i * input.width);
  });
  return x;
}

/** A window stored as samples x channels (null = a padded sample, JSON has no NaN), as the windower gives it. */
export function windowFromSamples(
  samples: readonly (readonly (number | null)[])[],
): Pick<Window, 'values' | 'valid'> {
  const values = Float32Array.from(samples.flat(), (v) => v ?? Number.NaN);
  const valid = samples.filter((row) => !row.some((v) => v === null || Number.isNaN(v))).length;
  return { values, valid };
}
