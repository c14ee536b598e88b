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
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  let rest = value;
  for (let k = digits - 1; k >= 0; k--) {
    out[at + k] = ZERO + (rest % 10);
    rest = Math.floor(rest / 10);
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
  out[at++] = DOT;
  let digits = 5;
  let rest = q;
  while (rest % 10 === 0) {
    rest /= 10;
    digits--;
  }
  for (let k = digits - 1; k >= 0; k--) {
    out[at + k] = ZERO + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return at + digits;
}
