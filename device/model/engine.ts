/**
 * Inference on the serving model: batch calls for sources that already hold many readings
 * (CSV replay), and a micro-batcher for single readings (HTTP /infer, stdin): the readings
 * that arrive in one turn of the event loop (up to `maxBatch`) share one predict, run in the
 * same turn's check phase (setImmediate). A lone reading is predicted at once instead of
 * waiting for company that may never come; under load, every request parsed in a turn
 * still rides one batch.
 * Also keeps the numbers the status reports: rate, p50/p99 latency.
 */
import { type ReadingList, rowArray } from '../../shared/dataset/reading-table.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import { type Classified, type LoadedModel, type Prediction, refuseWindowedModel } from './model.ts';

export type Inferred = Prediction & {
  version: number;
  latencyMs: number;
};

interface Waiting {
  row: RawRow;
  at: number;
  resolve: (value: Inferred) => void;
  reject: (error: Error) => void;
}

export class NoModelError extends Error {
  constructor() {
    super('no model is serving yet: waiting for a release notice');
    this.name = 'NoModelError';
  }
}

const LATENCY_WINDOW = 2048;

export class Engine {
  private model: LoadedModel | undefined;
  private queue: Waiting[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private readonly latencies = new Float64Array(LATENCY_WINDOW);
  private latencyCount = 0;
  private rateWindowStart = Date.now();
  private rateWindowCount = 0;
  private lastRate = 0;
  inferences = 0;

  constructor(private readonly options: { maxBatch?: number } = {}) {}

  get version(): number | undefined {
    return this.model?.version;
  }

  get serving(): LoadedModel | undefined {
    return this.model;
  }

  /** Swaps the serving model; the old one is disposed after the swap. */
  setModel(model: LoadedModel): void {
    const old = this.model;
    this.model = model;
    if (old && old !== model) old.dispose();
  }

  /** One predict for all rows; `arrivedAt` is when the readings arrived (for latency). */
  inferRows(rows: readonly RawRow[], arrivedAt = performance.now()): Inferred[] {
    const model = this.model;
    if (!model) throw new NoModelError();
    const { predictions } = model.predictRows(rows);
    const latencyMs = performance.now() - arrivedAt;
    const out: Inferred[] = new Array(predictions.length);
    for (let i = 0; i < predictions.length; i++) {
      out[i] = { ...(predictions[i] as Prediction), version: model.version, latencyMs };
    }
    this.record(latencyMs, rows.length);
    return out;
  }

  /**
   * `inferRows` without an object per reading (the CSV replay hot path): one predict, each
   * row's best class and probability, the serving version and the chunk's latency.
   */
  classifyRows(
    /** An array, or a replay's readings (built only when `prepared` gives no input). */
    rows: ReadingList,
    arrivedAt = performance.now(),
    /** The rows already transformed for this model, when the caller keeps them (CSV replay). */
    prepared?: (model: LoadedModel) => Float32Array | undefined,
  ): Classified & { version: number; latencyMs: number } {
    const model = this.model;
    if (!model) throw new NoModelError();
    refuseWindowedModel(model.manifest);
    const x = prepared?.(model);
    const classified = x ? model.classifyInput(x, rows.length) : model.classifyRows(rowArray(rows));
    const latencyMs = performance.now() - arrivedAt;
    this.record(latencyMs, rows.length);
    return { ...classified, version: model.version, latencyMs };
  }

  /**
   * One predict on `n` inputs that `prepare` makes for the serving model (windows: their
   * features depend on the model's manifest, so they are made for the model that runs them).
   */
  classifyPrepared(
    n: number,
    prepare: (model: LoadedModel) => Float32Array,
    arrivedAt = performance.now(),
  ): Classified & { version: number; latencyMs: number; model: LoadedModel } {
    const model = this.model;
    if (!model) throw new NoModelError();
    const classified = model.classifyInput(prepare(model), n);
    const latencyMs = performance.now() - arrivedAt;
    this.record(latencyMs, n);
    return { ...classified, version: model.version, latencyMs, model };
  }

  /** Micro-batched single reading. */
  submit(row: RawRow): Promise<Inferred> {
    if (!this.model) return Promise.reject(new NoModelError());
    return new Promise((resolve, reject) => {
      this.queue.push({ row, at: performance.now(), resolve, reject });
      if (this.queue.length >= (this.options.maxBatch ?? 256)) this.runQueue();
      else this.scheduled ??= setImmediate(() => this.runQueue());
    });
  }

  private runQueue() {
    clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const waiting = this.queue;
    this.queue = [];
    if (waiting.length === 0) return;
    const model = this.model;
    if (!model) {
      for (const item of waiting) item.reject(new NoModelError());
      return;
    }
    try {
      const { predictions } = model.predictRows(waiting.map((item) => item.row));
      const done = performance.now();
      waiting.forEach((item, i) => {
        const prediction = predictions[i] as Prediction;
        const latencyMs = done - item.at;
        this.record(latencyMs, 1);
        item.resolve({ ...prediction, version: model.version, latencyMs });
      });
    } catch (error) {
      for (const item of waiting) item.reject(error as Error);
    }
  }

  private record(latencyMs: number, count: number) {
    this.latencies[this.latencyCount++ % LATENCY_WINDOW] = latencyMs;
    this.inferences += count;
    this.rateWindowCount += count;
  }

  /** Inferences per second since the previous call (at least 1 s apart), and p50/p99. */
  stats(): { rate: number; p50: number | null; p99: number | null } {
    const now = Date.now();
    const elapsed = now - this.rateWindowStart;
    if (elapsed >= 1_000) {
      this.lastRate = (this.rateWindowCount * 1_000) / elapsed;
      this.rateWindowStart = now;
      this.rateWindowCount = 0;
    }
    const n = Math.min(this.latencyCount, LATENCY_WINDOW);
    if (n === 0) return { rate: this.lastRate, p50: null, p99: null };
    const sorted = Array.from(this.latencies.subarray(0, n)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))] ?? 0;
    return { rate: this.lastRate, p50: at(0.5), p99: at(0.99) };
  }

  dispose(): void {
    for (const item of this.queue) item.reject(new Error('device stopping'));
    this.queue = [];
    clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.model?.dispose();
    this.model = undefined;
  }
}
