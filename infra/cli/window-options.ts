/**
 * The `window` block of edgeloop.json as command-line flags, shared by `edgeloop train` and
 * `edgeloop demo`: --time COL --series COL --window-ms N --stride-ms N [--frequency-hz N]
 * [--features raw|spectral]. With --time, `--features raw` or `--features spectral` names what
 * the windowed model sees; any other --features value is still the list of columns (channels).
 */

import { intOption, UsageError } from '../../shared/cli/command.ts';
import { describeZodError, type WindowSpec, WindowSpecSchema } from '../../shared/schemas.ts';

export const windowOptions = {
  time: {
    type: 'string',
    description: 'time column of long-format readings (turns on windows)',
    valueName: 'COL',
  },
  series: { type: 'string', description: 'series column (machine, device, session)', valueName: 'COL' },
  'window-ms': { type: 'string', description: 'window length in ms', valueName: 'N' },
  'stride-ms': {
    type: 'string',
    description: 'window stride in ms (default: the window length)',
    valueName: 'N',
  },
  'frequency-hz': {
    type: 'string',
    description: 'resample readings to this frequency (default: inferred)',
    valueName: 'N',
  },
} as const;

type Values = Record<string, string | boolean | undefined>;

const WINDOW_FLAGS = ['series', 'window-ms', 'stride-ms', 'frequency-hz'] as const;

/** `--features raw|spectral` with --time: the window's model input, not a column list. */
export function windowFeatureKind(values: Values): 'raw' | 'spectral' | undefined {
  const kind = values.features;
  return typeof values.time === 'string' && (kind === 'raw' || kind === 'spectral') ? kind : undefined;
}

/** The window spec the flags ask for, or undefined without --time (then no window flag may be given). */
export function windowFromFlags(values: Values): WindowSpec | undefined {
  if (typeof values.time !== 'string') {
    const stray = WINDOW_FLAGS.filter((flag) => values[flag] !== undefined);
    if (stray.length)
      throw new UsageError(
        `${stray.map((f) => `--${f}`).join(', ')} need --time COL (the readings' time column)`,
      );
    return undefined;
  }
  const sizeMs = intOption(values, 'window-ms');
  if (sizeMs === undefined) throw new UsageError('--time needs --window-ms N (the window length)');
  const frequency = typeof values['frequency-hz'] === 'string' ? Number(values['frequency-hz']) : undefined;
  const parsed = WindowSpecSchema.safeParse({
    time: values.time,
    ...(typeof values.series === 'string' ? { series: values.series } : {}),
    sizeMs,
    strideMs: intOption(values, 'stride-ms') ?? sizeMs,
    ...(frequency !== undefined ? { frequencyHz: frequency } : {}),
    ...(windowFeatureKind(values) ? { features: windowFeatureKind(values) } : {}),
  });
  if (!parsed.success) throw new UsageError(`window flags: ${describeZodError(parsed.error)}`);
  return parsed.data;
}
