/**
 * The node_modules the training image's runtime stage needs, taken from the build stage's
 * `npm ci` (the lockfile's exact versions, install scripts off): the packages the esbuild
 * bundle leaves external (@tensorflow/*) and everything they depend on, resolved the way
 * Node resolves them (the nearest node_modules up the tree), read from package-lock.json.
 *
 *   tsx runtime-modules.ts <package-lock.json> <node_modules parent> <dest> <package>...
 *
 * copies each needed package folder from `<node_modules parent>/node_modules/...` to
 * `<dest>/node_modules/...`, and prints what it copied.
 */
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface LockedPackage {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  dev?: boolean;
}

export interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockedPackage>;
}

/**
 * The lockfile paths (`node_modules/a`, `node_modules/a/node_modules/b`) of `roots` and all
 * they depend on, sorted, with paths inside another listed path left out (copying the outer
 * folder brings them). A root or a required dependency missing from the lockfile is an error;
 * a missing optional or peer dependency is not (npm does not install those everywhere).
 */
export function runtimeModules(lock: Lockfile, roots: readonly string[]): string[] {
  if (lock.lockfileVersion < 2)
    throw new Error(`package-lock.json v${lock.lockfileVersion} has no "packages" map: use npm 7 or later`);
  const found = new Set<string>();
  const visit = (path: string) => {
    if (found.has(path)) return;
    found.add(path);
    const entry = lock.packages[path] ?? {};
    const required = Object.keys(entry.dependencies ?? {});
    const optional = [
      ...Object.keys(entry.optionalDependencies ?? {}),
      ...Object.keys(entry.peerDependencies ?? {}),
    ];
    for (const name of required) {
      const resolved = resolve(lock, path, name);
      if (!resolved) throw new Error(`${path} depends on ${name}, which package-lock.json does not hold`);
      visit(resolved);
    }
    for (const name of optional) {
      const resolved = resolve(lock, path, name);
      if (resolved) visit(resolved);
    }
  };
  for (const root of roots) {
    const path = `node_modules/${root}`;
    if (!lock.packages[path]) throw new Error(`${root} is not in package-lock.json`);
    visit(path);
  }
  const sorted = [...found].sort();
  return sorted.filter((path) => !sorted.some((outer) => outer !== path && path.startsWith(`${outer}/`)));
}

/** Where Node finds `name` from the package at `from`: its own node_modules, then each parent's. */
function resolve(lock: Lockfile, from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!base) return undefined;
    const at = base.lastIndexOf('/node_modules/');
    base = at < 0 ? '' : base.slice(0, at);
  }
}

/** Copies the needed package folders; returns their paths. */
export function copyRuntimeModules(
  lock: Lockfile,
  from: string,
  dest: string,
  roots: readonly string[],
): string[] {
  const paths = runtimeModules(lock, roots);
  for (const path of paths)
    cpSync(join(from, path), join(dest, path), { recursive: true, verbatimSymlinks: true });
  return paths;
}

if (process.argv[1]?.endsWith('runtime-modules.ts')) {
  const [lockfile, from, dest, ...roots] = process.argv.slice(2);
  if (!lockfile || !from || !dest || roots.length === 0)
    throw new Error(
      'usage: runtime-modules.ts <package-lock.json> <node_modules parent> <dest> <package>...',
    );
  const lock = JSON.parse(readFileSync(lockfile, 'utf8')) as Lockfile;
  for (const path of copyRuntimeModules(lock, from, dest, roots)) console.log(path);
}
