/**
 * Windows over sensor streams: the `window` block of edgeloop.json (what the user asks for)
 * and the resolved form that travels in the manifest (what the trainer decided: frequency,
 * samples per window, channels, the gap limit), so the gateway windows readings exactly as
 * the trainer did. Imports nothing but zod: shared/schemas.ts references these schemas.
 */
import { z } from 'zod';

export const WINDOW_FEATURE_KINDS = ['spectral', 'raw'] as const;
export type WindowFeatureKind = (typeof WINDOW_FEATURE_KINDS)[number];

export const WindowSpecSchema = z
  .object({
    /** The time column: epoch milliseconds (or seconds with timeUnit 's'), or ISO 8601 text. */
    time: z.string().min(1),
    /** The series column (machine, device, session); absent = the whole file is one series. */
    series: z.string().min(1).optional(),
    sizeMs: z.number().positive(),
    strideMs: z.number().positive(),
    /** The one frequency readings are resampled to; inferred from the readings when absent. */
    frequencyHz: z.number().positive().max(100_000).optional(),
    /** `spectral`: per-channel statistics and FFT band powers, then an MLP; `raw`: a GRU over the window. */
    features: z.enum(WINDOW_FEATURE_KINDS).default('spectral'),
    /** A numeric time column in milliseconds (default) or seconds. */
    timeUnit: z.enum(['ms', 's']).default('ms'),
    /** Readings further apart than this many sample periods start a new segment (no window crosses it). */
    maxGapPeriods: z.number().min(1).max(1000).default(3),
    /** A segment shorter than a window: `drop` it, or `pad` it to one window (leading samples zero after scaling). */
    short: z.enum(['drop', 'pad']).default('drop'),
    /** FFT band powers per channel (spectral features); the default depends on the task (`bandsFor`). */
    bands: z.number().int().min(1).max(64).optional(),
    /** Training windows needed per class. */
    minWindowsPerClass: z.number().int().min(1).default(10),
  })
  .strict()
  .refine((spec) => spec.strideMs <= spec.sizeMs, {
    message: 'strideMs must not exceed sizeMs (windows would skip readings)',
    path: ['strideMs'],
  });
export type WindowSpec = z.infer<typeof WindowSpecSchema>;
export type WindowSpecInput = z.input<typeof WindowSpecSchema>;

/** The window as the trainer resolved it: what the gateway needs to cut the same windows. */
export const ResolvedWindowSchema = z.object({
  time: z.string(),
  series: z.string().optional(),
  timeUnit: z.enum(['ms', 's']),
  channels: z.array(z.string()).min(1),
  frequencyHz: z.number().positive(),
  /** Samples per window and per stride, on the resampled grid. */
  samples: z.number().int().min(2),
  stride: z.number().int().min(1),
  /** Readings further apart than this start a new segment. */
  maxGapMs: z.number().positive(),
  short: z.enum(['drop', 'pad']),
});
export type ResolvedWindow = z.infer<typeof ResolvedWindowSchema>;

/** Scaling of one input slot: (value - mean) / std. */
const ScaleSchema = z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) });

export const WindowFeaturesSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('spectral'),
    bands: z.number().int().min(1),
    /** Each channel's least-squares slope follows its statistics (absent: a model from before it). */
    trend: z.boolean().optional(),
    /** Feature names in input order (channel:statistic). */
    names: z.array(z.string()).min(1),
    scale: ScaleSchema,
  }),
  z.object({
    kind: z.literal('raw'),
    /** Per-channel scaling of every sample. */
    scale: ScaleSchema,
    /** Consecutive samples stacked into one recurrent step (the model sees samples/frame steps). */
    frame: z.number().int().min(1),
  }),
]);
export type WindowFeatures = z.infer<typeof WindowFeaturesSchema>;

/** A window as the model sees it before features: `samples` rows of channel values, oldest first. */
/** Padded samples (a short segment under `pad`) are null: JSON has no NaN. */
export const WindowSamplesSchema = z.array(z.array(z.number().nullable()));

export const WindowManifestSchema = z.object({
  spec: ResolvedWindowSchema,
  features: WindowFeaturesSchema,
  /** Resampled windows and the probabilities the trainer got for them: the device's probation check. */
  golden: z.object({
    windows: z.array(WindowSamplesSchema).min(1),
    outputs: z.array(z.array(z.number())),
    tolerance: z.number().positive(),
  }),
  /** Windows per role the run trained, validated and scored on. */
  windows: z.object({ train: z.number().int(), validation: z.number().int(), test: z.number().int() }),
  split: z.enum(['series', 'time-blocks']),
});
export type WindowManifest = z.infer<typeof WindowManifestSchema>;

/** Samples per window and per stride at a frequency (at least 2 and 1). */
export function windowSamples(spec: Pick<WindowSpec, 'sizeMs' | 'strideMs'>, frequencyHz: number) {
  return {
    samples: Math.max(2, Math.round((spec.sizeMs * frequencyHz) / 1000)),
    stride: Math.max(1, Math.round((spec.strideMs * frequencyHz) / 1000)),
  };
}

/** What the registry keeps of a version's window: the resolved spec and the model input kind. */
export const RegistryWindowSchema = ResolvedWindowSchema.extend({ features: z.enum(WINDOW_FEATURE_KINDS) });
export type RegistryWindow = z.infer<typeof RegistryWindowSchema>;

/** One line for people: "1000 ms windows every 500 ms at 100 Hz of ax, ay, az per machine, spectral". */
export function describeWindow(window: RegistryWindow): string {
  const ms = (samples: number) => Math.round((samples * 1000) / window.frequencyHz);
  return `${ms(window.samples)} ms windows every ${ms(window.stride)} ms at ${window.frequencyHz} Hz of ${window.channels.join(', ')}${window.series ? ` per ${window.series}` : ''}, ${window.features}`;
}

/** Bands a classifier or a regression gets when the window does not say. */
export const DEFAULT_BANDS = 8;

/**
 * FFT bands per channel: the window's own, else 8 for classifiers and regression and, for an
 * anomaly model, two FFT bins per band (at least 8, at most 64). A class shows in coarse bands;
 * a fault that moves power to a nearby frequency (an imbalanced fan's 2x harmonic where another
 * healthy fan runs) shows only in fine ones, and an anomaly model must see what no label named.
 */
export function bandsFor(task: string | undefined, samples: number, bands?: number): number {
  if (bands !== undefined) return bands;
  if (task !== 'anomaly') return DEFAULT_BANDS;
  return Math.min(64, Math.max(DEFAULT_BANDS, Math.floor(samples / 4)));
}
