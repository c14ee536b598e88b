/**
 * Training at data scale: `edgeloop train FILE --epochs 2` on generated telemetry CSVs of
 * 100k, 1M and 3M rows (bench/telemetry-files.ts, written once to the OS temp dir, never
 * committed), each run in its own process under `/usr/bin/time -v` for its peak RSS, against
 * a bare baseline in the same run: a plain tfjs `model.fit` of the same MLP, epochs and batch
 * size on tensors of as many rows as edgeloop trains on (its default cap is 1M rows per
 * epoch), built from the first that many rows of the same file with a bare split(',') parse. Prints wall time, peak RSS
 * and rows/s per size, and the time ratio. Rows: `npx tsx bench/train-scale.ts 100000 1000000`.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cliBin } from './support/cli.ts';
import { writeTelemetryCsv } from './telemetry-files.ts';

const TIME = '/usr/bin/time';
const EPOCHS = 2;
const CAP = 1_000_000;

interface Measured {
  wallS: number;
  rssMb: number | undefined;
}

function measure(args: string[]): Measured {
  const started = performance.now();
  const timed = existsSync(TIME);
  const result = timed
    ? spawnSync(TIME, ['-v', process.execPath, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 })
    : spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr.slice(-2000)}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr)?.[1];
  return { wallS: (performance.now() - started) / 1000, rssMb: rss ? Number(rss) / 1024 : undefined };
}

/** The bare baseline, run as `npx tsx bench/train-scale.ts --bare FILE ROWS` in its own process. */
async function bare(file: string, rows: number): Promise<void> {
  const { initTf, tf } = await import('../shared/tf.ts');
  await initTf();
  // Only the rows it trains on are read and parsed (a file of 10M rows is not split whole).
  const lines: string[] = [];
  const input = createReadStream(file, 'utf8');
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (lines.length === rows + 1) break;
    lines.push(line);
  }
  input.destroy();
  lines.shift(); // the header
  const sites = ['north', 'south', 'east', 'west'];
  const classes = ['bearing_wear', 'imbalance', 'normal', 'overheating'];
  const width = 4 + sites.length + 1;
  const x = new Float32Array(lines.length * width);
  const y = new Float32Array(lines.length * classes.length);
  lines.forEach((line, i) => {
    const cells = line.split(',');
    x[i * width + sites.indexOf(cells[0] ?? '') + 4] = 1;
    for (let j = 0; j < 4; j++) x[i * width + j] = Number(cells[j + 1]) / 50;
    y[i * classes.length + classes.indexOf(cells[5] ?? '')] = 1;
  });
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: 32, activation: 'relu', inputShape: [width] }));
  model.add(tf.layers.dense({ units: 16, activation: 'relu' }));
  model.add(tf.layers.dense({ units: classes.length, activation: 'softmax' }));
  model.compile({ optimizer: tf.train.adam(0.005), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const xs = tf.tensor2d(x, [lines.length, width]);
  const ys = tf.tensor2d(y, [lines.length, classes.length]);
  await model.fit(xs, ys, { epochs: EPOCHS, batchSize: 32, shuffle: false, verbose: 0 });
}

export async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--bare') return bare(args[1] as string, Number(args[2]));
  const sizes = args.length ? args.map(Number) : [100_000, 1_000_000, 3_000_000];
  const dir = join(tmpdir(), 'edgeloop-bench-scale');
  mkdirSync(dir, { recursive: true });
  const tsx = join(import.meta.dirname, '..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
  console.log(`rows        edgeloop s  peak MB  rows/s    bare fit s  peak MB  ratio  (${EPOCHS} epochs)`);
  for (const rows of sizes) {
    const file = await writeTelemetryCsv(join(dir, `telemetry-${rows}.csv`), rows);
    const out = join(dir, `model-${rows}`);
    const ours = measure([
      cliBin,
      'train',
      file,
      '--model',
      'scale',
      '--epochs',
      String(EPOCHS),
      '--out',
      out,
      '--json',
    ]);
    const base = measure([
      tsx,
      join(import.meta.dirname, 'train-scale.ts'),
      '--bare',
      file,
      String(Math.min(CAP, Math.round(rows * 0.7))),
    ]);
    const mb = (value: number | undefined) => (value === undefined ? 'n/a' : value.toFixed(0));
    console.log(
      [
        String(rows).padEnd(11),
        ours.wallS.toFixed(1).padStart(10),
        mb(ours.rssMb).padStart(8),
        String(Math.round(rows / ours.wallS)).padStart(8),
        base.wallS.toFixed(1).padStart(12),
        mb(base.rssMb).padStart(8),
        (ours.wallS / base.wallS).toFixed(2).padStart(6),
      ].join('  '),
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
