/**
 * The window lane thread: windows the CSV replay's series it is given and computes their model
 * inputs (spectral features or scaled samples) while the main thread predicts, so a windowed
 * gateway uses a second core. It runs the same SeriesWindower and windowInput as the main
 * thread and the trainer; see window-lane.ts for the main side and window-lane-protocol.ts
 * for the shared memory. It never returns to its event loop while it works: it waits on
 * the command counter, and reads setups from its port with receiveMessageOnPort.
 */
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { errorMessage } from '../shared/errors.ts';
import { type WindowInput, windowInput } from '../shared/timeseries/features.ts';
import { SeriesWindower, type Window } from '../shared/timeseries/windower.ts';
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
  type LaneColumns,
  type LaneOutputs,
  type LaneSetup,
  type LaneShared,
  META_WIDTH,
  REFUSAL_CAP,
  REFUSAL_WIDTH,
  REFUSED_DUPLICATE,
  REFUSED_OUT_OF_ORDER,
} from './window-lane-protocol.ts';

/** A blocked wait wakes this often to look at the stop flag (the main thread may be gone). */
const WAIT_MS = 1000;

const { shared, port } = workerData as { shared: LaneShared; port: MessagePort };
const control = new Int32Array(shared.control);
const commands = new Float64Array(shared.commands);
const refusals = new Float64Array(shared.refusals);

interface State {
  columns: LaneColumns;
  /** 1 for each series (by index) the main thread gave this thread (CMD_OWN), until the next END. */
  owns: Uint8Array;
  outputs: LaneOutputs;
  input: WindowInput;
  spec: LaneSetup['window']['spec'];
  /** By series index; labels are label indices (the main thread names them). */
  windowers: (SeriesWindower<number> | undefined)[];
  windowSize: number;
  /** The arrival time of the readings being pushed (the main thread's clock). */
  arrivedAt: number;
  /** The index of the command being done (its windows carry it). */
  command: number;
}

let state: State | undefined;
let produced = Atomics.load(control, C_PRODUCED);

/** Progress: a notify costs microseconds, so only when the main thread waits for one. */
function signal() {
  Atomics.add(control, C_SIGNAL, 1);
  if (Atomics.load(control, C_MAIN_WAITING) === 1) Atomics.notify(control, C_SIGNAL);
}

/** Waits while control[slot] is `value`, flagged so the main thread knows to notify. */
function waitWhile(slot: number, value: number) {
  Atomics.store(control, C_LANE_WAITING, 1);
  Atomics.wait(control, slot, value, WAIT_MS);
  Atomics.store(control, C_LANE_WAITING, 0);
}

function setup(message: LaneSetup): State {
  const { columns, window, outputs } = message;
  return {
    columns,
    owns: new Uint8Array(64),
    outputs,
    input: windowInput(window.spec, window.features),
    spec: window.spec,
    windowers: [],
    windowSize: window.spec.samples * window.spec.channels.length,
    arrivedAt: 0,
    command: 0,
  };
}

/** Waits (and signals) while the output ring is full; returns the slot the next window goes to. */
function nextSlot(s: State): number {
  const { capacity } = s.outputs;
  for (;;) {
    const consumed = Atomics.load(control, C_CONSUMED);
    if (produced - consumed < capacity) return produced % capacity;
    signal();
    waitWhile(C_CONSUMED, consumed);
    if (Atomics.load(control, C_STOP) === 1) throw new Error('stopped');
  }
}

/** The next slot's values in the output ring, for the windower to unroll a full window into. */
function slotValues(s: State): Float32Array {
  const at = nextSlot(s) * s.windowSize;
  return s.outputs.values.subarray(at, at + s.windowSize);
}

/** Publishes a window in the output ring: its values are in the slot already, unless padded. */
function emit(s: State, series: number, window: Window<number>) {
  const { meta, values, inputs } = s.outputs;
  const slot = nextSlot(s);
  const m = slot * META_WIDTH;
  meta[m] = series;
  meta[m + 1] = window.start;
  meta[m + 2] = window.end;
  meta[m + 3] = window.label ?? -1;
  meta[m + 4] = window.valid;
  meta[m + 5] = s.arrivedAt;
  meta[m + 6] = s.command;
  if (window.values.buffer !== values.buffer) values.set(window.values, slot * s.windowSize);
  s.input.into(window, inputs, slot * s.input.width);
  Atomics.store(control, C_PRODUCED, ++produced);
}

function windowerOf(s: State, series: number): SeriesWindower<number> {
  let windower = s.windowers[series];
  if (!windower) {
    windower = new SeriesWindower<number>(
      String(series),
      s.spec,
      (window) => emit(s, series, window),
      () => slotValues(s),
    );
    s.windowers[series] = windower;
  }
  return windower;
}

/** Readings [from, to) of the lane's series, as WindowStream.pushRows feeds its own. */
function push(s: State, from: number, to: number) {
  const { times, values, series, refused, labelIndex } = s.columns;
  for (let i = from; i < to; ) {
    const own = series[i] as number;
    if (refused[i] === 1 || s.owns[own] !== 1) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < to && series[end] === own && refused[end] === 0) end++;
    const windower = windowerOf(s, own);
    while (i < end) {
      i = windower.pushRun(times, values, labelIndex, i, end);
      if (i < end) {
        const count = Atomics.load(control, C_REFUSED);
        const r = (count % REFUSAL_CAP) * REFUSAL_WIDTH;
        refusals[r] = i;
        refusals[r + 1] = windower.refusal === 'duplicate' ? REFUSED_DUPLICATE : REFUSED_OUT_OF_ORDER;
        refusals[r + 2] = windower.latest;
        Atomics.store(control, C_REFUSED, count + 1);
        i++;
      }
    }
  }
}

function run() {
  let done = Atomics.load(control, C_DONE);
  for (;;) {
    const written = Atomics.load(control, C_WRITTEN);
    if (done === written) {
      if (Atomics.load(control, C_STOP) === 1) return;
      waitWhile(C_WRITTEN, written);
      continue;
    }
    const at = (done % COMMAND_CAP) * COMMAND_WIDTH;
    const kind = commands[at];
    if (state) state.command = done;
    if (kind === CMD_SETUP) {
      const received = receiveMessageOnPort(port);
      if (!received) throw new Error('a lane setup command came without its setup');
      state = setup(received.message as LaneSetup);
      produced = Atomics.load(control, C_PRODUCED);
    } else if (state && kind === CMD_PUSH) {
      state.arrivedAt = commands[at + 3] as number;
      push(state, commands[at + 1] as number, commands[at + 2] as number);
    } else if (state && kind === CMD_OWN) {
      const series = commands[at + 1] as number;
      if (series >= state.owns.length) {
        const grown = new Uint8Array(Math.max(series + 1, state.owns.length * 2));
        grown.set(state.owns);
        state.owns = grown;
      }
      state.owns[series] = 1;
    } else if (state && kind === CMD_END) {
      for (const windower of state.windowers) windower?.end();
      state.windowers = [];
      state.owns.fill(0);
    }
    Atomics.store(control, C_DONE, ++done);
    signal();
  }
}

try {
  run();
} catch (error) {
  if (Atomics.load(control, C_STOP) !== 1) {
    port.postMessage({ error: errorMessage(error) });
    Atomics.store(control, C_FAILED, 1);
    signal();
  }
}
