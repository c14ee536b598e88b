/**
 * Collects the garbage V8 leaves for late: at a live rate a gateway's old space grows about
 * 0.1 MB/s, so V8 runs no full collection for minutes, and what a predict's own scavenges
 * promoted (window values, tfjs's per-predict arrays, each with its off-heap ArrayBuffer)
 * stays in memory meanwhile. Once the process's RSS passes a budget, a full collection runs,
 * at most once per interval. It needs node's `--expose-gc` (device/packaging/node-flags.ts);
 * without it (the repository's device under tsx) it does nothing.
 *
 * The budget, 140 MB, sits under the 150 MB a gateway package is held to (#29): the GRU
 * workload at 5,000 readings/s peaked at 140-141 MB instead of 158, for about 8% more CPU (a
 * collection pauses the main thread 18-31 ms); rows and spectral windows stay under it and never
 * collect (bench/README.md). A 112 MB budget took them to 113 and 123 MB, but at 10-25% more
 * CPU. A heap cap (`--max-old-space-size`) also lowers the peak, but its incremental marking
 * raised p99 latency to about 70 ms.
 */

export interface HeapTrimOptions {
  /** RSS (MB) above which a full collection may run. */
  budgetMB: number;
  /** Least time (ms) between two collections. */
  minIntervalMs: number;
  /** How often (ms) RSS is checked. */
  checkEveryMs: number;
}

export const DEFAULT_HEAP_TRIM: HeapTrimOptions = {
  budgetMB: 140,
  minIntervalMs: 10_000,
  checkEveryMs: 2_000,
};

/** Whether to collect now: over the budget, and the last collection at least an interval ago. */
export function heapTrimDue(rssMB: number, now: number, lastAt: number, o: HeapTrimOptions): boolean {
  return rssMB > o.budgetMB && now - lastAt >= o.minIntervalMs;
}

export class HeapTrim {
  /** Full collections run so far. */
  collections = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly options: HeapTrimOptions = DEFAULT_HEAP_TRIM,
    private readonly collect: (() => void) | undefined = (globalThis as { gc?: () => void }).gc,
    private readonly rssMB: () => number = () => process.memoryUsage.rss() / 2 ** 20,
  ) {}

  /** Whether this process can collect (node ran with --expose-gc). */
  get available(): boolean {
    return this.collect !== undefined;
  }

  start(): void {
    if (!this.collect || this.timer) return;
    this.timer = setInterval(() => this.check(), this.options.checkEveryMs);
    this.timer.unref();
  }

  /** One check: collects when due; returns whether it did. */
  check(now = performance.now()): boolean {
    if (!this.collect || !heapTrimDue(this.rssMB(), now, this.lastAt, this.options)) return false;
    this.lastAt = now;
    this.collect();
    this.collections++;
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
