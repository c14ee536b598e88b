/**
 * The state dir's disk, watched: a full disk, a read-only one or a failing one is a state
 * of the gateway, not a crash.
 *
 * - `isStorageFault` names the write errors that mean "the disk cannot take this now"
 *   (ENOSPC, EDQUOT, EIO, EROFS); writers hold what they have and try again later.
 * - `DiskMonitor` knows the free bytes (statfs, refreshed at most every REFRESH_MS and
 *   lowered by what the device wrote since) and a reserve the device never writes into:
 *   `diskReserveMB` in the config, by default min(5% of the filesystem, 20 MiB). The source
 *   pauses once the free space, less what the result writer has in hand, would drop below
 *   reserve + margin, and resumes once the outbox has drained to reserve + 2 x margin
 *   (margin = the reserve).
 * - `ensureWritableStateDir` refuses a read-only state dir at start with a clear error,
 *   without writing anything (a full disk must still start, load its model and drain).
 * - `removeStaleTemps` clears what a crash mid-write left behind, before anything else.
 */
import { constants } from 'node:fs';
import { access, mkdir, readdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { EdgeloopError, errorMessage } from '../../shared/errors.ts';
import type { DiskState, DiskStatus } from '../../shared/schemas.ts';

export const STORAGE_FAULT_CODES = ['ENOSPC', 'EDQUOT', 'EIO', 'EROFS'] as const;
export type StorageFaultCode = (typeof STORAGE_FAULT_CODES)[number];

/**
 * The storage fault an error (or an error message passed across a thread) stands for, or
 * undefined when it is something else.
 */
export function storageFault(error: unknown): StorageFaultCode | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && (STORAGE_FAULT_CODES as readonly string[]).includes(code))
    return code as StorageFaultCode;
  const text = typeof error === 'string' ? error : error instanceof Error ? error.message : '';
  return STORAGE_FAULT_CODES.find((fault) => new RegExp(`\\b${fault}\\b`).test(text));
}

export function isStorageFault(error: unknown): boolean {
  return storageFault(error) !== undefined;
}

export type { DiskState, DiskStatus } from '../../shared/schemas.ts';

export interface DiskOptions {
  /** Free bytes the device never writes into (default min(5% of the filesystem, 20 MiB)). */
  reserveBytes?: number;
  /** For tests: the free and total bytes instead of statfs. */
  statfs?: (dir: string) => Promise<{ free: number; total: number }>;
}

const REFRESH_MS = 100;
/** How often a paused source looks at the disk again. */
const PAUSED_POLL_MS = 100;
const DEFAULT_RESERVE_MAX = 20 * 2 ** 20;
/** Growth of the free space that counts as the disk freeing (more than a block). */
const FREEING_BYTES = 8192;

export function defaultReserve(totalBytes: number): number {
  return Math.min(Math.floor(totalBytes * 0.05), DEFAULT_RESERVE_MAX);
}

async function statfsBytes(dir: string): Promise<{ free: number; total: number }> {
  const s = await statfs(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One pause of the source, for the log and the figures. */
export interface PauseRecord {
  pausedAt: number;
  /** When the free space first grew again while paused (the outbox began to drain). */
  freeingAt?: number;
  resumedAt?: number;
}

export class DiskMonitor {
  private free = Number.POSITIVE_INFINITY;
  private written = 0;
  private refreshedAt = 0;
  private refreshing: Promise<void> | undefined;
  private reserve: number;
  private fault: StorageFaultCode | undefined;
  private paused = false;
  /** The current (or last) pause, and the free space when it began. */
  private pause: PauseRecord | undefined;
  private lowestWhilePaused = 0;
  private readonly listeners = new Set<() => void>();
  private readonly stat: (dir: string) => Promise<{ free: number; total: number }>;

  private constructor(
    readonly dir: string,
    private readonly options: DiskOptions,
  ) {
    this.reserve = options.reserveBytes ?? 0;
    this.stat = options.statfs ?? statfsBytes;
  }

  /**
   * Reads the disk once. A disk already below reserve + 2 x margin starts paused: what the
   * outbox holds drains before the source adds to it (start-up on a full disk).
   */
  static async open(dir: string, options: DiskOptions = {}): Promise<DiskMonitor> {
    const monitor = new DiskMonitor(dir, options);
    await monitor.refresh();
    if (monitor.freeBytes < monitor.resumeAt) monitor.setPaused(true);
    return monitor;
  }

  get reserveBytes(): number {
    return this.reserve;
  }

  /** Free bytes: the last statfs, less what was written since. */
  get freeBytes(): number {
    return Math.max(0, this.free - this.written);
  }

  /** The margin above the reserve: pause below reserve + margin, resume at reserve + 2 x margin. */
  get marginBytes(): number {
    return this.reserve;
  }

  private get resumeAt(): number {
    return this.reserve + 2 * this.marginBytes;
  }

  /** Whether the source is paused for the disk. */
  get sourcePaused(): boolean {
    return this.paused;
  }

  /** The current or last pause of the source. */
  get lastPause(): PauseRecord | undefined {
    return this.pause;
  }

  /** Free bytes below the reserve (0 while the reserve is intact): what the outbox must give up. */
  get shortfall(): number {
    this.poll();
    return Math.max(0, this.reserve - this.freeBytes);
  }

  /** Re-reads statfs now (also called by a timer while the source is paused). */
  async refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const { free, total } = await this.stat(this.dir);
        this.free = free;
        this.written = 0;
        this.refreshedAt = Date.now();
        if (this.options.reserveBytes === undefined) this.reserve = defaultReserve(total);
        // The disk begins to free when it grows past its low point of this pause by a block
        // or more (the outbox deleted a file), not when the writer's last bytes land.
        if (this.paused && this.pause && this.pause.freeingAt === undefined) {
          if (free > this.lowestWhilePaused + FREEING_BYTES) this.pause.freeingAt = this.refreshedAt;
          this.lowestWhilePaused = Math.min(this.lowestWhilePaused, free);
        }
      } catch {
        // statfs itself failing (EIO) leaves the last figures; the writes report the fault.
      } finally {
        this.refreshing = undefined;
      }
    })();
    await this.refreshing;
    this.update();
  }

  /** Refreshes in the background when the figures are older than REFRESH_MS. */
  poll(): void {
    if (Date.now() - this.refreshedAt >= REFRESH_MS) void this.refresh();
  }

  /** Bytes the device just wrote (until the next statfs tells). */
  wrote(bytes: number): void {
    this.written += bytes;
    this.poll();
  }

  /** A write hit a storage fault (or undefined: the writes go through again). */
  setFault(fault: StorageFaultCode | undefined): void {
    if (fault === this.fault) return;
    this.fault = fault;
    if (fault) void this.refresh();
    this.update();
  }

  get currentFault(): StorageFaultCode | undefined {
    return this.fault;
  }

  /**
   * Whether `bytes` more (plus `inHand` bytes already handed to the writer) may be written
   * without going below reserve + margin. Cheap: no syscall (the figures refresh behind).
   */
  roomFor(bytes: number, inHand = 0): boolean {
    this.poll();
    return !this.fault && this.freeBytes - inHand - bytes >= this.reserve + this.marginBytes;
  }

  /**
   * Why a write of `bytes` (other than results: a model to stage) must not happen now, or
   * undefined when it keeps the reserve.
   */
  refusal(bytes: number): string | undefined {
    this.poll();
    if (this.fault === 'EROFS' || this.fault === 'EIO')
      return `the state dir's disk is ${this.state} (${this.fault})`;
    const room = this.freeBytes - this.reserve;
    if (bytes <= room) return undefined;
    return `not enough disk space: it needs ${bytes} bytes, ${Math.max(0, room)} are free above the ${this.reserve}-byte reserve (${this.freeBytes} free)`;
  }

  /**
   * Whether the source should run: it pauses when `roomFor(0, inHand)` fails or a write
   * faulted, and resumes only once the free space is back to reserve + 2 x margin.
   */
  sourceMayRun(inHand = 0): boolean {
    const run = this.paused
      ? !this.fault && this.freeBytes - inHand >= this.resumeAt
      : this.roomFor(0, inHand);
    if (run === this.paused) this.setPaused(!run);
    return run;
  }

  /** Resolves once the source may run (or `stopped()`), looking at the disk while paused. */
  async waitForRoom(inHand: () => number, stopped: () => boolean, whilePaused?: () => void): Promise<void> {
    while (!stopped() && !this.sourceMayRun(inHand())) {
      whilePaused?.();
      await sleep(PAUSED_POLL_MS);
      await this.refresh();
    }
  }

  private setPaused(paused: boolean) {
    this.paused = paused;
    const now = Date.now();
    if (paused) {
      this.pause = { pausedAt: now };
      this.lowestWhilePaused = this.freeBytes;
    } else if (this.pause) this.pause.resumedAt = now;
    this.update();
  }

  get state(): DiskState {
    if (this.fault === 'EROFS') return 'read-only';
    if (this.fault === 'EIO') return 'failing';
    if (this.fault || this.paused || this.freeBytes < this.reserve + this.marginBytes) return 'full';
    if (this.freeBytes < this.reserve + 4 * this.marginBytes) return 'low';
    return 'ok';
  }

  report(): DiskStatus {
    return {
      state: this.state,
      freeBytes: Number.isFinite(this.freeBytes) ? this.freeBytes : 0,
      reserveBytes: this.reserve,
      sourcePaused: this.paused,
    };
  }

  /** Called whenever the state, the pause or the fault may have changed. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private lastKey = '';
  private update() {
    const key = `${this.state}:${this.paused}:${this.fault ?? ''}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    for (const listener of this.listeners) listener();
  }
}

/**
 * The state dir exists and may be written, checked without writing (a full disk must still
 * start): a read-only one is refused with what to do about it.
 */
export async function ensureWritableStateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM')
      throw new EdgeloopError(
        `the state dir ${dir} is not writable (${code}): the gateway keeps its outbox, checkpoint and models there. ${
          code === 'EROFS'
            ? 'Its filesystem is mounted read-only: remount it read-write (or check it for errors), or give --state-dir on a writable disk'
            : 'Give the service user write access to it, or give --state-dir on a writable disk'
        }`,
        { cause: error },
      );
    if (code === 'ENOSPC') return; // mkdir of a missing dir on a full disk: the writers will say
    throw new EdgeloopError(`the state dir ${dir} cannot be used: ${errorMessage(error)}`, { cause: error });
  }
}

/**
 * Removes temp files a crash left mid-write (`*.tmp`, model `.staging-*` dirs) anywhere in
 * the state dir, so their space is free before anything else starts. Returns how many.
 */
export async function removeStaleTemps(dir: string, depth = 3): Promise<number> {
  let removed = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.name.endsWith('.tmp') || (entry.isDirectory() && entry.name.startsWith('.staging-'))) {
      await rm(path, { recursive: true, force: true });
      removed++;
    } else if (entry.isDirectory() && depth > 1) removed += await removeStaleTemps(path, depth - 1);
  }
  return removed;
}
