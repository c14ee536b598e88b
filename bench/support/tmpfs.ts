/**
 * A real small filesystem for the disk fault tests: `mount -t tmpfs -o size=3m tmpfs DIR`.
 * It fills up (ENOSPC) and can be remounted read-only (EROFS) like a gateway's SD card.
 * Mounting needs root (CI runs as root); elsewhere `tmpfsUnavailable` says why the tests skip.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function probe(): string | undefined {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed here (${(error as Error).message.split('\n')[0]})`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Why tmpfs tests cannot run here, or undefined when they can. */
export const tmpfsUnavailable: string | undefined = probe();

export interface Tmpfs {
  dir: string;
  /** Remounts read-only (writes fail with EROFS) or read-write again. */
  remount(mode: 'ro' | 'rw'): void;
  unmount(): Promise<void>;
}

/** Mounts a tmpfs of `size` (mount's syntax: '3m', '512k') on a fresh temp dir. */
export async function mountTmpfs(size: string, mode: 'ro' | 'rw' = 'rw'): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},${mode}`, 'tmpfs', dir], { stdio: 'pipe' });
  let mounted = true;
  return {
    dir,
    remount(next) {
      execFileSync('mount', ['-o', `remount,${next}`, dir], { stdio: 'pipe' });
    },
    async unmount() {
      if (mounted) execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      mounted = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
