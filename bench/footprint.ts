/**
 * Footprint benchmark (issue 16): the gateway package (`npm run package:device`, unpacked
 * in a temp dir) side by side with today's install (the repository after `npm ci --omit=dev
 * --omit=optional`, running TypeScript through tsx: `node infra/cli/bin.js device`), in the
 * same run, on the same cached model (the 16-64-32-4 MLP of bench/device.ts), machine and
 * local aedes broker:
 *
 *   - size on disk: the unpacked package; for the repo install, its tracked files plus every
 *     node_modules package the lockfile does not mark dev or optional (what that npm ci
 *     installs; apparent file sizes, without the optional tfjs-node that fails to install here);
 *   - start: process spawn to the first POST /infer answered by the model cached in the
 *     state dir (the process loads and re-verifies it from disk; no download);
 *   - peak RSS (VmHWM from /proc) of one device process replaying 20,000 CSV readings at
 *     5,000/s to an acknowledged end, as bench/device.ts measures it; and of the unthrottled run;
 *   - throughput: the unthrottled CSV replay of 200,000 readings, readings produced per second
 *     between the first and the last GET /status while it runs, as a ratio to a bare tfjs
 *     predict (batches of 512, pre-transformed input) measured in this process right before;
 *   - POST /infer single readings, one at a time: round trip through HTTP on localhost, and
 *     the latency the device itself reports (reading in to prediction out).
 *
 * Prints one JSON object. Linux only (/proc).   npx tsx bench/footprint.ts
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, TOP_DIR } from '../device/packaging/build.ts';
import { transformRows } from '../shared/preprocess.ts';
import { initTf } from '../shared/tf.ts';
import {
  BENCH_KEYS,
  bareRun,
  buildModel,
  preprocessing,
  rows,
  startBroker,
  storeServingModel,
  writeCsv,
} from './device.ts';
import { unpackedGateway } from './support/gateway-package.ts';

const THROUGHPUT_READINGS = 200_000;
const RSS_READINGS = 20_000;
const INFER_REQUESTS = 1_000;

const MB = 1024 * 1024;
const round = (value: number, digits = 1) => Number(value.toFixed(digits));

/** Apparent size of a tree; `skip` names directories left out (nested node_modules). */
function treeBytes(path: string, skip = new Set<string>()): number {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return stat.isFile() ? stat.size : 0;
  let sum = 0;
  for (const entry of readdirSync(path)) {
    if (skip.has(entry)) continue;
    sum += treeBytes(join(path, entry), skip);
  }
  return sum;
}

/** What `npm ci --omit=dev --omit=optional` leaves on a gateway: the checkout plus production deps. */
function repoInstallBytes(): { bytes: number; packages: number } {
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: repoRoot, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file && existsSync(join(repoRoot, file)));
  let bytes = tracked.reduce((sum, file) => sum + statSync(join(repoRoot, file)).size, 0);
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
  };
  let packages = 0;
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path || entry.dev || entry.optional || entry.devOptional) continue;
    const dir = join(repoRoot, path);
    if (!existsSync(dir)) continue;
    packages++;
    bytes += treeBytes(dir, new Set(['node_modules']));
  }
  return { bytes, packages };
}

interface Variant {
  name: 'package' | 'repo';
  command: string[];
}

interface Run {
  child: ChildProcess;
  exit: Promise<number | null>;
  peakRssMB: () => number;
  port: Promise<number>;
}

function startRun(variant: Variant, args: string[], started: number[]): Run {
  const [bin, ...pre] = variant.command;
  started.push(performance.now());
  const child = spawn(bin as string, [...pre, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let peak = 0;
  const sample = () => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (match) peak = Math.max(peak, Number(match[1]) / 1024);
    } catch {
      // not started yet, or gone
    }
  };
  const poll = setInterval(sample, 50);
  let stderr = '';
  const port = new Promise<number>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /POST readings to http:\/\/127\.0\.0\.1:(\d+)\/infer/.exec(stderr);
      if (match) resolve(Number(match[1]));
    });
    child.on('exit', (code) => reject(new Error(`${variant.name} device exited (${code}): ${stderr}`)));
  });
  port.catch(() => undefined);
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      clearInterval(poll);
      if (code !== 0 && code !== null) process.stderr.write(stderr);
      resolve(code);
    }),
  );
  const peakRssMB = () => {
    sample();
    return Math.round(peak);
  };
  return { child, exit, peakRssMB, port };
}

function percentile(sorted: readonly number[], q: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

export async function main() {
  if (process.platform !== 'linux') throw new Error('the footprint bench reads /proc: Linux only');
  const backend = await initTf();
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-footprint-'));
  const broker = await startBroker();
  const { model, modelJson, weights } = await buildModel();
  try {
    const gateway = await unpackedGateway(dir);
    const { installDir, archive: pkg, buildSeconds } = gateway;

    const cached = join(dir, 'cached');
    await storeServingModel(cached, modelJson, weights, backend);
    const data = rows(2_048);
    const csv = join(dir, 'rows.csv');
    await writeCsv(csv, data);
    const keyFile = join(dir, 'signing.pub.pem');
    await writeFile(keyFile, BENCH_KEYS.publicKeyPem);
    const x = transformRows(preprocessing, data);

    const variants: Variant[] = [
      { name: 'package', command: gateway.command },
      { name: 'repo', command: [process.execPath, join(repoRoot, 'infra', 'cli', 'bin.js'), 'device'] },
    ];
    let runs = 0;
    const stateFor = async () => {
      const stateDir = join(dir, `state-${runs++}`);
      await cp(join(cached, 'models'), join(stateDir, 'models'), { recursive: true });
      return stateDir;
    };
    const common = async (thing: string) => [
      '--thing',
      thing,
      '--model',
      'bench',
      '--state-dir',
      await stateFor(),
      '--mqtt-endpoint',
      broker.url,
      '--public-key',
      keyFile,
    ];

    bareRun(model, x, data.length, 50_000, 512); // warm-up: the first predicts compile kernels
    const figures: Record<string, Record<string, unknown>> = {};
    for (const variant of variants) {
      // 1. Start to serving, then single-reading /infer latency.
      const started: number[] = [];
      const serve = startRun(variant, [...(await common('fp-serve')), '--http-port', '0'], started);
      const port = await serve.port;
      const url = `http://127.0.0.1:${port}/infer`;
      const body = JSON.stringify(data[0]);
      let startMs = 0;
      for (;;) {
        const response = await fetch(url, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
        });
        if (response.ok) {
          await response.json();
          startMs = performance.now() - (started[0] ?? 0);
          break;
        }
        await response.text();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const roundTrips: number[] = [];
      const reported: number[] = [];
      for (let i = 0; i < 100 + INFER_REQUESTS; i++) {
        const t0 = performance.now();
        const response = await fetch(url, { method: 'POST', body: JSON.stringify(data[i % data.length]) });
        const answer = (await response.json()) as { latencyMs: number };
        if (i < 100) continue; // warm-up
        roundTrips.push(performance.now() - t0);
        reported.push(answer.latencyMs);
      }
      roundTrips.sort((a, b) => a - b);
      reported.sort((a, b) => a - b);
      const serveRss = serve.peakRssMB();
      serve.child.kill('SIGTERM');
      const serveExit = await serve.exit;

      // 2. Peak RSS in the device bench's run: 20,000 readings at 5,000/s, every result acknowledged.
      const replay = startRun(
        variant,
        [
          ...(await common('fp-rss')),
          '--source',
          `csv:${csv}`,
          '--rate',
          '5000',
          '--limit',
          String(RSS_READINGS),
        ],
        [],
      );
      const replayExit = await replay.exit;
      const replayRss = replay.peakRssMB();

      // 3. Unthrottled replay against a bare predict measured just before.
      const bare = bareRun(model, x, data.length, THROUGHPUT_READINGS, 512);
      const fast = startRun(
        variant,
        [
          ...(await common('fp-rate')),
          '--source',
          `csv:${csv}`,
          '--limit',
          String(THROUGHPUT_READINGS),
          '--http-port',
          '0',
        ],
        [],
      );
      const statusUrl = `http://127.0.0.1:${await fast.port}/status`;
      const samples: { at: number; produced: number }[] = [];
      for (;;) {
        const at = performance.now();
        const response = await fetch(statusUrl).catch(() => undefined);
        if (!response) break;
        const { produced } = (await response.json()) as { produced: number };
        if (produced > 0) samples.push({ at, produced });
        if (produced >= THROUGHPUT_READINGS) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const fastRss = fast.peakRssMB();
      fast.child.kill('SIGTERM');
      const fastExit = await fast.exit;
      const first = samples[0];
      const last = samples.at(-1);
      const rate =
        first && last && last.at > first.at
          ? ((last.produced - first.produced) * 1000) / (last.at - first.at)
          : 0;

      figures[variant.name] = {
        startToServingMs: Math.round(startMs),
        peakRssMB: replayRss,
        peakRssUnthrottledMB: fastRss,
        peakRssServingMB: serveRss,
        producedPerSec: Math.round(rate),
        bareInferencesPerSec: Math.round(bare),
        ratio: round(rate / bare, 3),
        inferRoundTripP50Ms: round(percentile(roundTrips, 0.5), 3),
        inferRoundTripP99Ms: round(percentile(roundTrips, 0.99), 3),
        inferDeviceP50Ms: round(percentile(reported, 0.5), 3),
        inferDeviceP99Ms: round(percentile(reported, 0.99), 3),
        exits: [serveExit, replayExit, fastExit],
      };
    }
    const repoInstall = repoInstallBytes();
    const result = {
      backend,
      arch: process.arch,
      node: process.version,
      package: {
        archive: pkg?.fileName,
        archiveMB: round((pkg?.bytes ?? 0) / MB),
        unpackedMB: round(treeBytes(join(installDir, TOP_DIR)) / MB),
        buildSeconds: round(buildSeconds),
        ...figures.package,
      },
      repo: {
        install: `checkout + ${repoInstall.packages} production packages (npm ci --omit=dev --omit=optional)`,
        unpackedMB: round(repoInstall.bytes / MB),
        ...figures.repo,
      },
      targets: {
        unpackedMB: 40,
        peakRssMB: 150,
        startToServingMs: 2000,
        ratio: 0.8,
        inferDeviceP50Ms: 1,
        inferDeviceP99Ms: 3,
      },
    };
    console.log(JSON.stringify(result));
    return result;
  } finally {
    model.dispose();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
