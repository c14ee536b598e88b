/**
 * Results as UTF-8 JSON bytes, the form they keep from the source to the wire: the batcher
 * copies byte ranges into a batch, the outbox writes the batch bytes to disk, and the
 * publisher sends them. No result object and no string per reading on the CSV replay hot
 * path: at tens of thousands of readings a second, per-result strings held until their batch
 * is durable cost more (in building and in garbage collection) than the predict itself.
 */
import type { CountedResult } from '../shared/aggregation/aggregate.ts';
import type { RawRow } from '../shared/preprocess.ts';
import type { InferenceResult } from '../shared/schemas.ts';
import type { Inferred } from './engine.ts';
import type { Classified } from './model.ts';

/**
 * `count` results, comma-separated: result i is one JSON object from `ends[i - 1] + 1` (0 for
 * the first) up to `ends[i]`, so any run of them copies as a piece of a JSON array.
 */
export interface ResultChunk {
  bytes: Uint8Array;
  ends: Uint32Array;
  count: number;
}

/** Results given as objects (stdin, /infer): each exactly its JSON.stringify. */
export function encodeResultObjects(results: readonly InferenceResult[]): ResultChunk {
  const texts = results.map((result) => JSON.stringify(result));
  const ends = new Uint32Array(texts.length);
  let end = 0;
  texts.forEach((text, i) => {
    end += (i > 0 ? 1 : 0) + Buffer.byteLength(text);
    ends[i] = end;
  });
  return { bytes: Buffer.from(texts.join(',')), ends, count: texts.length };
}

const utf8 = (text: string) => Buffer.from(text, 'utf8');
const CLOSE = Buffer.from('}');
const COMMA = 0x2c;
const ZERO = 0x30;
const DOT = 0x2e;

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A result as every source reports it: confidence to 5 decimals, latency to 3. */
export function toResult(id: string, inferred: Inferred, truth: unknown, ts = Date.now()): InferenceResult {
  const result: InferenceResult = {
    id,
    ts,
    label: inferred.label,
    confidence: Number.isFinite(inferred.confidence) ? round(inferred.confidence, 5) : 0,
    latencyMs: round(inferred.latencyMs, 3),
  };
  if (truth !== undefined && truth !== null && String(truth) !== '') result.truth = String(truth);
  return result;
}

/** What the encoder needs of a classified chunk. */
export type ReplayClassified = Pick<Classified, 'labels' | 'best' | 'confidence'> & { latencyMs: number };

/**
 * Encodes the results of CSV replay chunks into one reused buffer; each result is
 * byte-for-byte JSON.stringify(toResult(`${thing}:${p}`, ...)). The chunk it returns is
 * valid until the next `encode` call (the batcher copies it at once).
 */
export class ReplayEncoder {
  private buffer = Buffer.allocUnsafe(64 * 1024);
  private ends = new Uint32Array(512);
  private readonly idHead: Uint8Array;

  constructor(thing: string) {
    // `{"id":"<thing>:` with the thing JSON-escaped; the sequence number follows.
    this.idHead = utf8(`{"id":${JSON.stringify(`${thing}:`).slice(0, -1)}`);
  }

  /**
   * Results for readings first .. first + n - 1 as the model classified them; reading p's
   * truth is `truths[p % truths.length]` (the source file's truth column, '' for none).
   */
  encode(
    first: number,
    n: number,
    classified: ReplayClassified,
    truths: readonly string[],
    ts: number,
  ): ResultChunk {
    // Per class: the bytes from the end of the id to the confidence.
    const middles = classified.labels.map((label) =>
      utf8(`","ts":${ts},"label":${JSON.stringify(label)},"confidence":`),
    );
    // Per truth value: the bytes after the confidence (latency, truth, closing brace).
    const latency = utf8(`,"latencyMs":${round(classified.latencyMs, 3)}`);
    const endings = new Map<string, Uint8Array>();
    const idHead = this.idHead;
    if (this.ends.length < n) this.ends = new Uint32Array(n);
    const ends = this.ends;
    let out = this.buffer;
    let at = 0;
    for (let i = 0; i < n; i++) {
      const best = classified.best[i] ?? 0;
      const middle =
        middles[best] ??
        utf8(`","ts":${ts},"label":${JSON.stringify(classified.labels[best] ?? String(best))},"confidence":`);
      const truth = truths.length > 0 ? (truths[(first + i) % truths.length] ?? '') : '';
      let ending = endings.get(truth);
      if (!ending) {
        const truthField = truth === '' ? '' : `,"truth":${JSON.stringify(truth)}`;
        ending = Buffer.concat([latency, utf8(truthField), CLOSE]);
        endings.set(truth, ending);
      }
      // comma + id head + up to 16 digits + middle + up to 24 confidence chars + ending
      const worst = 1 + idHead.length + 16 + middle.length + 24 + ending.length;
      if (at + worst > out.length) {
        const grown = Buffer.allocUnsafe(Math.max(out.length * 2, at + worst));
        out.copy(grown, 0, 0, at);
        out = grown;
        this.buffer = grown;
      }
      if (i > 0) out[at++] = COMMA;
      at = put(out, at, idHead);
      at = putInteger(out, at, first + i);
      at = put(out, at, middle);
      at = putConfidence(out, at, classified.confidence[i] ?? Number.NaN);
      at = put(out, at, ending);
      ends[i] = at;
    }
    return { bytes: out, ends, count: n };
  }
}

/**
 * Result i of a CSV replay chunk (reading `first + i`) as summary mode counts it: the values
 * the ReplayEncoder writes (the label, confidence to 5 decimals, latency to 3, the file's
 * truth), in one object reused from call to call, so summary mode needs no JSON per reading.
 */
export function replayResultReader(
  first: number,
  classified: ReplayClassified,
  truths: readonly string[],
  ts: number,
): (i: number) => CountedResult {
  const scratch: CountedResult = { ts, label: '', confidence: 0, latencyMs: round(classified.latencyMs, 3) };
  return (i) => {
    const best = classified.best[i] ?? 0;
    const p = classified.confidence[i] ?? Number.NaN;
    const truth = truths.length > 0 ? (truths[(first + i) % truths.length] ?? '') : '';
    scratch.label = classified.labels[best] ?? String(best);
    scratch.confidence = Number.isFinite(p) ? round(p, 5) : 0;
    scratch.truth = truth === '' ? undefined : truth;
    return scratch;
  };
}

/** The truth each row carries in `labelColumn`, as toResult gives it ('' for none). */
export function truthColumn(rows: readonly RawRow[], labelColumn: string): string[] {
  return rows.map((row) => {
    const value = row[labelColumn];
    return value === undefined || value === null ? '' : String(value);
  });
}

function put(out: Uint8Array, at: number, bytes: Uint8Array): number {
  out.set(bytes, at);
  return at + bytes.length;
}

/** A non-negative safe integer's decimal digits. */
function putInteger(out: Uint8Array, at: number, value: number): number {
  // Epoch milliseconds have 13 digits: the top ones, then the last 8 zero-padded, each part
  // in 32-bit integer arithmetic (a double's floor and remainder per digit cost more).
  if (value >= 1e8) {
    const high = Math.floor(value / 1e8);
    const next = putInteger(out, at, high);
    let low = value - high * 1e8;
    for (let k = 7; k >= 0; k--) {
      const q = (low / 10) | 0;
      out[next + k] = ZERO + (low - q * 10);
      low = q;
    }
    return next + 8;
  }
  let digits = 1;
  for (let rest = value; rest >= 10; rest = (rest / 10) | 0) digits++;
  let rest = value;
  for (let k = digits - 1; k >= 0; k--) {
    const q = (rest / 10) | 0;
    out[at + k] = ZERO + (rest - q * 10);
    rest = q;
  }
  return at + digits;
}

/**
 * The text of toResult's confidence: String(round(p, 5)) (0 when not finite). For a
 * probability that is "0", "1" or "0." and five digits without trailing zeros; the rare
 * value outside [0, 1] goes through String.
 */
function putConfidence(out: Uint8Array, at: number, p: number): number {
  if (!Number.isFinite(p)) {
    out[at] = ZERO;
    return at + 1;
  }
  const q = Math.round(p * 1e5);
  if (q === 0 || q === 100_000) {
    out[at] = q === 0 ? ZERO : ZERO + 1;
    return at + 1;
  }
  if (q < 0 || q > 100_000) return put(out, at, utf8(String(q / 1e5)));
  out[at++] = ZERO;
  return putFraction(out, at, q, 5);
}

/** A dot and `fraction` (0 < fraction < 10 ** `digits`) as `digits` decimals, trailing zeros dropped. */
function putFraction(out: Uint8Array, at: number, fraction: number, digits: number): number {
  out[at++] = DOT;
  let rest = fraction;
  let n = digits;
  while (rest % 10 === 0) {
    rest /= 10;
    n--;
  }
  for (let k = n - 1; k >= 0; k--) {
    out[at + k] = ZERO + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return at + n;
}

/** A window's result: toResult's fields, then the window it covers (start and end rounded to the ms). */
export function windowResult(
  id: string,
  inferred: Inferred,
  truth: string | undefined,
  window: { series: string; start: number; end: number },
  ts: number,
): InferenceResult {
  const result = toResult(id, inferred, truth, ts);
  result.window = { series: window.series, start: Math.round(window.start), end: Math.round(window.end) };
  return result;
}

/** Whether JSON.stringify writes `text` as it is inside quotes: no quote, backslash, control character or surrogate. */
function plainJsonText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}

/**
 * Results `windowResult` made, each byte for byte its JSON.stringify, without a string per
 * result: the repeated strings (label, truth, series) are encoded once per call, the id goes
 * straight into the buffer, the numbers are written as digits. On a window replay this is
 * the cost of every result next to a small model's predict, so it is kept to the bytes.
 */
export function encodeWindowResults(results: readonly InferenceResult[]): ResultChunk {
  // The bytes between the numbers, made once per label and per truth and series.
  const labelParts = new Map<string, Uint8Array>();
  const windowParts = new Map<string | undefined, Map<string, Uint8Array>>();
  const ends = new Uint32Array(results.length);
  let out = Buffer.allocUnsafe(Math.max(256, results.length * 192));
  let at = 0;
  let tsValue = Number.NaN;
  let tsPart: Uint8Array = ID_HEAD;
  for (let i = 0; i < results.length; i++) {
    const result = results[i] as InferenceResult;
    const window = result.window;
    if (!window) throw new Error(`result ${result.id} covers no window`);
    if (result.ts !== tsValue) {
      tsValue = result.ts;
      tsPart = utf8(`,"ts":${result.ts},"label":`);
    }
    let labelPart = labelParts.get(result.label);
    if (!labelPart) {
      labelPart = utf8(`${JSON.stringify(result.label)},"confidence":`);
      labelParts.set(result.label, labelPart);
    }
    let byTruth = windowParts.get(result.truth);
    if (!byTruth) {
      byTruth = new Map();
      windowParts.set(result.truth, byTruth);
    }
    let windowPart = byTruth.get(window.series);
    if (!windowPart) {
      const truth = result.truth === undefined ? '' : `,"truth":${JSON.stringify(result.truth)}`;
      windowPart = utf8(`${truth},"window":{"series":${JSON.stringify(window.series)},"start":`);
      byTruth.set(window.series, windowPart);
    }
    // Worst case: the id as UTF-8 (3 bytes a UTF-16 unit, escaped ids go through JSON) and 24 per number.
    const worst = 8 + 6 * result.id.length + tsPart.length + labelPart.length + windowPart.length + 128;
    if (at + worst > out.length) {
      const grown = Buffer.allocUnsafe(Math.max(out.length * 2, at + worst));
      out.copy(grown, 0, 0, at);
      out = grown;
    }
    if (i > 0) out[at++] = COMMA;
    at = put(out, at, ID_HEAD);
    if (plainJsonText(result.id)) {
      out[at++] = QUOTE;
      at += out.write(result.id, at, 'utf8');
      out[at++] = QUOTE;
    } else at = put(out, at, utf8(JSON.stringify(result.id)));
    at = put(out, at, tsPart);
    at = put(out, at, labelPart);
    at = putConfidence(out, at, result.confidence);
    at = put(out, at, LATENCY);
    at = putNumber(out, at, result.latencyMs);
    at = put(out, at, windowPart);
    at = putNumber(out, at, window.start);
    at = put(out, at, END);
    at = putNumber(out, at, window.end);
    out[at++] = BRACE;
    out[at++] = BRACE;
    ends[i] = at;
  }
  // A copy of exactly the bytes, its own buffer: the writer thread takes it (no copy on the way).
  return { bytes: new Uint8Array(out.subarray(0, at)), ends, count: results.length };
}

const ID_HEAD = utf8('{"id":');
const LATENCY = utf8(',"latencyMs":');
const END = utf8(',"end":');
const QUOTE = 0x22;
const BRACE = 0x7d;

/** A number as JSON.stringify writes it: digits for a non-negative safe integer, else its String. */
function putNumber(out: Buffer, at: number, value: number): number {
  if (Number.isSafeInteger(value) && value >= 0) return putInteger(out, at, value);
  // A latency rounded to 3 decimals: String(value) is its whole part and its decimals without
  // trailing zeros (below 1e9 doubles lie far closer together than 0.001, so no shorter text
  // gives the same number), written here without making the string.
  if (value > 0 && value < 1e9) {
    const q = Math.round(value * 1000);
    if (q / 1000 === value) {
      const whole = Math.floor(q / 1000);
      return putFraction(out, putInteger(out, at, whole), q - whole * 1000, 3);
    }
  }
  return at + out.write(Number.isFinite(value) ? String(value) : 'null', at, 'latin1');
}
