/**
 * Results as UTF-8 JSON bytes (JSON.stringify of each result object), the form they keep from
 * the source to the wire: the batcher copies byte ranges into a batch, the outbox writes the
 * batch bytes to disk, and the publisher sends them.
 */
import type { CountedResult } from '../../shared/aggregation/aggregate.ts';
import type { ChannelShare } from '../../shared/anomaly.ts';
import type { ReadingList } from '../../shared/dataset/reading-table.ts';
import { UNKNOWN_CLASS } from '../../shared/novelty.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import type { InferenceResult, Manifest } from '../../shared/schemas.ts';
import { parseTime } from '../../shared/timeseries/long-format.ts';
import type { Inferred } from '../model/engine.ts';
import { type ClassifiedAnswers, isNovel } from '../model/model.ts';

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

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A regression value as results carry it: the 7 significant digits a float32 output has. */
export function roundValue(value: number): number {
  return Number(value.toPrecision(7));
}

/**
 * A result as every source reports it: confidence to 5 decimals (or a regression value to 7
 * significant digits), latency to 3.
 */
export function toResult(id: string, inferred: Inferred, truth: unknown, ts = Date.now()): InferenceResult {
  const answer =
    inferred.value !== undefined
      ? { value: roundValue(inferred.value) }
      : inferred.score !== undefined
        ? anomalyAnswer(inferred.score, inferred.threshold, inferred.channels)
        : {
            label: inferred.label,
            confidence: Number.isFinite(inferred.confidence) ? round(inferred.confidence, 5) : 0,
            ...(inferred.wouldBe !== undefined
              ? { wouldBe: inferred.wouldBe, novelty: inferred.novelty }
              : {}),
          };
  const result: InferenceResult = { id, ts, ...answer, latencyMs: round(inferred.latencyMs, 3) };
  if (truth !== undefined && truth !== null && String(truth) !== '') result.truth = String(truth);
  return result;
}

/**
 * Where and when an anomaly model's row reading happened, from the columns its manifest names:
 * results carry them, and the event rule keeps events per series in time order. Other
 * models' results carry neither (their bytes stay as they were).
 */
export function readingPlace(
  manifest: Pick<Manifest, 'anomaly'> | undefined,
  row: RawRow,
): { series?: string; time?: number; timeFrom?: 'reading' } {
  const anomaly = manifest?.anomaly;
  if (!anomaly) return {};
  const series = anomaly.series === undefined ? undefined : row[anomaly.series];
  const cell = anomaly.time === undefined ? undefined : row[anomaly.time];
  const time = cell === undefined || cell === null ? Number.NaN : parseTime(cell, 'ms');
  return {
    ...(series !== undefined && series !== null ? { series: String(series) } : {}),
    ...(Number.isFinite(time) ? { time, timeFrom: 'reading' as const } : {}),
  };
}

/** An anomaly model's answer as results carry it: the score to 7 significant digits and the verdict on it. */
export function anomalyAnswer(score: number, threshold: number, channels: readonly ChannelShare[]) {
  const rounded = roundValue(score);
  return { score: rounded, threshold, anomaly: rounded > threshold, channels: [...channels] };
}

/** What the encoder needs of a classified chunk. */
export type ReplayClassified = ClassifiedAnswers & {
  latencyMs: number;
  /** An anomaly model's readings: each one's series and time (readingPlace). */
  places?: ReturnType<typeof readingPlace>[];
};

/**
 * The results of CSV replay chunks as JSON: each result is JSON.stringify(toResult(
 * `${thing}:${p}`, ...)), in the result writer.
 */
export class ReplayEncoder {
  constructor(private readonly thing: string) {}

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
    const resultAt = replayResultReader(first, classified, truths, ts);
    const results: InferenceResult[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const { label, confidence, wouldBe, value, latencyMs, truth } = resultAt(i);
      const scored = classified.anomaly;
      const novelty =
        wouldBe !== undefined
          ? { wouldBe, novelty: roundValue(classified.novelty?.scores[i] ?? Number.NaN) }
          : {};
      const place = classified.places?.[i];
      results[i] = {
        id: `${this.thing}:${first + i}`,
        ts,
        ...(value !== undefined
          ? { value }
          : scored
            ? anomalyAnswer(scored.scores[i] ?? Number.NaN, scored.threshold, scored.channels[i] ?? [])
            : { label, confidence, ...novelty }),
        latencyMs,
        ...(truth !== undefined ? { truth } : {}),
        ...place,
      };
    }
    return encodeResultObjects(results);
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
  const { values, anomaly } = classified;
  const scratch: CountedResult = values
    ? { ts, value: 0, latencyMs: round(classified.latencyMs, 3) }
    : anomaly
      ? { ts, anomaly: false, latencyMs: round(classified.latencyMs, 3) }
      : { ts, label: '', confidence: 0, latencyMs: round(classified.latencyMs, 3) };
  return (i) => {
    const truth = truths.length > 0 ? (truths[(first + i) % truths.length] ?? '') : '';
    if (values) {
      scratch.value = roundValue(values[i] ?? Number.NaN);
    } else if (anomaly) {
      scratch.score = roundValue(anomaly.scores[i] ?? Number.NaN);
      scratch.anomaly = scratch.score > anomaly.threshold;
    } else {
      const best = classified.best[i] ?? 0;
      const p = classified.confidence[i] ?? Number.NaN;
      const label = classified.labels[best] ?? String(best);
      // A reading far from the training data is answered `unknown` (predictionAt's rule).
      const novel =
        classified.novelty &&
        isNovel(classified.novelty.scores[i] ?? Number.NaN, classified.novelty.threshold);
      scratch.label = novel ? UNKNOWN_CLASS : label;
      scratch.wouldBe = novel ? label : undefined;
      scratch.confidence = Number.isFinite(p) ? round(p, 5) : 0;
    }
    scratch.truth = truth === '' ? undefined : truth;
    return scratch;
  };
}

/** The truth each row carries in `labelColumn`, as toResult gives it ('' for none). */
export function truthColumn(rows: ReadingList, labelColumn: string): string[] {
  return Array.from({ length: rows.length }, (_, i) => {
    const value = rows.at(i)?.[labelColumn];
    return value === undefined || value === null ? '' : String(value);
  });
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
