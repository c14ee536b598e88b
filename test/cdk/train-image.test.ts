/**
 * The training image's supply chain, held where no Docker engine runs: the Dockerfile's
 * invariants (base images, lockfile installs without install scripts, only tfjs-node built),
 * and the script that picks the runtime node_modules, run on this repository's lockfile and
 * on a small lockfile whose nesting it must resolve as Node does.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainDockerfile } from '../../infra/aws/paths.ts';
import {
  copyRuntimeModules,
  type Lockfile,
  runtimeModules,
} from '../../infra/aws/train-image/runtime-modules.ts';

const root = new URL('../../', import.meta.url).pathname;
const dockerfile = readFileSync(join(root, trainDockerfile), 'utf8');
/** Instructions with their continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));
const froms = instructions.filter((line) => /^FROM\s/i.test(line)).map((line) => line.split(/\s+/)[1] ?? '');
const runs = instructions.filter((line) => /^RUN\s/i.test(line));
const npmCommands = runs.flatMap((line) =>
  line
    .slice(4)
    .split(/&&|;|\|\|/)
    .map((command) => command.trim())
    .filter((command) => /^npm\s/.test(command)),
);
const EXTERNAL = ['@tensorflow/tfjs', '@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm'];

describe('the training image Dockerfile', () => {
  it('builds both stages on the Lambda Node.js 24 base, pinned by one and the same digest or by none', () => {
    // Assess
    expect(froms).toHaveLength(2);
    for (const image of froms)
      expect(image).toMatch(/^public\.ecr\.aws\/lambda\/nodejs:24(@sha256:[0-9a-f]{64})?$/);
    expect(new Set(froms).size).toBe(1);
  });

  it('installs only from the lockfile (npm ci), with install scripts off on every npm ci', () => {
    // Assess
    const ci = npmCommands.filter((command) => /^npm\s+ci\b/.test(command));
    expect(ci.length).toBeGreaterThan(0);
    for (const command of ci) expect(command).toMatch(/\s--ignore-scripts\b/);
    expect(npmCommands.filter((command) => /^npm\s+(install|i|add|update|exec)\b/.test(command))).toEqual([]);
    expect(dockerfile).not.toMatch(/--no-package-lock|npx\s+npm|yarn|pnpm/);
  });

  it('runs one install script: tfjs-node rebuilt alone', () => {
    // Assess
    const rebuilds = npmCommands.filter((command) => /^npm\s+rebuild\b/.test(command));
    expect(rebuilds).toEqual(['npm rebuild @tensorflow/tfjs-node']);
    const others = npmCommands.filter((command) => !/^npm\s+(ci|rebuild)\b/.test(command));
    expect(others).toEqual([]);
  });

  it('copies into the runtime image exactly the packages the bundle leaves external', () => {
    // Assess: the esbuild externals and the runtime-modules roots are the same list.
    const bundle = runs.find((line) => line.includes('esbuild')) ?? '';
    expect(bundle).toContain('--external:@tensorflow/*');
    const copy = runs.find((line) => line.includes('runtime-modules.ts')) ?? '';
    const args = copy.slice(copy.indexOf('runtime-modules.ts')).split(/\s+/);
    expect(args.filter((word) => word.startsWith('@tensorflow/'))).toEqual(EXTERNAL);
    expect(dockerfile).toMatch(/COPY --from=build \/build\/dist /);
  });
});

describe('runtime-modules', () => {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile;

  it("takes TensorFlow.js and its dependency closure from this repository's lockfile, and nothing else", () => {
    // Act
    const paths = runtimeModules(lock, EXTERNAL);

    // Assess
    for (const name of [...EXTERNAL, '@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', 'adm-zip', 'tar'])
      expect(paths).toContain(`node_modules/${name}`);
    for (const name of [
      'aws-cdk-lib',
      'aedes',
      'dynalite',
      'esbuild',
      'typescript',
      'tsx',
      'fast-xml-parser',
    ])
      expect(paths).not.toContain(`node_modules/${name}`);
    // tfjs-node's own nested copies (an older https-proxy-agent) come with its folder.
    expect(paths.some((path) => path.startsWith('node_modules/@tensorflow/tfjs-node/node_modules/'))).toBe(
      false,
    );
    expect(paths.length).toBeLessThan(120);
  });

  it('resolves nested versions as Node does, copies only those folders, and fails on a missing dependency', () => {
    // Prepare: a → b (nested under a), a → c (hoisted), d unrelated.
    const tiny: Lockfile = {
      lockfileVersion: 3,
      packages: {
        '': { dependencies: { a: '1', d: '1' } },
        'node_modules/a': { dependencies: { b: '2', c: '1' } },
        'node_modules/a/node_modules/b': { dependencies: { c: '1' } },
        'node_modules/b': { version: '1' },
        'node_modules/c': { optionalDependencies: { missing: '1' } },
        'node_modules/d': {},
      },
    };
    const dir = mkdtempSync(join(tmpdir(), 'edgeloop-runtime-modules-'));
    for (const path of Object.keys(tiny.packages).filter(Boolean)) {
      mkdirSync(join(dir, 'from', path), { recursive: true });
      writeFileSync(join(dir, 'from', path, 'index.js'), path);
    }

    // Act
    const copied = copyRuntimeModules(tiny, join(dir, 'from'), join(dir, 'to'), ['a']);
    const broken = () =>
      runtimeModules(
        { ...tiny, packages: { ...tiny.packages, 'node_modules/c': { dependencies: { gone: '1' } } } },
        ['a'],
      );

    // Assess
    expect(copied).toEqual(['node_modules/a', 'node_modules/c']);
    expect(readdirSync(join(dir, 'to', 'node_modules')).sort()).toEqual(['a', 'c']);
    expect(readFileSync(join(dir, 'to', 'node_modules/a/node_modules/b/index.js'), 'utf8')).toBe(
      'node_modules/a/node_modules/b',
    );
    expect(broken).toThrow('node_modules/c depends on gone, which package-lock.json does not hold');
    expect(() => runtimeModules(tiny, ['nope'])).toThrow('nope is not in package-lock.json');
    rmSync(dir, { recursive: true, force: true });
  });
});
