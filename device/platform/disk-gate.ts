/**
 * The sources' gate on the disk (disk.ts has the figures): a source waits before each chunk
 * while the disk lacks room for what it holds in hand; results a storage fault holds in
 * memory are written again as soon as there is room; each pause and resume is logged with
 * what the outbox holds; and a timer keeps the figures current when no source asks (POST
 * /infer only, or a source that has finished).
 */
import type { DiskMonitor } from './disk.ts';

/** What the gate needs of the results on their way to the disk. */
export interface ResultsInHand {
  /** Bytes handed over and not durable yet. */
  readonly inHandBytes: number;
  /** The storage fault holding results in memory, and their bytes. */
  readonly storageFault: string | undefined;
  readonly heldBytes: number;
  /** Writes the held results now. */
  retry(): void;
}

/** How often the disk is looked at when no source asks. */
const DISK_CHECK_MS = 1_000;

export class SourceDiskGate {
  private wasPaused: boolean;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly disk: DiskMonitor,
    private readonly results: ResultsInHand,
    private readonly o: {
      /** Results stored in the outbox, for the log lines. */
      outboxResults: () => number;
      stopped: () => boolean;
      log: (line: string) => void;
      /** The disk's state or the pause changed. */
      onChange: (state: DiskMonitor['state']) => void;
    },
  ) {
    this.wasPaused = disk.sourcePaused;
    if (this.wasPaused)
      o.log(`${this.line()}; the source waits until the ${o.outboxResults()} results in the outbox drained`);
    disk.onChange(() => this.changed());
  }

  /** Resolves once the source may read on (or the device stops). */
  wait(): Promise<void> {
    return this.disk.waitForRoom(
      () => this.results.inHandBytes,
      this.o.stopped,
      () => this.retryHeld(),
    );
  }

  /** Whether a source may read on now (no syscall). */
  mayRun(): boolean {
    return this.disk.sourceMayRun(this.results.inHandBytes);
  }

  /** Results a storage fault holds are written again once the disk has room for them. */
  retryHeld(): void {
    const { disk, results } = this;
    if (results.storageFault && disk.freeBytes - results.heldBytes >= disk.reserveBytes) results.retry();
  }

  /** Starts the timer; `sourceRunning`: a source asks before each chunk itself. */
  start(sourceRunning: () => boolean): void {
    this.timer = setInterval(() => {
      void this.disk.refresh().then(() => {
        if (!sourceRunning()) this.mayRun();
        this.retryHeld();
      });
    }, DISK_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private line(): string {
    const { state, freeBytes, reserveBytes } = this.disk.report();
    return `disk ${state}: ${freeBytes} bytes free (reserve ${reserveBytes})`;
  }

  private changed() {
    const { disk } = this;
    const pause = disk.lastPause;
    if (disk.sourcePaused && !this.wasPaused)
      this.o.log(`${this.line()}; source paused with ${this.o.outboxResults()} results stored in the outbox`);
    else if (!disk.sourcePaused && this.wasPaused && pause?.resumedAt !== undefined)
      this.o.log(
        `${this.line()}; source resumed after ${pause.resumedAt - pause.pausedAt} ms paused${
          pause.freeingAt !== undefined
            ? ` (${pause.resumedAt - pause.freeingAt} ms after the disk began to free)`
            : ''
        }`,
      );
    this.wasPaused = disk.sourcePaused;
    this.o.onChange(disk.state);
  }
}
