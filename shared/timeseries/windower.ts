/**
 * One series' readings in, windows out, as they stream: readings are resampled by linear
 * interpolation onto a uniform grid (anchored at a segment's first reading), a ring buffer
 * holds the latest `samples` grid points, and every `stride` points a full buffer becomes a
 * window. A gap between readings longer than `maxGapMs` ends the segment: no window spans
 * it. The trainer cuts its windows with this class and the gateway runs the same class on
 * live readings, so both see the same windows for the same readings.
 */
import type { ResolvedWindow } from './spec.ts';

/** A window; its label is a string, or whatever label type the windower was fed. */
export interface Window<L = string> {
  series: string;
  /** Grid times (ms) of the window's first and last samples. */
  start: number;
  end: number;
  /** `samples` x `channels` values, row-major, oldest first; padded leading samples are NaN. */
  values: Float32Array;
  /** The label of the window's last reading (undefined when readings carry none). */
  label: L | undefined;
  /** Real samples at the end of the window (less than `samples` only for a padded window). */
  valid: number;
}

export type PushOutcome = 'ok' | 'out-of-order' | 'duplicate';

/** Floats per slab that window values are cut from (256 KiB). */
const SLAB_FLOATS = 64 * 1024;
let slab = new Float32Array(SLAB_FLOATS);
let slabUsed = 0;

/**
 * A window's values (or its model input), cut from a shared slab: a windower emits thousands
 * of windows a second, and one ArrayBuffer each (an off-heap allocation the GC tracks) cost
 * more than copying the values into it. A slab lives while any window cut from it does.
 */
export function windowValues(length: number): Float32Array {
  if (length > SLAB_FLOATS / 4) return new Float32Array(length);
  if (slabUsed + length > SLAB_FLOATS) {
    slab = new Float32Array(SLAB_FLOATS);
    slabUsed = 0;
  }
  const values = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += length;
  return values;
}

type WindowSpecForWindower = Pick<
  ResolvedWindow,
  'channels' | 'frequencyHz' | 'samples' | 'stride' | 'maxGapMs' | 'short'
>;

export class SeriesWindower<L = string> {
  private readonly width: number;
  private readonly period: number;
  private readonly ring: Float32Array;
  /** Grid points emitted in the current segment. */
  private count = 0;
  /** The ring slot the next grid point goes to (count mod samples). */
  private slot = 0;
  /** Grid points until the next window (the first after `samples`, then every `stride`). */
  private untilWindow = 0;
  private origin = 0;
  private lastTime = Number.NaN;
  private readonly lastValues: Float32Array;
  private lastLabel: L | undefined;
  /** Labels of the buffered grid points (ring order), for the window's last reading. */
  private readonly ringLabels: (L | undefined)[];
  /** Why pushRun stopped at a reading. */
  refusal: Exclude<PushOutcome, 'ok'> = 'duplicate';
  /** `push`'s one reading, as pushRun's columns. */
  private readonly oneTime = new Float64Array(1);
  private readonly oneLabel: (L | undefined)[] = [undefined];

  constructor(
    readonly series: string,
    private readonly spec: WindowSpecForWindower,
    private readonly emit: (window: Window<L>) => void,
    /** Where a full window's values go (a caller may take them in place). */
    private readonly valuesFor: (length: number) => Float32Array = windowValues,
  ) {
    this.width = spec.channels.length;
    this.period = 1000 / spec.frequencyHz;
    this.ring = new Float32Array(spec.samples * this.width);
    this.ringLabels = new Array(spec.samples);
    this.lastValues = new Float32Array(this.width);
  }

  /** Time (ms) of the latest reading, NaN before the first. */
  get latest(): number {
    return this.lastTime;
  }

  /**
   * Feeds one reading, its channel values at `values[offset ..]` (so a caller holding many
   * readings in one array passes no copy); readings must come in time order (an older or
   * equal time is refused).
   */
  push(time: number, values: Float32Array, label?: L, offset = 0): PushOutcome {
    this.oneTime[0] = time;
    this.oneLabel[0] = label;
    return this.pushRun(this.oneTime, values, this.oneLabel, 0, 1, offset) === 1 ? 'ok' : this.refusal;
  }

  /**
   * Feeds readings `from` .. `to - 1` of this series, in time order: reading i's time is
   * `times[i]`, its label `labels?.[i]`, its channel values `values[valueAt + (i - from) *
   * channels ..]`. The resampler's one loop: `push` and `windowsOf` (the trainer) run it too,
   * a source holding many readings runs it over each series' run of them. Stops at the first
   * reading that is not after the one before it (`refusal` says how) and returns its index;
   * returns `to` when it took them all.
   */
  pushRun(
    times: ArrayLike<number>,
    values: Float32Array,
    labels: ArrayLike<L | undefined> | undefined,
    from: number,
    to: number,
    valueAt = from * this.width,
  ): number {
    const width = this.width;
    const ring = this.ring;
    const ringLabels = this.ringLabels;
    const last = this.lastValues;
    const period = this.period;
    const { maxGapMs, samples, stride } = this.spec;
    let v = valueAt;
    let i = from;
    while (i < to) {
      if (Number.isNaN(this.lastTime)) {
        this.startSegment(times[i] as number, values, labels?.[i], v);
        i++;
        v += width;
        continue;
      }
      // A segment's readings, its state in locals (this runs per reading). The previous
      // reading's values: the remembered ones for the first, then the reading before in `values`.
      let lastTime = this.lastTime;
      let lastLabel = this.lastLabel;
      let count = this.count;
      let slot = this.slot;
      let untilWindow = this.untilWindow;
      const origin = this.origin;
      let prev = last;
      let p = 0;
      let stop: 'refused' | 'gap' | undefined;
      for (; i < to; i++, v += width) {
        const time = times[i] as number;
        if (time <= lastTime) {
          this.refusal = time === lastTime ? 'duplicate' : 'out-of-order';
          stop = 'refused';
          break;
        }
        if (time - lastTime > maxGapMs) {
          stop = 'gap';
          break;
        }
        const label = labels?.[i];
        // Grid points in (lastTime, time]: interpolated between the previous reading and this one.
        let at = origin + count * period;
        const span = time - lastTime;
        while (at <= time + 1e-9) {
          const w = (at - lastTime) / span;
          const s = slot * width;
          for (let c = 0; c < width; c++)
            ring[s + c] = (prev[p + c] as number) * (1 - w) + (values[v + c] as number) * w;
          // A grid point takes the label of the latest reading at or before it.
          const pointLabel = at >= time - 1e-9 ? label : lastLabel;
          ringLabels[slot] = pointLabel;
          count++;
          if (++slot === samples) slot = 0;
          if (--untilWindow === 0) {
            untilWindow = stride;
            this.emitWindow(at, pointLabel, slot);
          }
          at = origin + count * period;
        }
        lastTime = time;
        lastLabel = label;
        prev = values;
        p = v;
      }
      this.lastTime = lastTime;
      this.lastLabel = lastLabel;
      this.count = count;
      this.slot = slot;
      this.untilWindow = untilWindow;
      if (prev !== last) for (let c = 0; c < width; c++) last[c] = prev[p + c] as number;
      if (stop === 'refused') return i;
      if (stop === 'gap') {
        this.end();
        this.startSegment(times[i] as number, values, labels?.[i], v);
        i++;
        v += width;
      }
    }
    return to;
  }

  /** Ends the current segment (a gap or the end of the data); a short one is padded under `pad`. */
  end(): void {
    const { samples } = this.spec;
    if (this.spec.short === 'pad' && this.count > 0 && this.count < samples) {
      const values = new Float32Array(samples * this.width).fill(Number.NaN);
      const missing = samples - this.count;
      values.set(this.ring.subarray(0, this.count * this.width), missing * this.width);
      this.emit({
        series: this.series,
        start: this.origin - missing * this.period,
        end: this.origin + (this.count - 1) * this.period,
        values,
        label: this.ringLabels[this.count - 1],
        valid: this.count,
      });
    }
    this.count = 0;
    this.slot = 0;
    this.lastTime = Number.NaN;
  }

  private startSegment(time: number, values: Float32Array, label: L | undefined, offset: number) {
    const { samples, stride } = this.spec;
    for (let c = 0; c < this.width; c++) {
      this.ring[c] = values[offset + c] as number;
      this.lastValues[c] = values[offset + c] as number;
    }
    this.ringLabels[0] = label;
    this.origin = time;
    this.lastTime = time;
    this.lastLabel = label;
    this.count = 1;
    this.slot = samples === 1 ? 0 : 1;
    this.untilWindow = samples;
    // A one-sample window is full at once.
    if (--this.untilWindow === 0) {
      this.untilWindow = stride;
      this.emitWindow(time, label, this.slot);
    }
  }

  /** The ring as a window ending at grid time `at`, unrolled oldest first (`oldest` is the next slot to write). */
  private emitWindow(at: number, label: L | undefined, oldest: number) {
    const { samples } = this.spec;
    const values = this.valuesFor(samples * this.width);
    const head = (samples - oldest) * this.width;
    values.set(this.ring.subarray(oldest * this.width), 0);
    values.set(this.ring.subarray(0, oldest * this.width), head);
    this.emit({
      series: this.series,
      start: at - (samples - 1) * this.period,
      end: at,
      values,
      label,
      valid: samples,
    });
  }
}

/** Every window of one series' readings (times ascending), as the gateway would cut them. */
export function windowsOf(
  series: string,
  spec: WindowSpecForWindower,
  times: ArrayLike<number>,
  values: Float32Array,
  labels?: readonly (string | undefined)[],
): Window[] {
  const out: Window[] = [];
  const windower = new SeriesWindower(series, spec, (window) => out.push(window));
  // A refused reading (not after the one before it) is skipped, as the gateway skips it.
  for (let i = 0; i < times.length; ) {
    i = windower.pushRun(times, values, labels, i, times.length);
    if (i < times.length) i++;
  }
  windower.end();
  return out;
}
