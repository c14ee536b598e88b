/**
 * Readings into a windowed model from the gateway's sources: CSV replay (long-format rows,
 * checkpointed like the row replay), JSON lines on stdin, and POST /infer (a reading, or a
 * whole window as {"readings": [...]}). Results go to the device's ResultStream as for rows.
 */
import type { Readable } from 'node:stream';
import type { ReadingList } from '../../shared/dataset/reading-table.ts';
import { parseReading, type Refusal } from '../../shared/dataset/readings.ts';
import { errorMessage } from '../../shared/errors.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { PREDICT_BATCH } from '../../shared/timeseries/model.ts';
import { type Engine, NoModelError } from '../model/engine.ts';
import type { ResultStream } from '../results/result-writer.ts';
import { type CsvReplayContext, parsedLines, ReplayPace, unreadable, YIELD_EVERY_MS } from './sources.ts';
import {
  DEFAULT_SERIES_LIMITS,
  RefusedReading,
  ReplayReadings,
  type SeriesLimits,
  type SeriesStats,
  type WindowResult,
  WindowStream,
} from './window-stream.ts';

/** Windows an unpaced replay gathers before one predict: a predict of 1,024 windows costs little more than one of 256. */
export const REPLAY_BATCH = PREDICT_BATCH;

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Hands results to the batcher grouped by version (a swap may land between two windows). */
export function addResults(batcher: ResultStream, results: readonly WindowResult[], csvNext?: number) {
  let from = 0;
  for (let i = 1; i <= results.length; i++) {
    if (i === results.length || results[i]?.version !== results[from]?.version) {
      const group = results.slice(from, i);
      batcher.add(
        group[0]?.version as number,
        group.map((r) => r.result),
        csvNext,
      );
      from = i;
    }
  }
}

/** The row replay's context, with window results in place of classified chunks. */
export interface WindowReplayContext
  extends Omit<CsvReplayContext, 'labelColumn' | 'onClassified' | 'onProgress'> {
  /** Called after each chunk with the next position. */
  onProgress?: (next: number) => void;
  /** Each flush's windows and results (hard-example sampling). */
  onResults?: (results: readonly WindowResult[]) => void;
  log?: (line: string) => void;
}

/**
 * Replays long-format rows from position `start` (reading p is row p mod rows) until
 * `limit` or stop; an unpaced replay predicts once per 1,024 windows or so, a paced one every
 * chunk, each predict over every window ready across series. Result ids are
 * `${thing}:${loop}:${series}:${window end}`: a looping replay never reuses one. After a
 * restart the buffers refill from the checkpoint, so windows that spanned the restart are
 * not made.
 */
export async function runWindowReplay(
  rows: ReadingList,
  spec: { rate?: number; limit?: number },
  start: number,
  ctx: WindowReplayContext,
): Promise<number> {
  // The pass over the file the windows being made belong to (a flush ends every pass).
  let loop = Math.floor(start / rows.length);
  const stream = new WindowStream(ctx.engine, (w) => `${ctx.thing}:${loop}:${w.series}:${Math.round(w.end)}`);
  let lastYield = performance.now();
  let pos = start;
  const pace = new ReplayPace(spec, start, ctx);
  let refusedLogged = 0;
  // The file's readings as typed columns, read once per serving model (each pass reuses them).
  const readings = new ReplayReadings(rows);
  const onRefused = (row: number, why: Refusal) => {
    ctx.refuse?.(why, rows.at(row));
    if (refusedLogged++ < 5) ctx.log?.(`csv source: reading ${row + 1} refused: ${why.message}`);
  };
  const emit = (results: WindowResult[], next: number) => {
    if (results.length === 0) return;
    ctx.onResults?.(results);
    addResults(ctx.batcher, results, next);
  };
  for (;;) {
    // The disk gate and the pace, as for rows: a full disk pauses the replay before it reads on.
    const n = await pace.next(pos);
    if (n === undefined) break;
    const arrivedAt = performance.now();
    const results: WindowResult[] = [];
    // The chunk's readings in runs that do not cross the end of the file.
    for (let p = pos; p < pos + n; ) {
      const row = p % rows.length;
      if (row === 0 && p > start) {
        // The file starts over: its times go back, so every series starts a new segment.
        results.push(...stream.flush());
        stream.endAll();
        results.push(...stream.flush());
        loop = Math.floor(p / rows.length);
      }
      const to = Math.min(rows.length, row + pos + n - p);
      stream.pushRows(readings, row, to, arrivedAt, onRefused);
      p += to - row;
    }
    pos += n;
    const last = spec.limit !== undefined && pos >= spec.limit;
    if (last) {
      results.push(...stream.flush());
      stream.endAll();
    }
    // An unpaced replay lets windows gather across chunks, so one predict takes many; whatever
    // is stored with a checkpoint includes every window its readings completed.
    if (spec.rate || last || results.length > 0 || stream.pending >= REPLAY_BATCH)
      results.push(...stream.flush());
    emit(results, pos);
    ctx.onProgress?.(pos);
    await ctx.batcher.drain();
    if (!spec.rate && performance.now() - lastYield >= YIELD_EVERY_MS) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  }
  // Stopped: the windows already complete still get their results.
  emit(stream.flush(), pos);
  return pos;
}

/**
 * Live readings (stdin, HTTP): readings pushed in one turn of the event loop share one
 * predict (setImmediate), batched across series; each submitter gets the windows its
 * reading completed (usually none, one every stride).
 */
export class LiveWindows {
  private readonly stream: WindowStream;
  /** Submitters waiting for the windows their reading completed, by the reading's tag. */
  private waiting = new Map<
    number,
    { resolve: (results: WindowResult[]) => void; reject: (e: Error) => void }
  >();
  private nextTag = 0;
  private scheduled: NodeJS.Immediate | undefined;

  constructor(
    engine: Engine,
    idPrefix: string,
    /** Sees every window result (hard-example sampling). */
    private readonly onResults?: (results: readonly WindowResult[]) => void,
    limits: SeriesLimits = DEFAULT_SERIES_LIMITS,
    now?: () => number,
  ) {
    this.stream = new WindowStream(engine, (w) => `${idPrefix}${w.series}:${Math.round(w.end)}`, limits, now);
  }

  /** The open series, evicted and refused at the limit (for the status). */
  get series(): SeriesStats {
    return this.stream.series;
  }

  /**
   * Pushes a reading; resolves with the results of the windows it completed. They are matched
   * by the reading's tag, not by position: a model swap before the predict drops the pending
   * windows, and no submitter may get another's.
   */
  submit(row: RawRow): Promise<WindowResult[]> {
    const tag = ++this.nextTag;
    const before = this.stream.completed;
    const refused = this.stream.push(row, performance.now(), tag);
    if (refused) return Promise.reject(new RefusedReading(refused));
    if (this.stream.completed === before) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.waiting.set(tag, { resolve, reject });
      this.scheduled ??= setImmediate(() => this.run());
    });
  }

  /** A whole window's readings at once (one series, time order): its result. */
  whole(rows: readonly RawRow[]): WindowResult {
    const result = this.stream.classifyWhole(rows);
    this.onResults?.([result]);
    return result;
  }

  private run() {
    this.scheduled = undefined;
    const waiting = this.waiting;
    this.waiting = new Map();
    try {
      const results = this.stream.flush();
      if (results.length) this.onResults?.(results);
      const byTag = new Map<number, WindowResult[]>();
      for (const result of results) {
        if (result.tag === undefined) continue;
        const mine = byTag.get(result.tag);
        if (mine) mine.push(result);
        else byTag.set(result.tag, [result]);
      }
      for (const [tag, item] of waiting) item.resolve(byTag.get(tag) ?? []);
    } catch (error) {
      for (const item of waiting.values()) item.reject(error as Error);
    }
  }
}

/** A request body: a reading, or {"readings": [...]} for a whole window. */
export function parseWindowRequest(value: unknown): { reading: RawRow } | { readings: RawRow[] } {
  if (value && typeof value === 'object' && !Array.isArray(value) && 'readings' in value) {
    const readings = (value as { readings: unknown }).readings;
    if (!Array.isArray(readings) || readings.length === 0)
      throw new Error(
        '"readings" must be a non-empty array of readings (one window of one series, in time order)',
      );
    return {
      readings: readings.map((reading, i) => {
        try {
          return parseReading(reading);
        } catch (error) {
          throw new Error(`readings[${i}]: ${errorMessage(error)}`);
        }
      }),
    };
  }
  return { reading: parseReading(value) };
}

/** What a windowed request answers: the results (with their version) of the windows it made. */
export async function answerWindowRequest(
  live: LiveWindows,
  request: { reading: RawRow } | { readings: RawRow[] },
  onResult: (result: InferenceResult, version: number) => void,
): Promise<{ windows: (InferenceResult & { version: number })[] }> {
  const results = 'readings' in request ? [live.whole(request.readings)] : await live.submit(request.reading);
  for (const { result, version } of results) onResult(result, version);
  return { windows: results.map(({ result, version }) => ({ ...result, version })) };
}

/**
 * POST /infer for a windowed model: a reading answers the windows it completed (usually
 * none), {"readings": [...]} the one window they make. 400 for a body that does not parse
 * and 422 for a reading the stream refuses (each counted through `refuse` with its reason),
 * 400 for a whole window that makes none, 503 before a model.
 */
export async function answerWindowHttp(
  live: LiveWindows,
  text: string,
  onResult: (result: InferenceResult, version: number) => void,
  refuse?: (refusal: Refusal, reading: unknown) => void,
): Promise<{ code: number; body: unknown }> {
  let request: ReturnType<typeof parseWindowRequest>;
  try {
    request = parseWindowRequest(JSON.parse(text));
  } catch (error) {
    refuse?.(unreadable(error), text);
    return { code: 400, body: { error: errorMessage(error), reason: 'unreadable' } };
  }
  try {
    return { code: 200, body: await answerWindowRequest(live, request, onResult) };
  } catch (error) {
    if (error instanceof RefusedReading) {
      refuse?.({ reason: error.reason, message: error.message }, text);
      return { code: 422, body: { error: error.message, reason: error.reason } };
    }
    return { code: error instanceof NoModelError ? 503 : 400, body: { error: errorMessage(error) } };
  }
}

/** JSON lines on stdin for a windowed model: a line per reading (or whole window), a line per result. */
export async function runWindowJsonLines(
  input: Readable,
  ctx: {
    live: LiveWindows;
    batcher: ResultStream;
    write: (line: string) => void;
    limit?: number;
    stopped: () => boolean;
    /** Resolves when the next line may be read (the source pauses while the disk is full). */
    gate?: () => Promise<void>;
    /** A line that does not parse, or a reading the stream refuses: counted with its reason. */
    refuse?: (refusal: Refusal, reading: unknown) => void;
  },
): Promise<number> {
  let n = 0;
  const done = () => ctx.stopped() || (ctx.limit !== undefined && n >= ctx.limit);
  for await (const { value: request, line, lineNo } of parsedLines(input, done, ctx, parseWindowRequest)) {
    try {
      n++;
      const answer = await answerWindowRequest(ctx.live, request, (result, version) =>
        ctx.batcher.add(version, [result]),
      );
      for (const result of answer.windows) ctx.write(JSON.stringify(result));
    } catch (error) {
      const reason = error instanceof RefusedReading ? error.reason : undefined;
      if (reason) ctx.refuse?.({ reason, message: errorMessage(error) }, line);
      ctx.write(
        JSON.stringify({ error: `line ${lineNo}: ${errorMessage(error)}`, ...(reason ? { reason } : {}) }),
      );
    }
  }
  return n;
}
