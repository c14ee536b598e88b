/**
 * The main thread's side of the window lane (window-lane-thread.ts): a second thread that
 * windows some of a CSV replay's series and computes their model inputs, so a windowed
 * model's predicts, results and hand-over to the writer thread on the main thread overlap
 * with the windowing and features of the next readings. Each series goes to the lane when it
 * starts (`own`), unless the lane is behind (laneBehindLimit): then the main thread takes it.
 *
 * WindowStream.pushRows hands the lane each range of readings before it windows its own
 * series of the same range; `settle` (at every flush) waits until the lane has taken every
 * range handed to it and collects its windows, so a flush holds every window its readings
 * completed, as on one thread, and the replay's checkpoints mean what they meant. Windows
 * keep their order within a series; across series a flush lists the main thread's first.
 *
 * One lane per process (like the result writer thread), started on first use, held by one
 * replay at a time; none on a machine with one core, where a second thread only adds work.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { WindowManifest } from '../shared/schemas.ts';
import { windowInput } from '../shared/timeseries/features.ts';
import { type Window, windowValues } from '../shared/timeseries/windower.ts';
import { threadCode } from './thread-code.ts';
import {
  C_CONSUMED,
  C_DONE,
  C_FAILED,
  C_LANE_WAITING,
  C_MAIN_WAITING,
  C_PRODUCED,
  C_REFUSED,
  C_SIGNAL,
  C_STOP,
  C_WRITTEN,
  CMD_END,
  CMD_OWN,
  CMD_PUSH,
  CMD_SETUP,
  COMMAND_CAP,
  COMMAND_WIDTH,
  CONTROL_SLOTS,
  type LaneColumns,
  type LaneOutputs,
  type LaneSetup,
  type LaneShared,
  META_WIDTH,
  REFUSAL_CAP,
  REFUSAL_WIDTH,
  REFUSED_DUPLICATE,
} from './window-lane-protocol.ts';

/** A window the lane made, with its model input computed there. */
export interface LaneWindow {
  window: Window;
  arrivedAt: number;
  input: Float32Array;
  /** The command (pushRows call) whose readings completed it. */
  seq: number;
}

/** A reading the lane's windowers refused (out of time order or repeated). */
export interface LaneRefusal {
  index: number;
  outcome: 'duplicate' | 'out-of-order';
  /** The series' latest reading time when it came. */
  latest: number;
}

/** Bytes of output ring per setup at most (the ring holds at least 2 windows). */
const OUTPUT_BYTES = 16 * 2 ** 20;
/** Windows the output ring holds at most: two predicts' worth, so the lane rarely waits. */
const OUTPUT_WINDOWS = 2048;
/**
 * Commands the main thread may be ahead of the lane: enough to keep the lane a predict ahead
 * while the main thread predicts and hands over a flush (128 unpaced replay chunks of 2,048,
 * some 260,000 readings; a lead of one flush's worth left the lane idle during each predict
 * and the main thread waiting for it after; 512 chunks read the same on the device bench). A
 * flush takes only the windows of readings both threads have windowed, so the replay's
 * checkpoints keep their meaning; the rest wait for the next flush.
 */
const MAX_LEAD = 128;
/** How long the main thread waits for a lane that shows no progress before it gives up. */
const STALL_MS = 30_000;

/**
 * How far behind (in readings handed to it, not windowed yet) the lane may be when a series
 * starts for it still to be given the series: the main thread windows a series itself only
 * while the lane is busy with readings it was given before, so the two finish a pass about
 * together whatever this machine's cores run at (on the device bench some 25,000 readings did
 * best of 2,000 to 65,000). A recurrent (raw) model's predicts are most of the main thread's
 * work: the lane takes all its series.
 */
export function laneBehindLimit(features: WindowManifest['features']['kind']): number {
  return features === 'raw' ? Number.POSITIVE_INFINITY : 24_576;
}

/** A replay's readings as the lane takes them: its shared columns, and the names their indices stand for. */
export interface LaneSource {
  forLane(): LaneColumns;
  readonly seriesNames: readonly string[];
  readonly labelNames: readonly string[];
}

export class WindowLane {
  private static instance: WindowLane | undefined;
  private static held = false;

  /** The process's lane, if this machine has a core for it and no other replay holds it. */
  static acquire(): WindowLane | undefined {
    if (WindowLane.held || availableParallelism() < 2 || process.env.EDGELOOP_WINDOW_LANE === 'off')
      return undefined;
    WindowLane.instance ??= new WindowLane();
    WindowLane.held = true;
    return WindowLane.instance;
  }

  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly control: Int32Array;
  private readonly commandRing: Float64Array;
  private readonly refusals: Float64Array;
  private written = 0;
  private consumed = 0;
  private refusalsSeen = 0;
  private outputs: LaneOutputs | undefined;
  private configured: { source: LaneSource; window: WindowManifest } | undefined;
  private failure: string | undefined;
  /** Windows taken from the output ring, not yet handed out by `settle`. */
  private collected: LaneWindow[] = [];

  private constructor() {
    const shared: LaneShared = {
      control: new SharedArrayBuffer(CONTROL_SLOTS * 4),
      commands: new SharedArrayBuffer(COMMAND_CAP * COMMAND_WIDTH * 8),
      refusals: new SharedArrayBuffer(REFUSAL_CAP * REFUSAL_WIDTH * 8),
    };
    this.control = new Int32Array(shared.control);
    this.commandRing = new Float64Array(shared.commands);
    this.refusals = new Float64Array(shared.refusals);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(threadCode('window-lane-thread.ts'), {
      eval: true,
      workerData: { shared, port: port2 },
      transferList: [port2],
    });
    this.worker.unref();
    this.worker.on('error', (error) => {
      this.failure ??= error.message;
    });
  }

  /** Lets another replay take the lane; its windows not yet collected are dropped. */
  release(): void {
    if (WindowLane.instance !== this) return;
    try {
      this.discard();
    } finally {
      this.configured = undefined;
      WindowLane.held = false;
    }
  }

  /** Whether the lane windows these readings for this model's window now. */
  isConfigured(source: LaneSource, window: WindowManifest): boolean {
    const configured = this.configured;
    return configured?.source === source && configured.window === window;
  }

  /** Sets the lane to window `source`'s readings (of the series it is given) for `window`; drops what it held. */
  configure(source: LaneSource, window: WindowManifest): void {
    if (this.isConfigured(source, window)) return;
    this.discard();
    const { spec } = window;
    const windowSize = spec.samples * spec.channels.length;
    const inputWidth = windowInput(spec, window.features).width;
    const perWindow = META_WIDTH * 8 + (windowSize + inputWidth) * 4 || 1;
    const capacity = Math.max(2, Math.min(OUTPUT_WINDOWS, Math.floor(OUTPUT_BYTES / perWindow)));
    let outputs = this.outputs;
    if (
      !outputs ||
      outputs.capacity !== capacity ||
      outputs.values.length !== capacity * windowSize ||
      outputs.inputs.length !== capacity * inputWidth
    ) {
      outputs = {
        capacity,
        meta: new Float64Array(new SharedArrayBuffer(capacity * META_WIDTH * 8)),
        values: new Float32Array(new SharedArrayBuffer(capacity * windowSize * 4)),
        inputs: new Float32Array(new SharedArrayBuffer(capacity * inputWidth * 4)),
      };
      this.outputs = outputs;
    }
    const setup: LaneSetup = {
      columns: source.forLane(),
      window: { spec: window.spec, features: window.features },
      outputs,
    };
    this.port.postMessage(setup);
    this.command(CMD_SETUP, 0, 0, 0);
    this.configured = { source, window };
  }

  /** The lane windows readings [from, to) of its series. */
  push(from: number, to: number, arrivedAt: number): void {
    this.command(CMD_PUSH, from, to, arrivedAt);
  }

  /** The lane windows series `series` (an index) from the next push, until `end`. */
  own(series: number): void {
    this.command(CMD_OWN, series, 0, 0);
  }

  /** Commands handed and not done yet. */
  get behind(): number {
    return this.written - Atomics.load(this.control, C_DONE);
  }

  /** Every series' segment ends (a short one is padded under `pad`), as WindowStream.endAll. */
  end(): void {
    this.command(CMD_END, 0, 0, 0);
  }

  /** Windows made and not taken yet (all but the latest command's are complete). */
  get pending(): number {
    return this.collected.length + Atomics.load(this.control, C_PRODUCED) - this.consumed;
  }

  /** Commands the lane has done. */
  get done(): number {
    return Atomics.load(this.control, C_DONE);
  }

  /** Commands handed to the lane so far: the next command's index. */
  get handed(): number {
    return this.written;
  }

  /** Waits until the lane has done every command; returns its windows not taken yet, oldest first. */
  settle(): LaneWindow[] {
    this.waitFor(() => Atomics.load(this.control, C_DONE) === this.written);
    return this.take().windows;
  }

  /**
   * The lane's windows made so far, without waiting, and how many commands it has done: every
   * window of a command before `done` is among them (or was taken before).
   */
  take(): { windows: LaneWindow[]; done: number } {
    this.check();
    const done = Atomics.load(this.control, C_DONE);
    this.collect();
    const windows = this.collected;
    this.collected = [];
    return { windows, done };
  }

  /** Readings the lane refused since the last call. */
  takeRefusals(): LaneRefusal[] {
    const count = Atomics.load(this.control, C_REFUSED);
    const out: LaneRefusal[] = [];
    for (let k = Math.max(this.refusalsSeen, count - REFUSAL_CAP); k < count; k++) {
      const r = (k % REFUSAL_CAP) * REFUSAL_WIDTH;
      out.push({
        index: this.refusals[r] as number,
        outcome: this.refusals[r + 1] === REFUSED_DUPLICATE ? 'duplicate' : 'out-of-order',
        latest: this.refusals[r + 2] as number,
      });
    }
    // A burst of more refusals than the ring holds is counted, the oldest not described.
    const lost = count - this.refusalsSeen - out.length;
    for (let k = 0; k < lost; k++) out.unshift({ index: -1, outcome: 'out-of-order', latest: Number.NaN });
    this.refusalsSeen = count;
    return out;
  }

  /** Waits for the lane to finish what it was given and drops its windows. */
  private discard(): void {
    if (!this.configured) return;
    this.settle();
    this.takeRefusals();
  }

  private command(kind: number, from: number, to: number, arrivedAt: number) {
    const lead = Math.min(MAX_LEAD, COMMAND_CAP);
    if (this.written - Atomics.load(this.control, C_DONE) >= lead) {
      // The lane may itself wait for room in the output ring, so collect while waiting.
      this.waitFor(() => this.written - Atomics.load(this.control, C_DONE) < lead);
    }
    const at = (this.written % COMMAND_CAP) * COMMAND_WIDTH;
    this.commandRing[at] = kind;
    this.commandRing[at + 1] = from;
    this.commandRing[at + 2] = to;
    this.commandRing[at + 3] = arrivedAt;
    Atomics.store(this.control, C_WRITTEN, ++this.written);
    this.wake();
  }

  /** Takes every window in the output ring into `collected` (copies: its slots are written again). */
  private collect() {
    const outputs = this.outputs;
    const configured = this.configured;
    if (!outputs || !configured) return;
    const produced = Atomics.load(this.control, C_PRODUCED);
    if (produced === this.consumed) return;
    const { capacity, meta, values, inputs } = outputs;
    const { spec } = configured.window;
    const windowSize = spec.samples * spec.channels.length;
    const inputWidth = inputs.length / capacity;
    const { labelNames, seriesNames } = configured.source;
    const into = this.collected;
    for (let k = this.consumed; k < produced; k++) {
      const slot = k % capacity;
      const m = slot * META_WIDTH;
      const windowAt = slot * windowSize;
      const inputAt = slot * inputWidth;
      const copy = windowValues(windowSize);
      copy.set(values.subarray(windowAt, windowAt + windowSize));
      const input = windowValues(inputWidth);
      input.set(inputs.subarray(inputAt, inputAt + inputWidth));
      const series = meta[m] as number;
      const label = meta[m + 3] as number;
      into.push({
        window: {
          series: seriesNames[series] as string,
          start: meta[m + 1] as number,
          end: meta[m + 2] as number,
          values: copy,
          label: label < 0 ? undefined : labelNames[label],
          valid: meta[m + 4] as number,
        },
        arrivedAt: meta[m + 5] as number,
        input,
        seq: meta[m + 6] as number,
      });
    }
    this.consumed = produced;
    Atomics.store(this.control, C_CONSUMED, produced);
    this.wake();
  }

  /** Wakes the lane if it waits (a notify costs microseconds; most commands find it busy). */
  private wake() {
    if (Atomics.load(this.control, C_LANE_WAITING) === 1) {
      Atomics.notify(this.control, C_WRITTEN);
      Atomics.notify(this.control, C_CONSUMED);
    }
  }

  /** Blocks until `done()`, collecting windows meanwhile; throws if the lane failed or stalled. */
  private waitFor(done: () => boolean) {
    let lastProgress = performance.now();
    for (;;) {
      const signal = Atomics.load(this.control, C_SIGNAL);
      if (done()) return;
      this.check();
      this.collect();
      if (done()) return;
      // Flagged, then waited on: the lane's next step either changes the signal first or sees the flag.
      Atomics.store(this.control, C_MAIN_WAITING, 1);
      const woke = Atomics.wait(this.control, C_SIGNAL, signal, 100);
      Atomics.store(this.control, C_MAIN_WAITING, 0);
      if (woke !== 'timed-out') lastProgress = performance.now();
      else if (performance.now() - lastProgress > STALL_MS) this.fail('it made no progress for 30 s');
    }
  }

  private check() {
    if (Atomics.load(this.control, C_FAILED) === 1) {
      const message = receiveMessageOnPort(this.port)?.message as { error?: string } | undefined;
      this.fail(message?.error ?? 'unknown error');
    }
    if (this.failure) this.fail(this.failure);
  }

  private fail(why: string): never {
    // This lane is done for: the next replay starts a new one (or windows on the main thread).
    if (WindowLane.instance === this) {
      WindowLane.instance = undefined;
      WindowLane.held = false;
    }
    Atomics.store(this.control, C_STOP, 1);
    void this.worker.terminate();
    throw new Error(`the window lane thread failed: ${why}`);
  }
}
