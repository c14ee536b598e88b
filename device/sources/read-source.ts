/**
 * Runs the device's configured source (a CSV replay or stdin) through the path the serving
 * model needs: rows, or windows for a windowed model. The device hands it what readings go
 * into and what it reports back; the source owns nothing of the device's state.
 */
import type { Readable } from 'node:stream';
import type { ReadingList } from '../../shared/dataset/reading-table.ts';
import type { Refusal } from '../../shared/dataset/readings.ts';
import { errorMessage } from '../../shared/errors.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import type { InferenceResult, SourceStatus } from '../../shared/schemas.ts';
import type { Engine } from '../model/engine.ts';
import type { ResultStream } from '../results/result-writer.ts';
import { runLiveInput } from './live/live-input.ts';
import { type ClassifiedChunk, runCsvReplay, runJsonLines, type SourceSpec } from './sources.ts';
import { LiveWindows, runWindowJsonLines, runWindowReplay } from './window-sources.ts';
import type { SeriesLimits, SeriesStats, WindowResult } from './window-stream.ts';

export interface SourceContext {
  thing: string;
  stateDir: string;
  /** Aborted when the device stops (a live source's queue closes). */
  signal: AbortSignal;
  /** The outbox's resume position: after the last reading whose result is durable. */
  durablePosition: () => number;
  /** A live source started: its status entry. */
  onSourceStatus: (status: (now?: number) => SourceStatus) => void;
  /** A window stream opened (its open series go into the status). */
  onWindowStream: (stream: { readonly series: SeriesStats }) => void;
  /** Part of stdin result ids, so a restart never reuses one. */
  bootId: string;
  engine: Engine;
  batcher: ResultStream;
  labelColumn: () => string;
  stopped: () => boolean;
  /** Resolves when the next readings may be read (the disk gate). */
  gate: () => Promise<void>;
  /** Whether the disk gate is open right now (a live source's fast path). */
  gateOpen?: () => boolean;
  log: (line: string) => void;
  /** The stdin stream, opened only for a stdin source. */
  stdin: () => Readable;
  stdout: (line: string) => void;
  series?: SeriesLimits;
  /** `count` more readings were answered. */
  onProduced: (count: number) => void;
  /** The replay's next position (its results carry it to the outbox checkpoint). */
  onPosition: (next: number) => void;
  /** A reading the serving model may not answer, from the source named. */
  refuse: (source: string) => (refusal: Refusal, reading: unknown) => void;
  /** Hard-example sampling hooks, when it is on. */
  onClassified?: (chunk: ClassifiedChunk) => void;
  onInferred?: (rows: readonly RawRow[], results: readonly InferenceResult[]) => void;
  onWindowResults?: (results: readonly WindowResult[]) => void;
}

/**
 * Reads `source` (its rows already loaded for a CSV replay) from `position` until it ends,
 * reaches its limit or the device stops.
 */
export async function readSource(
  source: Exclude<SourceSpec, { kind: 'none' }>,
  csvRows: ReadingList | undefined,
  position: number,
  ctx: SourceContext,
): Promise<void> {
  const { engine, batcher, log } = ctx;
  const windowed = engine.serving?.manifest.window !== undefined;
  const onWindows = (results: readonly WindowResult[]) => {
    ctx.onProduced(results.length);
    ctx.onWindowResults?.(results);
  };
  if (source.kind === 'csv' && csvRows) {
    const end = windowed
      ? await runWindowReplay(csvRows, source, position, {
          thing: ctx.thing,
          engine,
          batcher,
          stopped: ctx.stopped,
          gate: ctx.gate,
          log,
          onProgress: ctx.onPosition,
          onResults: onWindows,
          refuse: ctx.refuse('csv'),
        })
      : await runCsvReplay(csvRows, source, position, {
          thing: ctx.thing,
          engine,
          batcher,
          labelColumn: ctx.labelColumn,
          stopped: ctx.stopped,
          gate: ctx.gate,
          ...(ctx.onClassified ? { onClassified: ctx.onClassified } : {}),
          onProgress: (next, answered) => {
            ctx.onProduced(answered);
            ctx.onPosition(next);
          },
          refuse: ctx.refuse('csv'),
        });
    log(`csv source: ${end - position} readings this run${windowed ? ' (windows)' : ''}, position ${end}`);
  } else if (source.kind === 'stdin' && windowed) {
    const live = new LiveWindows(engine, `${ctx.thing}:stdin:${ctx.bootId}:`, onWindows, ctx.series);
    ctx.onWindowStream(live);
    await runWindowJsonLines(ctx.stdin(), {
      live,
      batcher,
      write: ctx.stdout,
      limit: source.limit,
      stopped: ctx.stopped,
      gate: ctx.gate,
      refuse: ctx.refuse('stdin'),
    });
  } else if (source.kind === 'mqtt' || source.kind === 'modbus' || source.kind === 'opcua') {
    await runLiveInput(source, ctx);
  } else if (source.kind === 'stdin') {
    await runJsonLines(ctx.stdin(), {
      engine,
      batcher,
      idPrefix: `${ctx.thing}:stdin:${ctx.bootId}:`,
      labelColumn: ctx.labelColumn,
      write: ctx.stdout,
      limit: source.limit,
      stopped: ctx.stopped,
      gate: ctx.gate,
      refuse: ctx.refuse('stdin'),
      ...(ctx.onInferred ? { onInferred: ctx.onInferred } : {}),
    });
  }
}

/**
 * The device's source, run once a model serves (`modelReady`): read from `position()` to its
 * end, its limit or the device's stop; then its last results are made durable, waiting for
 * the disk while a storage fault holds them (a stop does not wait with them).
 */
export class SourceRun {
  /** Reading now (the source asks the disk gate itself before each chunk). */
  running = false;
  readonly done: Promise<void>;

  constructor(
    source: Exclude<SourceSpec, { kind: 'none' }>,
    csvRows: ReadingList | undefined,
    ctx: SourceContext & {
      modelReady: Promise<void>;
      position: () => number;
      /** The source read all it will read and its results are stored. */
      onEnded: () => void;
      onFailed: (reason: string) => void;
    },
  ) {
    this.done = ctx.modelReady
      .then(async () => {
        if (ctx.stopped()) return;
        this.running = true;
        await readSource(source, csvRows, ctx.position(), ctx);
        this.running = false;
        await ctx.batcher.flush(true);
        while (ctx.batcher.storageFault && !ctx.stopped())
          await ctx.gate().then(() => ctx.batcher.flush(true));
        if (!ctx.stopped()) ctx.onEnded();
      })
      .catch((error: unknown) => {
        this.running = false;
        ctx.onFailed(errorMessage(error));
      });
  }
}
