/**
 * Where readings come from: CSV replay (checkpointed, looping), JSON lines on stdin, and
 * `POST /infer` on a localhost port (answered synchronously). Every source turns readings
 * into results and hands them to the device's ResultStream.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { ReadingList, ReadingTable } from '../../shared/dataset/reading-table.ts';
import {
  parseReading,
  type Refusal,
  readingRefusal,
  readReadingTable,
} from '../../shared/dataset/readings.ts';
import { EdgeloopError, errorMessage } from '../../shared/errors.ts';
import { type RawRow, transformInto } from '../../shared/preprocess.ts';
import type { InferenceResult, Preprocessing } from '../../shared/schemas.ts';
import { type Engine, type Inferred, NoModelError } from '../model/engine.ts';
import type { ClassifiedAnswers, LoadedModel } from '../model/model.ts';
import { readingPlace, toResult, truthColumn } from '../results/result-encoding.ts';
import type { ResultStream } from '../results/result-writer.ts';
import { guardInferServer } from './infer-guard.ts';
import type { LiveSpec } from './live/live-input.ts';
import { parseModbusSettings, parseModbusUrl } from './modbus/settings.ts';
import { parseMqttUrl, validateMqttSettings } from './mqtt/settings.ts';
import { parseOpcuaSettings, parseOpcuaUrl } from './opcua/settings.ts';

export type SourceSpec =
  | { kind: 'csv'; file: string; rate?: number; limit?: number }
  | { kind: 'stdin'; limit?: number }
  | LiveSpec
  | { kind: 'none' };

/**
 * The CLI form of a source: `csv:FILE`, `stdin`, or a live input's URL (mqtt://...,
 * mqtts://...); device.json may give a live input's settings as an object instead.
 */
export function parseSourceSpec(
  source: string | Record<string, unknown>,
  extra: { rate?: number; limit?: number } = {},
): SourceSpec {
  if (typeof source === 'object') return liveSpecOf(source, 'the source block in device.json');
  const text = source;
  if (text === 'stdin' || text === '-')
    return { kind: 'stdin', ...(extra.limit ? { limit: extra.limit } : {}) };
  if (text.startsWith('csv:') && text.length > 4) return { kind: 'csv', file: text.slice(4), ...extra };
  if (/^mqtts?:\/\//.test(text)) return { kind: 'mqtt', settings: parseMqttUrl(text) };
  if (text.startsWith('modbus://')) return { kind: 'modbus', settings: parseModbusUrl(text) };
  if (text.startsWith('opc.tcp://')) return { kind: 'opcua', settings: parseOpcuaUrl(text) };
  if (text.trim().startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new EdgeloopError(`the source ${text.slice(0, 60)} is not JSON: ${errorMessage(error)}`);
    }
    return parseSourceSpec(json as Record<string, unknown>, extra);
  }
  throw new EdgeloopError(
    `unknown source '${text}': use csv:FILE, stdin, mqtt://host:port?topic=FILTER, modbus://host:502?map=... or opc.tcp://host:4840?security=None&nodes=... (see docs/connect-sensors.md)`,
  );
}

/** A live input's settings block ({"kind": "mqtt", ...}), validated. */
function liveSpecOf(block: Record<string, unknown>, where: string): LiveSpec {
  if (block === null || Array.isArray(block))
    throw new EdgeloopError(
      `${where} must be an object with a kind, e.g. {"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topics": ["plant/#"]}`,
    );
  if (block.kind === 'mqtt') return { kind: 'mqtt', settings: validateMqttSettings(block, where) };
  if (block.kind === 'modbus') return { kind: 'modbus', settings: parseModbusSettings(block, where) };
  if (block.kind === 'opcua') return { kind: 'opcua', settings: parseOpcuaSettings(block, where) };
  throw new EdgeloopError(
    `${where}: kind must be "mqtt", "modbus" or "opcua", got ${JSON.stringify(block.kind)}`,
  );
}

/** The CSV file's readings, parsed once into typed columns (each replay loop reads them again). */
export function loadCsvFile(file: string): ReadingTable {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (error) {
    throw new EdgeloopError(`cannot read the CSV source ${file}: ${errorMessage(error)}`);
  }
  const table = readReadingTable(data, `the CSV source ${file}: `);
  if (!table) throw new EdgeloopError(`the CSV source ${file} is empty: it needs a header and rows`);
  if (table.length === 0) throw new EdgeloopError(`the CSV source ${file} has a header but no rows`);
  return table;
}

/** Bound on the transformed copy of a CSV source: 8 Mi values (32 MiB). */
const PREPARED_MAX_VALUES = 8 * 2 ** 20;

/**
 * The CSV source's readings transformed for the serving model, each row once per model:
 * reading p is row p mod rows on every loop, so the replay does not redo the same
 * preprocessing on every pass (as loadCsvFile parses each number once). A row is transformed
 * when it is first replayed; a model swap starts a fresh copy (its preprocessing may differ).
 */
export class PreparedRows {
  private owner: object | undefined;
  private values = new Float32Array(0);
  private ready = new Uint8Array(0);
  private scratch = new Float32Array(0);

  constructor(private readonly rows: ReadingList) {}

  /**
   * The input of `owner` (the serving model, whose preprocessing `pre` is) for readings
   * first .. first + n - 1; undefined when the file is too large to keep transformed.
   */
  input(owner: object, pre: Preprocessing, first: number, n: number): Float32Array | undefined {
    const width = pre.inputWidth;
    const count = this.rows.length;
    if (count === 0 || count * width > PREPARED_MAX_VALUES) return undefined;
    if (owner !== this.owner) {
      this.owner = owner;
      this.values = new Float32Array(count * width);
      this.ready = new Uint8Array(count);
    }
    const start = first % count;
    for (let i = 0; i < Math.min(n, count); i++) {
      const row = (start + i) % count;
      if (this.ready[row] === 0) {
        transformInto(pre, this.rows.at(row) as RawRow, this.values, row * width);
        this.ready[row] = 1;
      }
    }
    if (start + n <= count) return this.values.subarray(start * width, (start + n) * width);
    // The chunk wraps around the end of the file: copy it out in contiguous pieces.
    if (this.scratch.length < n * width) this.scratch = new Float32Array(n * width);
    for (let done = 0; done < n; ) {
      const row = (start + done) % count;
      const take = Math.min(n - done, count - row);
      this.scratch.set(this.values.subarray(row * width, (row + take) * width), done * width);
      done += take;
    }
    return this.scratch;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
export const YIELD_EVERY_MS = 5;

/**
 * A replay's next chunk: waits for the disk gate (the source pauses while the disk is full),
 * then for the chunk's time under `rate`; a pause is not a debt, so the pace restarts after
 * it rather than bursting to catch up. The row and the window replays read through it.
 */
export class ReplayPace {
  private from: { at: number; pos: number };

  constructor(
    private readonly spec: { rate?: number; limit?: number },
    start: number,
    private readonly ctx: Pick<CsvReplayContext, 'chunk' | 'gate' | 'stopped'>,
  ) {
    this.from = { at: performance.now(), pos: start };
  }

  /** How many readings to take from `pos` once they are due; undefined when stopped or done. */
  async next(pos: number): Promise<number | undefined> {
    const { spec, ctx } = this;
    if (ctx.stopped() || (spec.limit !== undefined && pos >= spec.limit)) return undefined;
    if (ctx.gate) {
      const before = performance.now();
      await ctx.gate();
      if (ctx.stopped()) return undefined;
      if (performance.now() - before > 50) this.from = { at: performance.now(), pos };
    }
    const chunkMax = ctx.chunk ?? 512;
    let n = spec.limit === undefined ? chunkMax : Math.min(chunkMax, spec.limit - pos);
    if (spec.rate) {
      n = Math.min(n, Math.max(1, Math.round(spec.rate / 20)));
      const wait = this.from.at + ((pos - this.from.pos) / spec.rate) * 1000 - performance.now();
      if (wait > 1) await sleep(wait);
      if (ctx.stopped()) return undefined;
    }
    return n;
  }
}

/** One CSV replay chunk as the model saw it: readings first, first + 1, ... */
export interface ClassifiedChunk {
  first: number;
  /** The chunk's readings, built from the source's columns when asked. */
  rows: ReadingList;
  classified: ClassifiedAnswers;
  ts: number;
}

export interface CsvReplayContext {
  thing: string;
  engine: Engine;
  batcher: ResultStream;
  labelColumn: () => string;
  stopped: () => boolean;
  /** Called after each chunk with the next position and how many of its readings were answered. */
  onProgress?: (next: number, answered: number) => void;
  /** Sees each chunk's readings and what the model said (hard-example sampling). */
  onClassified?: (chunk: ClassifiedChunk) => void;
  /** Resolves when the next chunk may be read (the source pauses while the disk is full). */
  gate?: () => Promise<void>;
  chunk?: number;
  /** A reading the serving model may not answer: counted and sampled, never answered. */
  refuse?: (refusal: Refusal, reading: unknown) => void;
}

/**
 * Replays rows from position `start` (a global sequence over the looping file: reading p is
 * row p mod rows) until `limit` or stop. Result ids are `${thing}:${p}`, so a restart that
 * resumes at the checkpoint never reuses an id for a different reading.
 */
export async function runCsvReplay(
  rows: ReadingList,
  spec: { rate?: number; limit?: number },
  start: number,
  ctx: CsvReplayContext,
): Promise<number> {
  const prepared = new PreparedRows(rows);
  const checks = new RowChecks(rows);
  let lastYield = performance.now();
  let truthsOf: string | undefined; // the label column the writer has the truths of
  let pos = start;
  const pace = new ReplayPace(spec, start, ctx);
  /** Answers readings first .. end - 1 in one predict. */
  const answer = (first: number, end: number) => {
    const n = end - first;
    // The readings as objects only where asked for (the model predicts from `prepared`).
    const batch: ReadingList = {
      length: n,
      at: (i) => (i >= 0 && i < n ? rows.at((first + i) % rows.length) : undefined),
    };
    const ts = Date.now();
    const classified = ctx.engine.classifyRows(batch, performance.now(), (model) =>
      prepared.input(model, model.manifest.preprocessing, first, n),
    );
    const labelColumn = ctx.labelColumn();
    if (labelColumn !== truthsOf) {
      ctx.batcher.setTruths(truthColumn(rows, labelColumn));
      truthsOf = labelColumn;
    }
    ctx.onClassified?.({ first, rows: batch, classified, ts });
    const { version, labels, best, confidence, values, anomaly, novelty, latencyMs } = classified;
    // classifyRows ran the serving model just now (one thread): its manifest names the columns.
    const manifest = anomaly ? ctx.engine.serving?.manifest : undefined;
    ctx.batcher.addReplay({
      version,
      first,
      labels,
      best,
      confidence,
      ...(values ? { values } : {}),
      ...(anomaly
        ? { anomaly, places: Array.from({ length: n }, (_, i) => readingPlace(manifest, batch.at(i) ?? {})) }
        : {}),
      ...(novelty ? { novelty } : {}),
      latencyMs,
      ts,
      csvNext: end,
    });
  };
  for (;;) {
    const n = await pace.next(pos);
    if (n === undefined) break;
    // Readings the serving model may not answer split the chunk into runs it answers.
    const model = ctx.engine.serving;
    let runStart = pos;
    let refused = 0;
    for (let p = pos; model && p < pos + n; p++) {
      const refusal = checks.refusal(model, p % rows.length);
      if (!refusal) continue;
      if (p > runStart) answer(runStart, p);
      ctx.refuse?.(refusal, rows.at(p % rows.length));
      refused++;
      runStart = p + 1;
    }
    if (pos + n > runStart) answer(runStart, pos + n);
    pos += n;
    ctx.onProgress?.(pos, n - refused);
    await ctx.batcher.drain();
    // An unpaced replay lets the event loop run (MQTT, HTTP, finished writes) every few ms,
    // not every chunk: each turn also runs V8's pending tasks, which costs the predicts.
    if (!spec.rate && performance.now() - lastYield >= YIELD_EVERY_MS) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  }
  return pos;
}

/**
 * Which replay rows the serving model may answer, checked once per row per model (a refusal
 * depends on the model's features and its maxMissingFeatures; the replay loops over the
 * same rows).
 */
class RowChecks {
  private owner: LoadedModel | undefined;
  /** Per row: 0 unchecked, 1 answerable, 2 refused. */
  private state = new Uint8Array(0);

  constructor(private readonly rows: ReadingList) {}

  refusal(model: LoadedModel, row: number): Refusal | undefined {
    if (model !== this.owner) {
      this.owner = model;
      this.state = new Uint8Array(this.rows.length);
    }
    if (this.state[row] === 1) return undefined;
    const refusal = modelRefusal(model, this.rows.at(row) as RawRow);
    this.state[row] = refusal ? 2 : 1;
    return refusal;
  }
}

/** Why `model` may not answer `row` (it lacks too many of the model's features), if so. */
export function modelRefusal(model: LoadedModel, row: RawRow): Refusal | undefined {
  const { preprocessing, maxMissingFeatures } = model.manifest;
  return readingRefusal(preprocessing, row, maxMissingFeatures ?? 0);
}

/** A reading that could not be parsed, as a refusal. */
export function unreadable(error: unknown): Refusal {
  return { reason: 'unreadable', message: errorMessage(error) };
}

/** One reading's result (stdin, /infer): with its series and time when an anomaly model answered it. */
function resultOfReading(id: string, inferred: Inferred, row: RawRow, engine: Engine, labelColumn: string) {
  const serving = engine.serving;
  const manifest = serving?.version === inferred.version ? serving.manifest : undefined;
  return {
    ...toResult(id, inferred, row[labelColumn]),
    ...(inferred.score !== undefined ? readingPlace(manifest, row) : {}),
  };
}

/** JSON lines on a stream (stdin): one reading per line, one result line back per reading. */
export async function runJsonLines(
  input: Readable,
  ctx: {
    engine: Engine;
    batcher: ResultStream;
    idPrefix: string;
    labelColumn: () => string;
    write: (line: string) => void;
    limit?: number;
    stopped: () => boolean;
    onInferred?: (rows: readonly RawRow[], results: readonly InferenceResult[]) => void;
    /** Resolves when the next line may be read (the source pauses while the disk is full). */
    gate?: () => Promise<void>;
    refuse?: (refusal: Refusal, reading: unknown) => void;
  },
): Promise<number> {
  let n = 0;
  const done = () => ctx.stopped() || (ctx.limit !== undefined && n >= ctx.limit);
  for await (const { value: row, lineNo } of parsedLines(input, done, ctx, parseReading)) {
    const refusal = ctx.engine.serving && modelRefusal(ctx.engine.serving, row);
    if (refusal) {
      ctx.refuse?.(refusal, row);
      ctx.write(JSON.stringify({ error: `line ${lineNo}: ${refusal.message}`, reason: refusal.reason }));
      continue;
    }
    const inferred = await ctx.engine.submit(row);
    const result = resultOfReading(`${ctx.idPrefix}${n++}`, inferred, row, ctx.engine, ctx.labelColumn());
    ctx.onInferred?.([row], [result]);
    ctx.batcher.add(inferred.version, [result]);
    ctx.write(JSON.stringify({ ...result, version: inferred.version }));
  }
  return n;
}

/**
 * The lines of a JSON-lines source, each parsed by `parse` once the gate lets it through,
 * until `done()` holds. A line that does not parse is refused as unreadable, answered with
 * an error line that says why, and skipped.
 */
export async function* parsedLines<T>(
  input: Readable,
  done: () => boolean,
  ctx: {
    stopped: () => boolean;
    write: (line: string) => void;
    gate?: () => Promise<void>;
    refuse?: (refusal: Refusal, reading: unknown) => void;
  },
  parse: (value: unknown) => T,
): AsyncGenerator<{ value: T; line: string; lineNo: number }> {
  for await (const { line, lineNo } of nonEmptyLines(input, done)) {
    await ctx.gate?.();
    if (ctx.stopped()) return;
    let value: T;
    try {
      value = parse(JSON.parse(line));
    } catch (error) {
      ctx.refuse?.(unreadable(error), line);
      ctx.write(JSON.stringify({ error: `line ${lineNo}: ${errorMessage(error)}`, reason: 'unreadable' }));
      continue;
    }
    yield { value, line, lineNo };
  }
}

/** The non-empty lines of a stream with their 1-based numbers, until `done()` holds before a line. */
export async function* nonEmptyLines(
  input: Readable,
  done: () => boolean,
): AsyncGenerator<{ line: string; lineNo: number }> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (done()) break;
      if (line.trim()) yield { line, lineNo };
    }
  } finally {
    lines.close();
  }
}

export interface InferServer {
  port: number;
  close(): Promise<void>;
}

/**
 * `POST /infer` with one reading as a JSON object; answers {id, label, confidence, version,
 * latencyMs}. `GET /status` answers the device snapshot. Listens on 127.0.0.1 only.
 */
export async function startInferServer(
  port: number,
  ctx: {
    engine: Engine;
    onResult: (result: InferenceResult, version: number) => void;
    nextId: () => string;
    labelColumn: () => string;
    status: () => unknown;
    refuse?: (refusal: Refusal, reading: unknown) => void;
    /** Serving a windowed model: answers the request body instead (device/sources/window-sources.ts). */
    window?: { active: () => boolean; answer: (body: string) => Promise<{ code: number; body: unknown }> };
  },
): Promise<InferServer> {
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => send(res, 500, { error: errorMessage(error) }));
  });
  // Local tools only: no Origin, loopback Host, JSON bodies (device/sources/infer-guard.ts).
  guardInferServer(server);
  async function handle(req: IncomingMessage, res: ServerResponse) {
    if (req.method === 'GET' && req.url === '/status') return send(res, 200, ctx.status());
    if (req.url !== '/infer') return send(res, 404, { error: 'use POST /infer or GET /status' });
    if (req.method !== 'POST') return send(res, 405, { error: 'use POST /infer with a JSON reading' });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 64 * 1024) return send(res, 413, { error: 'a reading must be under 64 KB' });
      chunks.push(chunk);
    }
    if (ctx.window?.active()) {
      const answer = await ctx.window.answer(Buffer.concat(chunks).toString('utf8'));
      return send(res, answer.code, answer.body);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    let row: RawRow;
    try {
      row = parseReading(JSON.parse(body));
    } catch (error) {
      ctx.refuse?.(unreadable(error), body);
      return send(res, 400, { error: errorMessage(error), reason: 'unreadable' });
    }
    const refusal = ctx.engine.serving && modelRefusal(ctx.engine.serving, row);
    if (refusal) {
      ctx.refuse?.(refusal, row);
      return send(res, 422, { error: refusal.message, reason: refusal.reason });
    }
    try {
      const inferred = await ctx.engine.submit(row);
      const result = resultOfReading(ctx.nextId(), inferred, row, ctx.engine, ctx.labelColumn());
      ctx.onResult(result, inferred.version);
      return send(res, 200, { ...result, version: inferred.version });
    } catch (error) {
      return send(res, error instanceof NoModelError ? 503 : 500, { error: errorMessage(error) });
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, code: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
