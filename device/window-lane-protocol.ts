/**
 * What the main thread and the window lane thread share (window-lane.ts and
 * window-lane-thread.ts): shared memory only, so a command or a window costs no message.
 *
 * - control (Int32): the counters below; each side waits on the other's with Atomics.wait.
 * - commands (Float64, a ring of COMMAND_CAP): main writes [kind, from, to, arrivedAt].
 * - outputs (a ring of windows, sized per setup): per window its META_WIDTH numbers, its
 *   values (samples x channels) and its model input (the features, or the scaled samples).
 * - refusals (Float64, a ring of REFUSAL_CAP): [reading index, kind, the series' latest time].
 *
 * A SETUP command's payload (the columns, the window spec and features, the output ring) comes
 * on the lane's MessagePort, posted before the command, and is read with receiveMessageOnPort.
 */
import type { WindowManifest } from '../shared/schemas.ts';

export const C_WRITTEN = 0; // commands written (main)
export const C_DONE = 1; // commands done (lane)
export const C_PRODUCED = 2; // windows written to the output ring (lane)
export const C_CONSUMED = 3; // windows taken from it (main)
export const C_SIGNAL = 4; // bumped on every step of the lane's progress (main waits on it)
export const C_FAILED = 5; // 1 once the lane thread failed (its error is on the port)
export const C_REFUSED = 6; // readings the lane's windowers refused
export const C_STOP = 7; // 1: the lane thread ends
export const C_MAIN_WAITING = 8; // 1 while the main thread waits on C_SIGNAL (notify only then)
export const C_LANE_WAITING = 9; // 1 while the lane waits on C_WRITTEN or C_CONSUMED
export const CONTROL_SLOTS = 10;

export const COMMAND_CAP = 1024;
export const COMMAND_WIDTH = 4;
export const CMD_PUSH = 1; // readings [from, to) of the columns (the lane's series only)
export const CMD_END = 2; // end every segment (a short one padded under `pad`), as endAll
export const CMD_SETUP = 3; // the next port message: columns, spec, features, outputs
export const CMD_OWN = 4; // the lane windows series [from] (an index) until the next END or SETUP

/** Per window: series index, start, end, label index (-1: none), valid samples, arrivedAt, command. */
export const META_WIDTH = 7;

export const REFUSAL_CAP = 64;
export const REFUSAL_WIDTH = 3;
export const REFUSED_DUPLICATE = 0;
export const REFUSED_OUT_OF_ORDER = 1;

export interface LaneShared {
  control: SharedArrayBuffer;
  commands: SharedArrayBuffer;
  refusals: SharedArrayBuffer;
}

/** The readings the lane windows, as ReadingColumns holds them, in shared memory. */
export interface LaneColumns {
  times: Float64Array;
  values: Float32Array;
  /** Series index of each reading. */
  series: Int32Array;
  refused: Uint8Array;
  /** Label index of each reading, -1 for a reading without a label. */
  labelIndex: Int32Array;
}

export interface LaneOutputs {
  capacity: number;
  meta: Float64Array;
  values: Float32Array;
  inputs: Float32Array;
}

export interface LaneSetup {
  columns: LaneColumns;
  window: Pick<WindowManifest, 'spec' | 'features'>;
  outputs: LaneOutputs;
}
