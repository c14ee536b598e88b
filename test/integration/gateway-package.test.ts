/**
 * The gateway package as a gateway gets it: `npm run package:device`'s archive for this
 * machine's architecture, unpacked into an empty folder outside the repository (no
 * node_modules anywhere above it), run with nothing but `node` on PATH against the local
 * stack. A SIGTERM mid-stream must save the outbox and checkpoint and exit 0; a second run
 * with the same state dir finishes, and the aggregator holds exactly N distinct results.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseDemoModel, startTestStack, until } from '../../bench/support/local-stack.ts';
import { type Arch, buildDevicePackages, TARGET_ARCHES, TOP_DIR } from '../../device/packaging/build.ts';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import type { LocalStack } from '../../infra/local/stack.ts';

const MODEL = 'gw-package';
const N = 20_000;
const arch = process.arch as Arch;
const runnable = process.platform === 'linux' && (TARGET_ARCHES as readonly string[]).includes(arch);

let stack: LocalStack;
let workDir: string;
let installDir: string;
let nodeOnlyPath: string;
let csv: string;
const since = Date.now() - 60_000;

beforeAll(async () => {
  if (!runnable) return;
  workDir = await mkdtemp(join(tmpdir(), 'edgeloop-gw-package-'));
  const [built] = await buildDevicePackages({ outDir: join(workDir, 'dist'), arches: [arch] });
  installDir = join(workDir, 'gateway');
  await mkdir(installDir);
  execFileSync('tar', ['-xzf', built?.file ?? '', '-C', installDir]);
  // A PATH with node and nothing else: no npm, no tsx, no shell tools.
  nodeOnlyPath = join(workDir, 'path');
  await mkdir(nodeOnlyPath);
  await symlink(process.execPath, join(nodeOnlyPath, 'node'));

  stack = await startTestStack();
  csv = join(workDir, 'readings.csv');
  await writeFile(csv, await releaseDemoModel(MODEL));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const aggregated = async () => (await readModelStats(localStatsSource(), MODEL, since)).inferences;

function gateway(extra: string[] = []): {
  child: ChildProcess;
  exit: Promise<number | null>;
  stderr: string[];
} {
  const stderr: string[] = [];
  const child = spawn(
    join(installDir, TOP_DIR, 'bin', TOP_DIR),
    [
      '--thing',
      'gw-1',
      '--model',
      MODEL,
      '--data-dir',
      stack.dataDir,
      '--state-dir',
      join(workDir, 'state'),
      '--source',
      `csv:${csv}`,
      '--limit',
      String(N),
      ...extra,
    ],
    { cwd: installDir, env: { PATH: nodeOnlyPath, HOME: workDir }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  return { child, exit: new Promise((resolve) => child.on('exit', resolve)), stderr };
}

function du(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, entry) => {
    const path = join(dir, entry.name);
    return sum + (entry.isDirectory() ? du(path) : statSync(path).size);
  }, 0);
}

describe.skipIf(!runnable)(`the gateway package (linux-${arch})`, () => {
  it('unpacks outside the repository into at most 40 MB with no node_modules above it', () => {
    // Assess
    for (let dir = installDir; dir !== dirname(dir); dir = dirname(dir))
      expect(existsSync(join(dir, 'node_modules')), `${dir}/node_modules`).toBe(false);
    expect(readdirSync(installDir)).toEqual([TOP_DIR]);
    expect(du(join(installDir, TOP_DIR))).toBeLessThanOrEqual(40 * 1024 * 1024);
  });

  it('delivers exactly N results through a SIGTERM, which saves its state and exits 0', async () => {
    // Act: stop the first run mid-stream as systemd would, then run it again to the end.
    const first = gateway(['--rate', '2000']);
    await until(async () => (await aggregated()) >= 4_000, '4,000 results aggregated before SIGTERM');
    first.child.kill('SIGTERM');
    const firstCode = await first.exit;
    const afterStop = await aggregated();
    const second = gateway();
    const secondCode = await second.exit;
    await stack.idle();

    // Assess
    expect(firstCode, first.stderr.join('')).toBe(0);
    expect(first.stderr.join('')).toMatch(/SIGTERM: stopping/);
    expect(first.stderr.join('')).toMatch(/SIGTERM: [1-9]\d* of the readings done/);
    expect(afterStop).toBeLessThan(N);
    expect(secondCode, second.stderr.join('')).toBe(0);
    await until(async () => (await aggregated()) >= N, `all ${N} results aggregated`);
    await stack.idle();
    expect(await aggregated()).toBe(N);
  }, 120_000);
});
