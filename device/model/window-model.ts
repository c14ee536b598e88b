/**
 * A windowed model on the gateway: windows (from shared/timeseries/windower.ts) in, one
 * prediction per window out, with the manifest's window features applied exactly as the
 * trainer applied them; and the probation check on the manifest's golden windows.
 */

import { outputUnits } from '../../shared/target.ts';
import { type WindowInput, windowFromSamples, windowInput } from '../../shared/timeseries/features.ts';
import type { Window } from '../../shared/timeseries/windower.ts';
import { type Classified, goldenMismatch, type LoadedModel, noveltyMismatch } from './model.ts';

const inputs = new WeakMap<LoadedModel, WindowInput>();

/** The model's window input transform (made once per loaded model). */
export function windowInputOf(model: LoadedModel): WindowInput {
  let input = inputs.get(model);
  if (!input) {
    const window = model.manifest.window;
    if (!window) throw new Error(`model v${model.version} is not a windowed model`);
    input = windowInput(window.spec, window.features);
    inputs.set(model, input);
  }
  return input;
}

/**
 * Model inputs for `windows`, row-major, ready for `classifyInput`; `computed[i]`, where
 * given, is window i's input already made (with the window, while its values were at hand).
 * With `scratch`, the batch is written into its array (grown when too small) and valid until
 * the next call: a stream that predicts every chunk reuses one array instead of leaving one
 * per predict for V8's next full collection.
 */
export function windowBatch(
  model: LoadedModel,
  windows: readonly Pick<Window, 'values' | 'valid'>[],
  computed?: readonly (Float32Array | undefined)[],
  scratch?: { x: Float32Array },
) {
  const input = windowInputOf(model);
  const length = windows.length * input.width;
  if (scratch && scratch.x.length < length) scratch.x = new Float32Array(length);
  const x = scratch ? scratch.x.subarray(0, length) : new Float32Array(length);
  windows.forEach((window, i) => {
    const made = computed?.[i];
    if (made) x.set(made, i * input.width);
    else input.into(window, x, i * input.width);
  });
  return x;
}

/** One predict for all windows. */
export function classifyWindows(
  model: LoadedModel,
  windows: readonly Pick<Window, 'values' | 'valid'>[],
): Classified {
  return model.classifyInput(windowBatch(model, windows), windows.length);
}

/** Probation for a windowed model: its golden windows must give the trainer's outputs. */
export function windowProbationFailure(model: LoadedModel): string | undefined {
  const window = model.manifest.window;
  if (!window) return 'the manifest carries no window block';
  const { windows, outputs, tolerance } = window.golden;
  const { samples, channels } = window.spec;
  for (const [i, golden] of windows.entries()) {
    if (golden.length !== samples || golden.some((row) => row.length !== channels.length))
      return `golden window ${i} is not ${samples} samples of ${channels.length} channels`;
  }
  const classified = classifyWindows(model, windows.map(windowFromSamples));
  return (
    goldenMismatch(
      classified.probs,
      outputs,
      outputUnits(model.manifest.preprocessing),
      tolerance,
      'window',
    ) ?? noveltyMismatch(classified.novelty?.scores, model.manifest.novelty?.golden, 'window')
  );
}
