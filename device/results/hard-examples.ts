/**
 * Hard-example sampling on the gateway: readings the serving model was unsure about (the
 * confidence below the manifest's lowConfidence) are kept with their raw features, the
 * prediction and the truth when the reading had one, and uploaded as small CSV files under
 * datasetKeys.feedbackFile(model, thing, ...) in the datasets bucket. Bounded three ways:
 * a rate limit (samples per minute), a file size cap (rows per file), and a disk quota for
 * files waiting to upload (further samples are dropped and counted while it is full).
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { valueBucketBounds } from '../../shared/aggregation/value-histogram.ts';
import type { ReadingList } from '../../shared/dataset/reading-table.ts';
import { errorMessage } from '../../shared/errors.ts';
import { feedbackHeader, feedbackLabelColumn, feedbackLine } from '../../shared/feedback.ts';
import { UNKNOWN_CLASS } from '../../shared/novelty.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import type { InferenceResult, Manifest } from '../../shared/schemas.ts';
import { targetNumber } from '../../shared/target.ts';
import { datasetKeys } from '../../shared/topology.ts';
import { isNovel } from '../model/model.ts';
import { isStorageFault } from '../platform/disk.ts';
import { writeFileDurable } from '../platform/durable.ts';
import type { ClassifiedChunk } from '../sources/sources.ts';
import type { WindowResult } from '../sources/window-stream.ts';
import { roundValue } from './result-encoding.ts';

export interface HardExampleOptions {
  /** The datasets bucket (feedback goes under its feedback prefix). */
  bucket: string;
  /** Samples kept per minute at most (token bucket); default 60. */
  maxPerMinute?: number;
  /** Rows per uploaded file; a full file is uploaded at once. Default 200. */
  maxRowsPerFile?: number;
  /** A file with fewer rows is uploaded after this long; default 30 s. */
  flushMs?: number;
  /** Disk kept for files waiting to upload; default 5 MiB. */
  quotaBytes?: number;
}

/** One inference call's readings and, per row, its result id, predicted class and confidence. */
export interface SampleView {
  /** Read only for the readings a sample keeps (a replay's are built when asked). */
  rows: ReadingList;
  id(i: number): string;
  predicted(i: number): string;
  confidence(i: number): number;
  /** A regression model's value (undefined for a classifier). */
  value?(i: number): number | undefined;
  /** A classifier's reading far from its training data (answered `unknown`). */
  novel?(i: number): boolean;
  /** An anomaly model's score, and whether it is over the threshold. */
  score?(i: number): { score: number; anomaly: boolean } | undefined;
  ts: number;
}

/** A view over results already built (stdin, HTTP). */
export function resultsView(rows: readonly RawRow[], results: readonly InferenceResult[]): SampleView {
  return {
    rows,
    id: (i) => results[i]?.id ?? '',
    predicted: (i) => results[i]?.label ?? '',
    confidence: (i) => results[i]?.confidence ?? Number.NaN,
    value: (i) => results[i]?.value,
    novel: (i) => results[i]?.wouldBe !== undefined,
    score: (i) => {
      const result = results[i];
      return result?.score === undefined
        ? undefined
        : { score: result.score, anomaly: result.anomaly === true };
    },
    ts: results[0]?.ts ?? Date.now(),
  };
}

/** A view over a CSV replay chunk (no result objects on that path); ids as the replay makes them. */
export function chunkView(thing: string, chunk: ClassifiedChunk): SampleView {
  const { labels, best, confidence, values, anomaly, novelty } = chunk.classified;
  const novel = (i: number) =>
    novelty !== undefined && isNovel(novelty.scores[i] ?? Number.NaN, novelty.threshold);
  return {
    rows: chunk.rows,
    id: (i) => `${thing}:${chunk.first + i}`,
    predicted: (i) => (novel(i) ? UNKNOWN_CLASS : (labels[best[i] ?? 0] ?? String(best[i]))),
    novel,
    confidence: (i) => round5(confidence[i] ?? Number.NaN),
    ...(values ? { value: (i: number) => roundValue(values[i] ?? Number.NaN) } : {}),
    ...(anomaly
      ? {
          score: (i: number) => {
            const score = roundValue(anomaly.scores[i] ?? Number.NaN);
            return { score, anomaly: score > anomaly.threshold };
          },
        }
      : {}),
    ts: chunk.ts,
  };
}

const round5 = (value: number) => Math.round(value * 1e5) / 1e5;

/** Held-out RMSEs a regression value may be off its reading's truth before it is a hard example. */
export const HARD_ERROR_RMSES = 3;

/**
 * Whether a regression model's value is a hard example: outside the range of the targets it
 * was trained on (a bucket's width of slack, the histogram's resolution), or more than
 * HARD_ERROR_RMSES held-out RMSEs from the truth the reading carried.
 */
export function hardValue(manifest: Manifest): (value: number, truth: unknown) => boolean {
  const histogram = manifest.preprocessing.target?.histogram ?? [];
  const low = histogram.length ? valueBucketBounds(histogram[0]?.[0] ?? 0)[0] : Number.NEGATIVE_INFINITY;
  const high = histogram.length
    ? valueBucketBounds(histogram[histogram.length - 1]?.[0] ?? 0)[1]
    : Number.POSITIVE_INFINITY;
  const rmse = manifest.metrics.regression?.rmse;
  return (value, truth) => {
    if (value < low || value > high) return true;
    const actual = typeof truth === 'number' || typeof truth === 'string' ? targetNumber(truth) : Number.NaN;
    return rmse !== undefined && !Number.isNaN(actual) && Math.abs(value - actual) > HARD_ERROR_RMSES * rmse;
  };
}

/**
 * The columns a sample keeps: the features (and an anomaly model's time and series columns,
 * which are not features but place a reading marked normal back in its series), or for a
 * windowed model time, series and channels.
 */
function sampleColumns(manifest: Manifest): string[] {
  const spec = manifest.window?.spec;
  if (spec) return [spec.time, ...(spec.series ? [spec.series] : []), ...spec.channels];
  const { time, series } = manifest.anomaly ?? {};
  return [
    ...(time ? [time] : []),
    ...(series ? [series] : []),
    ...manifest.preprocessing.features.map((feature) => feature.column),
  ];
}

/** The reading's truth (its value in the label column), when it has one. */
function truthOf(row: RawRow, manifest: Manifest): { label?: string } {
  const truth = row[manifest.preprocessing.label];
  return truth === undefined || truth === null || String(truth) === '' ? {} : { label: String(truth) };
}

export interface HardExampleStats {
  sampled: number;
  /** Samples dropped by the rate limit or the disk quota. */
  dropped: number;
  uploadedFiles: number;
  uploadedRows: number;
  spoolBytes: number;
}

interface Pending {
  version: number;
  features: string[];
  header: string;
  lines: string[];
}

/**
 * Where the sources hand their answers to the sampler (none without one): row chunks of the
 * CSV replay, windows, and results of stdin and POST /infer, judged by the serving model.
 */
export function hardExampleTaps(
  thing: string,
  sampler: HardExampleSampler | undefined,
  serving: () => Manifest | undefined,
): {
  onClassified?: (chunk: ClassifiedChunk) => void;
  onWindowResults?: (results: readonly WindowResult[]) => void;
  onInferred?: (rows: readonly RawRow[], results: readonly InferenceResult[]) => void;
} {
  if (!sampler) return {};
  const sample = (view: SampleView) => {
    const manifest = serving();
    if (manifest) sampler.offer(view, manifest);
  };
  return {
    onClassified: (chunk) => sample(chunkView(thing, chunk)),
    onWindowResults: (results) => {
      const manifest = serving();
      if (manifest) sampler.offerWindows(results, manifest);
    },
    onInferred: (rows, results) => sample(resultsView(rows, results)),
  };
}

export class HardExampleSampler {
  private readonly maxPerMinute: number;
  private readonly maxRows: number;
  private readonly quota: number;
  private tokens: number;
  private refilledAt: number;
  private pending: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private spoolBytes = 0;
  private flushing: Promise<void> = Promise.resolve();
  private readonly counters = { sampled: 0, dropped: 0, uploadedFiles: 0, uploadedRows: 0 };

  private constructor(
    private readonly thing: string,
    private readonly model: string,
    private readonly dir: string,
    private readonly s3: S3Client,
    private readonly options: HardExampleOptions,
    private readonly log: (line: string) => void,
  ) {
    this.maxPerMinute = options.maxPerMinute ?? 60;
    this.maxRows = options.maxRowsPerFile ?? 200;
    this.quota = options.quotaBytes ?? 5 * 2 ** 20;
    this.tokens = this.maxPerMinute;
    this.refilledAt = Date.now();
  }

  /** Opens the spool dir; files left by an earlier run are uploaded at the next flush. */
  static async open(o: {
    thing: string;
    model: string;
    dir: string;
    s3: S3Client;
    options: HardExampleOptions;
    log?: (line: string) => void;
  }): Promise<HardExampleSampler> {
    await mkdir(o.dir, { recursive: true });
    const sampler = new HardExampleSampler(o.thing, o.model, o.dir, o.s3, o.options, o.log ?? (() => {}));
    for (const name of await sampler.spooled()) sampler.spoolBytes += (await stat(join(o.dir, name))).size;
    return sampler;
  }

  stats(): HardExampleStats {
    return { ...this.counters, spoolBytes: this.spoolBytes };
  }

  /**
   * Looks at one inference call's readings and predictions; keeps the low-confidence ones (a
   * regression model's: values outside its training targets, or far from the reading's truth).
   */
  offer(view: SampleView, manifest: Manifest): void {
    if (manifest.preprocessing.task === 'regression') {
      this.offerValues(view, manifest);
      return;
    }
    if (manifest.preprocessing.task === 'anomaly') {
      this.offerAnomalies(view, manifest);
      return;
    }
    const threshold = manifest.lowConfidence;
    for (let i = 0; i < view.rows.length; i++) {
      const confidence = view.confidence(i);
      // Unsure, or far from anything it was trained on (answered `unknown`).
      if (!(confidence < threshold || view.novel?.(i))) continue;
      const row = view.rows.at(i);
      if (!row) continue;
      if (!this.take()) {
        this.counters.dropped++;
        continue;
      }
      this.add(row, { id: view.id(i), ts: view.ts, label: view.predicted(i), confidence }, manifest);
    }
  }

  /** An anomaly model's anomalous readings: a reviewer marks the false alarms normal (shared/feedback.ts). */
  private offerAnomalies(view: SampleView, manifest: Manifest): void {
    for (let i = 0; i < view.rows.length; i++) {
      const scored = view.score?.(i);
      if (!scored?.anomaly) continue;
      const row = view.rows.at(i);
      if (!row) continue;
      if (!this.take()) {
        this.counters.dropped++;
        continue;
      }
      this.add(row, { id: view.id(i), ts: view.ts, score: scored.score }, manifest);
    }
  }

  private offerValues(view: SampleView, manifest: Manifest): void {
    const hard = hardValue(manifest);
    for (let i = 0; i < view.rows.length; i++) {
      const value = view.value?.(i);
      if (value === undefined) continue;
      const row = view.rows.at(i);
      if (!row || !hard(value, row[manifest.preprocessing.label])) continue;
      if (!this.take()) {
        this.counters.dropped++;
        continue;
      }
      this.add(row, { id: view.id(i), ts: view.ts, value }, manifest);
    }
  }

  /**
   * A windowed model's results: a low-confidence window is kept whole (one token), one row
   * per sample in long format, under a series of its own (`thing/series@start`), so a retrain
   * reads it back as exactly that window.
   */
  offerWindows(results: readonly WindowResult[], manifest: Manifest): void {
    const spec = manifest.window?.spec;
    if (!spec) return;
    const width = spec.channels.length;
    const period = 1000 / spec.frequencyHz;
    const label = manifest.preprocessing.label;
    for (const { result, window } of results) {
      // An anomaly model's anomalous windows; a classifier's unsure ones (regression results
      // carry no confidence: their hard examples are not chosen this way).
      const hard =
        result.score !== undefined
          ? result.anomaly === true
          : result.confidence !== undefined && result.confidence < manifest.lowConfidence;
      if (!hard) continue;
      if (!this.take()) {
        this.counters.dropped++;
        continue;
      }
      const series = `${this.thing}/${window.series}@${Math.round(window.start)}`;
      for (let i = 0; i < spec.samples; i++) {
        if (Number.isNaN(window.values[i * width] as number)) continue; // padding, not a reading
        const at = window.start + i * period;
        const row: Record<string, string | number> = {
          [spec.time]: spec.timeUnit === 's' ? at / 1000 : Number(at.toFixed(3)),
          ...(spec.series ? { [spec.series]: series } : {}),
          ...(result.truth !== undefined ? { [label]: result.truth } : {}),
        };
        spec.channels.forEach((channel, c) => {
          row[channel] = Number((window.values[i * width + c] as number).toPrecision(7));
        });
        const { label: predicted, confidence, score } = result;
        this.add(
          row,
          {
            id: `${result.id}:${i}`,
            ts: result.ts,
            ...(predicted !== undefined ? { label: predicted } : {}),
            ...(confidence !== undefined ? { confidence } : {}),
            ...(score !== undefined ? { score } : {}),
          },
          manifest,
        );
      }
    }
  }

  /** Writes what is pending to the spool and uploads every spooled file. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      try {
        await this.spoolPending();
        await this.uploadSpooled();
      } catch (error) {
        // Samples are best effort: a failed flush is logged, never the end of the sampler.
        this.log(`hard examples: ${errorMessage(error)}`);
      }
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(
      this.maxPerMinute,
      this.tokens + ((now - this.refilledAt) / 60_000) * this.maxPerMinute,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private add(row: RawRow, result: Omit<InferenceResult, 'latencyMs'>, manifest: Manifest): void {
    const version = manifest.version;
    if (this.pending && this.pending.version !== version) void this.flush();
    if (!this.pending) {
      const features = sampleColumns(manifest);
      this.pending = {
        version,
        features,
        header: feedbackHeader(features, feedbackLabelColumn(manifest.preprocessing)).join(','),
        lines: [],
      };
    }
    const pending = this.pending;
    pending.lines.push(
      feedbackLine(
        {
          id: result.id,
          ts: result.ts,
          thing: this.thing,
          version,
          predicted:
            result.value !== undefined
              ? String(result.value)
              : result.score !== undefined
                ? String(result.score)
                : (result.label ?? ''),
          ...(result.confidence !== undefined ? { confidence: result.confidence } : {}),
          features: row,
          ...truthOf(row, manifest),
        },
        pending.features,
      ),
    );
    this.counters.sampled++;
    if (pending.lines.length >= this.maxRows) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.options.flushMs ?? 30_000);
  }

  private async spoolPending(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.pending;
    this.pending = undefined;
    if (!pending || pending.lines.length === 0) return;
    const text = `${pending.header}\n${pending.lines.join('\n')}\n`;
    const bytes = Buffer.byteLength(text);
    if (this.spoolBytes + bytes > this.quota) {
      this.counters.dropped += pending.lines.length;
      this.counters.sampled -= pending.lines.length;
      this.log(
        `hard examples: disk quota ${this.quota} bytes reached; ${pending.lines.length} samples dropped`,
      );
      return;
    }
    const name = `${Date.now()}-v${pending.version}-${process.pid}-${this.seq++}.csv`;
    try {
      await writeFileDurable(join(this.dir, name), text);
    } catch (error) {
      await rm(join(this.dir, name), { force: true }).catch(() => undefined);
      if (!isStorageFault(error)) throw error;
      // A full or failing disk: the results matter more than samples of them.
      this.counters.dropped += pending.lines.length;
      this.counters.sampled -= pending.lines.length;
      this.log(
        `hard examples: ${pending.lines.length} samples dropped, the disk refused them (${errorMessage(error)})`,
      );
      return;
    }
    this.spoolBytes += bytes;
  }

  private async spooled(): Promise<string[]> {
    return (await readdir(this.dir)).filter((name) => name.endsWith('.csv')).sort();
  }

  private async uploadSpooled(): Promise<void> {
    for (const name of await this.spooled()) {
      const path = join(this.dir, name);
      const body = await readFile(path);
      try {
        await this.s3.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: datasetKeys.feedbackFile(this.model, this.thing, name),
            Body: body,
            ContentType: 'text/csv',
          }),
        );
      } catch (error) {
        // Kept on disk for the next flush.
        this.log(`hard examples: upload of ${name} failed: ${errorMessage(error)}`);
        return;
      }
      await rm(path, { force: true });
      this.spoolBytes = Math.max(0, this.spoolBytes - body.length);
      this.counters.uploadedFiles++;
      this.counters.uploadedRows += body.toString('utf8').trimEnd().split('\n').length - 1;
    }
  }
}
