/**
 * The on-disk model store, built so that a crash at any instant leaves a loadable model.
 *
 *   <stateDir>/models/.staging-v{n}-{pid}/   files being downloaded (never loaded)
 *   <stateDir>/models/v{n}/                  a complete slot whose digests were verified
 *   <stateDir>/models/current                {"version": n, "previous": m} -- the pointer
 *
 * Steps: stage (write into a staging dir, fsync each file) -> verify (check every digest,
 * then rename the staging dir to its slot) -> switch (write the pointer to a temp file,
 * fsync, rename over `current`, fsync the directory). Until that last rename the old
 * pointer names the old slot, which nothing touched; after it, the new slot is complete.
 * On start the store re-checks the slot the pointer names against its manifest digests and
 * falls back to the previous slot if that fails, so even a torn slot cannot be loaded.
 * `highest` records the highest version ever switched to (anti-rollback survives a restart).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../shared/manifest.ts';
import { type Manifest, ManifestSchema } from '../../shared/schemas.ts';
import { modelFiles } from '../../shared/topology.ts';
import { fsyncDir, replaceFileAtomic, writeFileDurable } from '../platform/durable.ts';

export interface SlotFiles {
  manifestBytes: Buffer;
  manifest: Manifest;
  files: Map<string, Buffer>;
}

/** File in the models dir holding {"version": n}, the highest version verified. */
const HIGHEST = 'highest';

interface Pointer {
  version: number;
  previous?: number;
}

/** The reason a slot's files do not match its manifest, or undefined when they all do. */
export function digestMismatch(
  manifest: Manifest,
  files: ReadonlyMap<string, Uint8Array>,
): string | undefined {
  for (const entry of manifest.files) {
    const bytes = files.get(entry.name);
    if (!bytes) return `${entry.name} is missing`;
    if (bytes.byteLength !== entry.size)
      return `${entry.name} is ${bytes.byteLength} bytes, the manifest says ${entry.size} (truncated or padded download)`;
    const digest = sha256Hex(bytes);
    if (digest !== entry.sha256)
      return `${entry.name} sha256 ${digest} does not match the manifest's ${entry.sha256}`;
  }
  return undefined;
}

export class ModelStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'models');
  }

  private slotDir(version: number) {
    return join(this.dir, `v${version}`);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // Half-written staging dirs from a crash are never loaded; clear them.
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.staging-') || name.endsWith('.tmp'))
        await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }

  async pointer(): Promise<Pointer | undefined> {
    try {
      const parsed = JSON.parse(await readFile(join(this.dir, 'current'), 'utf8')) as Pointer;
      return Number.isInteger(parsed.version) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  /** The highest version this gateway has verified and switched to, or undefined before any. */
  async highestVersion(): Promise<number | undefined> {
    try {
      const parsed = JSON.parse(await readFile(join(this.dir, HIGHEST), 'utf8')) as { version?: unknown };
      return Number.isInteger(parsed.version) ? (parsed.version as number) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Raises the recorded highest version to `version` (never lowers it: a rollback keeps it). */
  async recordVerified(version: number): Promise<void> {
    const highest = await this.highestVersion();
    if (highest !== undefined && highest >= version) return;
    await replaceFileAtomic(this.dir, HIGHEST, JSON.stringify({ version }));
  }

  /** Step "stage": the downloaded files go to a fresh staging dir, each fsynced. */
  async stage(slot: SlotFiles): Promise<string> {
    const staging = join(
      this.dir,
      `.staging-v${slot.manifest.version}-${process.pid}-${randomBytes(3).toString('hex')}`,
    );
    try {
      await mkdir(staging, { recursive: true });
      await writeFileDurable(join(staging, modelFiles.manifest), slot.manifestBytes);
      for (const [name, bytes] of slot.files) await writeFileDurable(join(staging, name), bytes);
      await fsyncDir(staging);
    } catch (error) {
      // A full disk: what was staged goes at once, not at the next start.
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      throw error;
    }
    return staging;
  }

  /** Step "verify" (on disk): re-read the staged files, check them, promote to a slot. */
  async promote(staging: string, version: number): Promise<void> {
    const slot = await this.readDir(staging);
    const mismatch = digestMismatch(slot.manifest, slot.files);
    if (mismatch) throw new Error(`staged files do not verify: ${mismatch}`);
    const target = this.slotDir(version);
    await rm(target, { recursive: true, force: true });
    await rename(staging, target);
    await fsyncDir(this.dir);
  }

  /** Step "switch": the pointer names the new slot, atomically. */
  async switchTo(version: number): Promise<void> {
    const current = await this.pointer();
    const pointer: Pointer = { version };
    if (current && current.version !== version) pointer.previous = current.version;
    await replaceFileAtomic(this.dir, 'current', JSON.stringify(pointer));
    await this.prune(pointer);
  }

  /**
   * The slot the pointer names if it verifies, else the previous one; undefined when none.
   * `trust` adds a check beyond the digests (the manifest signature): a slot planted in the
   * state dir has digests that match, but no signature from the stack's key.
   */
  async loadCurrent(
    log?: (line: string) => void,
    trust?: (slot: SlotFiles) => string | undefined,
  ): Promise<SlotFiles | undefined> {
    const pointer = await this.pointer();
    if (!pointer) return undefined;
    for (const version of [pointer.version, pointer.previous]) {
      if (version === undefined) continue;
      try {
        const slot = await this.readDir(this.slotDir(version));
        const mismatch = digestMismatch(slot.manifest, slot.files) ?? trust?.(slot);
        if (!mismatch) return slot;
        log?.(`model slot v${version} does not verify (${mismatch}); trying the previous slot`);
      } catch (error) {
        log?.(
          `model slot v${version} cannot be read (${(error as Error).message}); trying the previous slot`,
        );
      }
    }
    return undefined;
  }

  private async readDir(dir: string): Promise<SlotFiles> {
    const manifestBytes = await readFile(join(dir, modelFiles.manifest));
    const manifest = ManifestSchema.parse(JSON.parse(manifestBytes.toString('utf8')));
    const files = new Map<string, Buffer>();
    for (const entry of manifest.files) files.set(entry.name, await readFile(join(dir, entry.name)));
    return { manifestBytes, manifest, files };
  }

  /** Keeps the current and previous slots; older ones go. */
  private async prune(pointer: Pointer) {
    const keep = new Set([`v${pointer.version}`, `v${pointer.previous}`]);
    for (const name of await readdir(this.dir)) {
      if (/^v\d+$/.test(name) && !keep.has(name))
        await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }
}
